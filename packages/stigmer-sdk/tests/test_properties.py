"""Property tests: what users type never gives a traceback, and ``to_python`` never changes bytes."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.core import InvalidArgument, StigmerError
from stigmer.sdk import ResourceBuilder, Workflow, to_python
from stigmer.sdk._client import label_selector
from stigmer.sdk._kinds import resolve_kind
from stigmer.sdk.authoring._resources import Model

NAMES = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=8)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=12,
)
_TYPES = [
    "set",
    "switch",
    "for",
    "fork",
    "try",
    "catch",
    "raise",
    "wait",
    "listen",
    "emit",
    "call",
    "run",
    "do",
]
_OPTIONS = ["with", "if", "then", "input", "output", "export", "timeout", "metadata", "while", "branches"]
TASK_KEYS = st.sampled_from([*_TYPES, *_OPTIONS])


def task_bodies(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """Task-shaped dicts: typical keys with arbitrary values, sometimes nested task lists."""
    values: st.SearchStrategy[Any] = JSON
    if depth > 0:
        nested = st.lists(st.dictionaries(NAMES, task_bodies(depth - 1), min_size=1, max_size=1), max_size=2)
        values = st.one_of(
            JSON, nested, st.fixed_dictionaries({"with": JSON}), st.fixed_dictionaries({"as": JSON})
        )
    return st.dictionaries(TASK_KEYS, values, min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=st.lists(st.tuples(NAMES, task_bodies()), min_size=1, max_size=3, unique_by=lambda t: t[0]))
def test_to_python_rebuilds_any_workflow_byte_for_byte(tasks: list[tuple[str, dict[str, Any]]]) -> None:
    original = Workflow("prop", namespace="p", do=tasks)
    try:
        expected = original.to_message().SerializeToString(deterministic=True)
    except StigmerError:
        return  # not a valid manifest (e.g. a value protobuf cannot hold); nothing to rebuild
    namespace: dict[str, Any] = {}
    exec(compile(to_python(original), "<generated>", "exec"), namespace)
    [rebuilt] = namespace["resources"]
    assert isinstance(rebuilt, ResourceBuilder)
    assert rebuilt.to_message().SerializeToString(deterministic=True) == expected


def test_kind_spellings_are_those_of_the_cli() -> None:
    assert [resolve_kind(t) for t in ("wf", "Agents", "mcp_server", "env", "ses")] == [
        "Workflow",
        "Agent",
        "McpServer",
        "Environment",
        "Session",
    ]


@given(st.text(max_size=30))
def test_any_kind_text_resolves_or_says_which_kinds_exist(text: str) -> None:
    try:
        kind = resolve_kind(text)
    except InvalidArgument as exc:
        assert "kinds: Skill, McpServer, Environment, Agent, Workflow, Session" in str(exc)
    else:
        assert kind in {
            "Skill",
            "McpServer",
            "Environment",
            "Agent",
            "Workflow",
            "Session",
            "Schedule",
            "Trigger",
        }


@given(st.text(max_size=30))
def test_any_model_text_parses_or_shows_the_form(text: str) -> None:
    try:
        model = Model.parse(text)
    except ValueError as exc:
        assert "provider:name" in str(exc)
    else:
        assert f"{model.provider}:{model.name}" == text


@given(st.dictionaries(NAMES, NAMES, max_size=4))
def test_label_selectors_list_every_label(labels: dict[str, str]) -> None:
    selector = label_selector(labels)
    assert (
        sorted(selector.split(",")) == sorted(f"{k}={v}" for k, v in labels.items())
        if labels
        else selector == ""
    )
