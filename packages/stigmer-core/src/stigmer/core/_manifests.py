"""Manifests: YAML/JSON files, directories and stdin to resource messages, and back.

Keys are camelCase on output; snake_case is accepted on input. Unknown kinds and fields are
rejected with the closest valid name suggested, and every error names the file, the line and
the field path.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from stigmer.core._kinds import KIND_TABLE
from stigmer.core._values import plain_value
from stigmer.core._yaml import ManifestError, dump_yaml, load_yaml_documents, plain
from stigmer.proto.v1 import (
    execution_pb2,
    resource_pb2,
)

Descriptor = Any  # protobuf's upb and pure-Python descriptor classes differ; both behave alike here

__all__ = [
    "API_VERSION",
    "KINDS",
    "LoadedResource",
    "dump_manifests",
    "kind_of",
    "load_manifests",
    "manifest_files",
    "message_to_manifest",
    "parse_manifest",
    "resource_from_message",
    "resource_to_manifest",
    "unwrap",
]

API_VERSION = "stigmer.ai/v1"

# kind -> (message class, field name inside stigmer.v1.Resource or "" for executions), from the kind table
KINDS: dict[str, tuple[type[Message], str]] = {
    kind.name: (kind.message_class(), kind.field) for kind in KIND_TABLE
}
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_WELL_KNOWN_OPAQUE = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
#: Messages a list may give by name alone (``tools: [files, shell]`` = ``[{name: files}, ...]``).
_NAME_SHORTHAND = {"stigmer.v1.AgentTool"}


@dataclass(frozen=True)
class LoadedResource:
    """One resource read from a manifest, with where it came from."""

    resource: resource_pb2.Resource | execution_pb2.Execution
    kind: str
    name: str
    source: str
    line: int
    tree: Any = dataclasses.field(default=None, repr=False, compare=False)
    """The YAML round-trip tree the resource was read from (line numbers), or None."""
    notice: str = dataclasses.field(default="", compare=False)
    """What reading it changed (upstream fields mapped or dropped, tolerated spellings), or ''."""

    def line_of(self, path: Iterable[str | int]) -> int:
        """The line (1-based) of the field at ``path`` (``["spec", "do", 0, "greet"]``) in the
        manifest: the nearest enclosing field that has one, else the document's first line."""
        if self.tree is None:
            return self.line
        return _line_of(self.tree, list(path), self.line)

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the manifest (a Skill's ``path``) are resolved against."""
        if self.source in ("", "<stdin>"):
            return Path.cwd()
        return Path(self.source).resolve().parent


# ---------------------------------------------------------------------------------------------
# reading


def load_manifests(paths: Iterable[str | Path], stdin_text: str | None = None) -> list[LoadedResource]:
    """Load every resource from files, directories (recursively) and ``-`` (stdin)."""
    out: list[LoadedResource] = []
    for raw in paths:
        if str(raw) == "-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
            out.extend(parse_manifest(text, "<stdin>"))
            continue
        for file in manifest_files(raw):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"cannot read: {exc}", str(file)) from None
            out.extend(parse_manifest(text, str(file)))
    return out


def manifest_files(raw: str | Path) -> list[Path]:
    """The manifest files a path names: itself, or a directory's .yaml/.yml/.json files
    (recursively, hidden ones left out, sorted)."""
    path = Path(raw)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix in _MANIFEST_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise ManifestError("no .yaml, .yml or .json files in this directory", str(path))
        return files
    if path.exists():
        return [path]
    raise ManifestError("no such file or directory", str(path))


def parse_manifest(text: str, source: str = "") -> list[LoadedResource]:
    """Parse YAML (multi-document) or JSON text into resources."""
    documents: list[tuple[Any, Any, int]] = []  # (plain data, round-trip tree or None, line)
    stripped = text.lstrip()
    if source.endswith(".json") or (stripped.startswith(("{", "[")) and _looks_like_json(stripped)):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"invalid JSON: {exc.msg}", source, exc.lineno) from None
        except RecursionError:
            raise ManifestError("document nests too deeply", source) from None
        items = data if isinstance(data, list) else [data]
        documents.extend((item, None, 1) for item in items)
    else:
        for tree, line in load_yaml_documents(text, source):
            if tree is None:
                continue
            data = plain(tree, source)
            if isinstance(data, list) and all(isinstance(d, dict) for d in data) and data:
                documents.extend((d, tree[i], _line_of(tree[i], [], line)) for i, d in enumerate(data))
            else:
                documents.append((data, tree, line))
    return [_to_resource(data, tree, source, line) for data, tree, line in documents]


