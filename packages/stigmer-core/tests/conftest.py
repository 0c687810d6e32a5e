"""Hypothesis strategies that build valid manifests for any kind from the proto descriptors."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st
from stigmer.core import API_VERSION, KINDS

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda f: not f.is_integer())
    | _text
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key, inner, max_size=3),
    max_leaves=8,
)
_struct = st.dictionaries(_key, _json, max_size=4)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _text
    if t == FieldDescriptor.TYPE_BOOL:
        return st.just(True)
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
        return st.integers(min_value=1, max_value=2**31 - 1)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.sampled_from([0.5, 1.25, 30.0, 2.75])
    if t == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.name for v in field.enum_type.values if v.number != 0])
    raise AssertionError(f"no strategy for field type {t}")


def _single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    mt = field.message_type
    if mt is None:
        return _scalar(field)
    if mt.full_name == "google.protobuf.Struct":
        return _struct
    if mt.full_name == "google.protobuf.Value":
        return _json.filter(lambda v: v is not None)
    if mt.full_name == "google.protobuf.Timestamp":
        return st.sampled_from(["2026-01-02T03:04:05Z", "2026-11-26T09:49:18.500Z"])
    return message_dict(mt, depth + 1)


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    mt = field.message_type
    if mt is not None and mt.GetOptions().map_entry:
        return st.dictionaries(_key, _single(mt.fields_by_name["value"], depth), min_size=1, max_size=3)
    if field.is_repeated:
        return st.lists(_single(field, depth), min_size=1, max_size=2)
    return _single(field, depth)


def message_dict(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts in manifest form (camelCase, no default values) for a message type."""
    if depth > 3:
        return st.just({})
    plain = [f for f in desc.fields if f.containing_oneof is None]
    parts = {f.json_name: st.none() | _field_value(f, depth) for f in plain}
    oneofs = [
        st.sampled_from(list(o.fields)).flatmap(
            lambda f: _field_value(f, depth).map(lambda v: {f.json_name: v})
        )
        for o in desc.oneofs
    ]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, strat in parts.items():
            value = draw(strat)
            if value is not None and value != {}:
                out[key] = value
        for strat in oneofs:
            chosen = draw(st.none() | strat)
            if chosen and next(iter(chosen.values())) not in ({}, None):
                out.update(chosen)
        return out

    return build()


def manifest(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A complete manifest of ``kind`` with a valid name."""
    cls, _ = KINDS[kind]
    desc = cls.DESCRIPTOR

    def fix(d: dict[str, Any]) -> dict[str, Any]:
        d["apiVersion"] = API_VERSION
        d["kind"] = kind
        meta = d.setdefault("metadata", {})
        meta["name"] = meta.get("name", "x").strip() or "x"
        return d

    return message_dict(desc).map(fix)  # type: ignore[arg-type]


import pytest  # noqa: E402


@pytest.fixture
def manifest_strategy() -> Any:
    """The ``manifest(kind)`` strategy factory, for tests (conftest is not importable by name)."""
    return manifest
