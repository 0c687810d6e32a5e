"""The compiled validator (jsonschema-rs, the fast path) agrees with ``jsonschema`` on every version's
schema: on the spec's examples and invalid fixtures, each checked against all four versions (so the
older schemas see shapes they refuse), and on mutated examples."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from stigmer.runner.workflow import SUPPORTED_DSL_VERSIONS
from stigmer.runner.workflow._schema import _fast_validator, _validator, schema_problems

FIXTURES = Path(__file__).parent / "fixtures"
FILES = sorted((FIXTURES / "examples").glob("*.yaml")) + sorted(
    (FIXTURES / "invalid-fixtures").glob("*.yaml")
)


def _load(path: Path) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(path.read_text(encoding="utf-8")))
    except YAMLError:  # e.g. a duplicate key: refused before any schema sees it
        return None


DOCUMENTS = {path.name: loaded for path in FILES if (loaded := _load(path)) is not None}
INVALID = {path.name for path in (FIXTURES / "invalid-fixtures").glob("*.yaml")} & set(DOCUMENTS)


def agree(document: Any, version: str) -> bool:
    fast = bool(_fast_validator(version).is_valid(document))
    slow = next(iter(_validator(version).iter_errors(document)), None) is None
    assert fast == slow, (version, fast, slow)
    return slow


@pytest.mark.parametrize("version", SUPPORTED_DSL_VERSIONS)
def test_both_validators_agree_on_the_spec_documents(version: str) -> None:
    verdicts = {name: agree(document, version) for name, document in DOCUMENTS.items()}
    assert any(verdicts.values())
    assert not all(verdicts.values())  # the invalid fixtures, at least, are refused


def test_the_invalid_fixtures_are_refused_with_problems_under_every_version() -> None:
    assert INVALID
    for name in INVALID:
        for version in SUPPORTED_DSL_VERSIONS:
            assert schema_problems(DOCUMENTS[name], version), (name, version)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8) | st.just("${ . }"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, [*prefix, key]))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, [*prefix, index]))
    return found


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_both_validators_agree_on_mutated_documents(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(sorted(DOCUMENTS.items())))[1])
    path = data.draw(st.sampled_from(_paths(document, [])))
    target = document
    for step in path[:-1]:
        target = target[step]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(json_values)
    agree(document, data.draw(st.sampled_from(SUPPORTED_DSL_VERSIONS)))