def _looks_like_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _line_of(tree: Any, path: list[str | int], default: int) -> int:
    """Best-effort line number (1-based) of ``path`` inside a round-trip tree."""
    node = tree
    line = default
    for part in path:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                if isinstance(part, str) and isinstance(node, dict) and part in node:
                    line = int(lc.key(part)[0]) + 1
                elif isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
                    line = int(lc.item(part)[0]) + 1
            node = node[part]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def _to_resource(data: Any, tree: Any, source: str, line: int) -> LoadedResource:
    def fail(msg: str, path: list[str | int]) -> ManifestError:
        return ManifestError(
            msg, source, _line_of(tree, path, line) if tree is not None else line, _dotted(path)
        )

    if not isinstance(data, dict):
        raise ManifestError(
            f"expected a mapping with apiVersion, kind, metadata and spec, found {_type_name(data)}",
            source,
            line,
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise fail("missing 'kind' (one of: " + ", ".join(KINDS) + ")", ["kind"])
    if kind not in KINDS:
        raise fail(f"unknown kind '{kind}'{_suggest(kind, list(KINDS))}", ["kind"])
    # Upstream's manifests are translated (imported here: the rest of this module serves every run).
    from stigmer.core.upstream import UPSTREAM_API_VERSION, UpstreamRefused, translate

    api = data.get("apiVersion", data.get("api_version"))
    if api not in (API_VERSION, UPSTREAM_API_VERSION):
        raise fail(
            f"apiVersion must be '{API_VERSION}' (or upstream's '{UPSTREAM_API_VERSION}'), found {api!r}",
            ["apiVersion"],
        )
    try:
        base = None if source in ("", "<stdin>", "<dict>") else Path(source).resolve().parent
        data, notice = translate(data, API_VERSION, base)
    except UpstreamRefused as exc:
        raise fail(exc.message, exc.path) from None
    cls, _field = KINDS[kind]
    _check(data, cls.DESCRIPTOR, [], fail)
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"].strip():
        raise fail(
            "metadata.name is required", ["metadata", "name"] if isinstance(meta, dict) else ["metadata"]
        )
    msg = cls()
    try:
        json_format.ParseDict(data, msg)
    except json_format.ParseError as exc:
        raise fail(str(exc).splitlines()[0], []) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise fail(f"invalid value: {exc}", []) from None
    return LoadedResource(resource_from_message(msg), kind, meta["name"], source, line, tree, notice)


def _type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _suggest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    if not match:
        lower = {o.lower(): o for o in options}
        if word.lower() in lower:
            match = [lower[word.lower()]]
    return f"; did you mean '{match[0]}'?" if match else ""


def _dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_SCALAR_TYPES: dict[int, tuple[tuple[type, ...], str]] = {
    FieldDescriptor.TYPE_STRING: ((str,), "a string"),
    FieldDescriptor.TYPE_BOOL: ((bool,), "true or false"),
    FieldDescriptor.TYPE_INT32: ((int,), "a whole number"),
    FieldDescriptor.TYPE_INT64: ((int, str), "a whole number"),
    FieldDescriptor.TYPE_UINT32: ((int,), "a whole number"),
    FieldDescriptor.TYPE_UINT64: ((int, str), "a whole number"),
    FieldDescriptor.TYPE_DOUBLE: ((int, float), "a number"),
    FieldDescriptor.TYPE_FLOAT: ((int, float), "a number"),
    FieldDescriptor.TYPE_BYTES: ((str,), "base64 text"),
    FieldDescriptor.TYPE_ENUM: ((str, int), "an enum name"),
}


def _check(value: Any, desc: Descriptor, path: list[str | int], fail: Any) -> None:
    """Walk data against a message descriptor; unknown fields and wrong types raise with a path."""
    if not isinstance(value, dict):
        raise fail(f"expected a mapping, found {_type_name(value)}", path)
    by_name: dict[str, FieldDescriptor] = {}
    for f in desc.fields:
        by_name[f.json_name] = f
        by_name[f.name] = f
    seen: dict[str, str] = {}
    for key, item in value.items():
        field = by_name.get(key)
        here = [*path, key]
        if field is None:
            raise fail(f"unknown field '{key}'{_suggest(key, [f.json_name for f in desc.fields])}", here)
        if field.name in seen:
            raise fail(f"'{key}' and '{seen[field.name]}' are the same field; give it once", here)
        seen[field.name] = key
        if item is None:
            continue
        shorthand = field.message_type is not None and field.message_type.full_name in _NAME_SHORTHAND
        if shorthand and field.is_repeated and isinstance(item, list):
            item[:] = [{"name": v} if isinstance(v, str) else v for v in item]
        _check_field(item, field, here, fail)
    for oneof in desc.oneofs:
        given = [f.json_name for f in oneof.fields if f.json_name in value or f.name in value]
        if len(given) > 1:
            raise fail(f"give only one of {', '.join(given)}", [*path, given[1]])


def _check_field(item: Any, field: FieldDescriptor, path: list[str | int], fail: Any) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if not isinstance(item, dict):
            raise fail(f"expected a mapping, found {_type_name(item)}", path)
        value_field = field.message_type.fields_by_name["value"]
        for k, v in item.items():
            _check_single(v, value_field, [*path, k], fail)
        return
    if field.is_repeated:
        if not isinstance(item, list):
            raise fail(f"expected a list, found {_type_name(item)}", path)
        for i, v in enumerate(item):
            _check_single(v, field, [*path, i], fail)
        return
    _check_single(item, field, path, fail)


def _check_single(item: Any, field: FieldDescriptor, path: list[str | int], fail: Any) -> None:
    mt = field.message_type
    if mt is not None:
        if mt.full_name in _WELL_KNOWN_OPAQUE:
            if mt.full_name == "google.protobuf.Struct" and not isinstance(item, dict):
                raise fail(f"expected a mapping, found {_type_name(item)}", path)
            return
        if mt.full_name == "google.protobuf.Timestamp":
            if not isinstance(item, str):
                raise fail("expected an RFC 3339 timestamp string", path)
            return
        _check(item, mt, path, fail)
        return
    types, label = _SCALAR_TYPES.get(field.type, ((object,), "a value"))
    if not isinstance(item, types) or (bool not in types and isinstance(item, bool)):
        raise fail(f"expected {label}, found {_type_name(item)}", path)
    if field.type == FieldDescriptor.TYPE_ENUM and isinstance(item, str) and field.enum_type is not None:
        names = [v.name for v in field.enum_type.values]
        if item not in names and f"PHASE_{item}" not in names:
            raise fail(f"unknown value '{item}'{_suggest(item, names)}", path)


# ---------------------------------------------------------------------------------------------
# messages


def resource_from_message(msg: Message) -> Any:
    """Wrap a kind message (``Agent``, ...) in ``stigmer.v1.Resource``; executions are returned as is."""
    if isinstance(msg, (resource_pb2.Resource, execution_pb2.Execution)):
        return msg
    for _kind, (cls, field) in KINDS.items():
        if field and isinstance(msg, cls):
            out = resource_pb2.Resource()
            getattr(out, field).CopyFrom(msg)
            return out
    raise TypeError(f"not a resource message: {type(msg).__name__}")


def unwrap(resource: Message) -> Message:
    """The kind message inside a ``Resource`` (or the message itself)."""
    if isinstance(resource, resource_pb2.Resource):
        field = resource.WhichOneof("kind")
        if field is None:
            raise ManifestError("empty resource: no kind is set")
        inner: Message = getattr(resource, field)
        return inner
    return resource


def kind_of(resource: Message) -> str:
    """The kind name (``Agent``) of a resource or kind message."""
    inner = unwrap(resource)
    for kind, (cls, field) in KINDS.items():
        if field and isinstance(inner, cls):
            return kind
    if isinstance(inner, execution_pb2.Execution):
        return inner.kind or "Execution"
    raise TypeError(f"not a resource message: {type(inner).__name__}")


def message_to_manifest(msg: Message, include_status: bool = True) -> dict[str, Any]:
    """Render a kind message as a manifest dict (camelCase keys, ints as numbers), in canonical order.

    Every output path (``export``, ``get -o yaml/json``, ``describe``, the SDK's export and
    ``to_yaml``) goes through here, so the same resource always renders to the same bytes; see
    :func:`_normalise` for the order.
    """
    inner = unwrap(msg)
    data = json_format.MessageToDict(inner, always_print_fields_with_no_presence=False)
    data = _normalise(data, inner.DESCRIPTOR)
    if not include_status:
        data.pop("status", None)
    if inner.DESCRIPTOR.full_name == "stigmer.v1.Workflow" and isinstance(data.get("spec"), dict):
        data["spec"] = _workflow_spec_order(data["spec"])
    return _ordered(data, _TOP_ORDER)


resource_to_manifest = message_to_manifest


# Canonical order. Protobuf ``map`` fields and ``google.protobuf.Struct`` (a Workflow's whole
# spec, an agent model's params, ...) are hash maps: their iteration order differs from process
# to process, and the order the user applied is not stored, so it cannot be given back. Message
# fields therefore come in their .proto declaration order (metadata: name, slug, id, labels, ...),
# and map and Struct keys sorted (a stable order that does not depend on how or where the
# resource was applied, so a committed export does not churn and diffs stay minimal). The one
# exception is a Workflow's spec, whose top-level keys and ``document`` follow the Serverless
# Workflow DSL's usual order (document first) before any other key, sorted.
_TOP_ORDER = ("apiVersion", "kind", "metadata", "spec", "status")
_WORKFLOW_ORDER = ("document", "input", "use", "do", "timeout", "output", "schedule", "evaluate")
_DOCUMENT_ORDER = ("dsl", "namespace", "name", "version", "title", "summary", "tags", "metadata")


def _ordered(data: dict[str, Any], first: Iterable[str]) -> dict[str, Any]:
    """``data`` with the keys in ``first`` leading (in that order), the rest after in sorted order."""
    head = [k for k in first if k in data]
    return {k: data[k] for k in [*head, *sorted(k for k in data if k not in head)]}


def _sorted_keys(value: Any) -> Any:
    """Plain data with every mapping's keys sorted, recursively (lists keep their order)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _workflow_spec_order(spec: dict[str, Any]) -> dict[str, Any]:
    out = _ordered(spec, _WORKFLOW_ORDER)
    if isinstance(out.get("document"), dict):
        out["document"] = _ordered(out["document"], _DOCUMENT_ORDER)
    return out


def _normalise(value: Any, desc: Descriptor | None) -> Any:
    """Undo the JSON mapping's quirks (int64 as strings, integral floats in Struct/Value), and put
    keys in the canonical order: message fields in declaration order, map and Struct keys sorted."""
    if desc is None or desc.full_name in _WELL_KNOWN_OPAQUE:
        return _sorted_keys(plain_value(value))
    if not isinstance(value, dict):
        return value
    fields = {f.json_name: f for f in desc.fields}
    declared = [f.json_name for f in desc.fields if f.json_name in value]
    out: dict[str, Any] = {}
    for key in [*declared, *sorted(k for k in value if k not in fields)]:
        item = value[key]
        f = fields.get(key)
        if f is None:
            out[key] = _sorted_keys(item)
            continue
        item_type = f.message_type
        is_map = item_type is not None and item_type.GetOptions().map_entry
        if is_map:
            vf = item_type.fields_by_name["value"]
            out[key] = {k: _norm_single(item[k], vf) for k in sorted(item)}
        elif f.is_repeated:
            out[key] = [_norm_single(v, f) for v in item]
        else:
            out[key] = _norm_single(item, f)
    return out


def _norm_single(item: Any, f: FieldDescriptor) -> Any:
    if f.message_type is not None:
        if f.message_type.full_name == "google.protobuf.Timestamp":
            return item
        return _normalise(item, f.message_type)
    if f.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64) and isinstance(item, str):
        return int(item)
    return item


def dump_manifests(messages: Iterable[Message], fmt: str = "yaml", include_status: bool = True) -> str:
    """Render resources as a YAML stream or a JSON document (a list when there are several)."""
    docs = [message_to_manifest(m, include_status) for m in messages]
    if fmt == "json":
        return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2) + "\n"
    return dump_yaml(docs)


def iter_kinds() -> Iterator[str]:
    """Every kind name a manifest may declare."""
    return iter(KINDS)
