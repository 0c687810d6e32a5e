"""The registry of task kinds agrees with the DSL schema, and its facts hold when tasks run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stigmer.runner.workflow import InProcessHost, run_workflow
from stigmer.runner.workflow._schema import dsl_schema
from stigmer.runner.workflow._task_kinds import COMMON_FIELDS, TASK_KINDS, kind_of
from stigmer.runner.workflow._walk import iter_task_lists

_DEFS = dsl_schema()["$defs"]
_TASK_LIST = "#/$defs/taskList"
#: Task lists of what the runner does not run (``call: asyncapi``; see the README): not walked.
_NOT_RUN = {("call", ("with", "subscription", "foreach", "do"))}


def _schema_kinds() -> list[str]:
    refs = [branch["$ref"] for branch in _DEFS["task"]["oneOf"]]
    assert refs, "the DSL schema lists no task kinds"
    return [ref.rsplit("/", 1)[-1].removesuffix("Task") for ref in refs]


def _fields(node: Any) -> set[str]:
    """The top-level properties a task definition declares (those of ``taskBase`` excluded)."""
    if not isinstance(node, dict) or node.get("$ref") == "#/$defs/taskBase":
        return set()
    found = set(node.get("properties") or {})
    for key in ("allOf", "oneOf", "anyOf"):
        for branch in node.get(key, []):
            found |= _fields(branch)
    return found


def _task_lists(node: Any, at: tuple[str, ...], seen: frozenset[str]) -> Iterator[tuple[str, ...]]:
    """Key paths from a task definition to the task lists it holds (following ``$ref``s)."""
    if isinstance(node, list):
        for item in node:
            yield from _task_lists(item, at, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if ref == _TASK_LIST:
        yield at
        return
    if isinstance(ref, str) and ref not in seen and ref != "#/$defs/taskBase":
        yield from _task_lists(_DEFS[ref.rsplit("/", 1)[-1]], at, seen | {ref})
    for key, value in (node.get("properties") or {}).items():
        yield from _task_lists(value, (*at, key), seen)
    for key in ("allOf", "oneOf", "anyOf"):
        yield from _task_lists(node.get(key, []), at, seen)


def test_the_registry_covers_exactly_the_kinds_of_the_schema() -> None:
    assert set(TASK_KINDS) == set(_schema_kinds())
    assert set(_fields(_DEFS["taskBase"])) == COMMON_FIELDS


@pytest.mark.parametrize("name", _schema_kinds())
def test_each_kind_has_the_fields_and_task_lists_of_its_schema(name: str) -> None:
    kind = TASK_KINDS[name]
    definition = _DEFS[f"{name}Task"]
    assert kind.fields == _fields(definition)
    assert name in kind.fields
    in_schema = {keys for keys in _task_lists(definition, (), frozenset()) if (name, keys) not in _NOT_RUN}
    assert set(kind.task_lists) == in_schema


def test_precedence_gives_every_kind_to_its_own_tasks() -> None:
    """A task holding the fields of its kind is of that kind (``for`` holds a ``do``)."""
    for name, kind in TASK_KINDS.items():
        found = kind_of(dict.fromkeys(kind.fields))
        assert found is not None and found.name == name
    assert kind_of({"then": "end"}) is None


def test_nested_task_lists_are_walked_by_the_registry(document: Any) -> None:
    wf = document(
        [
            {"loop": {"for": {"in": "${ [1] }"}, "do": [{"a": {"set": {}}}]}},
            {"guard": {"try": [{"b": {"set": {}}}], "catch": {"do": [{"c": {"set": {}}}]}}},
            {"both": {"fork": {"branches": [{"d": {"set": {}}}]}}},
            {"ear": {"listen": {"to": {"any": []}}, "foreach": {"do": [{"e": {"set": {}}}]}}},
            {"block": {"do": [{"f": {"set": {}}}]}},
        ]
    )
    assert [path for path, _ in iter_task_lists(wf)] == [
        "/do",
        "/do/0/loop/do",
        "/do/1/guard/try",
        "/do/1/guard/catch/do",
        "/do/2/both/fork/branches",
        "/do/3/ear/foreach/do",
        "/do/4/block/do",
    ]


async def test_kinds_without_effects_only_compute(document: Any) -> None:
    pure = {name for name, kind in TASK_KINDS.items() if not kind.effects}
    assert pure == {"for", "do", "fork", "raise", "set", "switch", "try"}

    class Host(InProcessHost):
        """Every effect fails: tasks of kinds without effects must not need one."""

        async def http_request(self, *args: Any) -> Any:
            raise AssertionError("http_request")

        async def call_agent(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("call_agent")

        async def listen(self, *args: Any) -> Any:
            raise AssertionError("listen")

        async def emit(self, *args: Any) -> Any:
            raise AssertionError("emit")

        async def run_shell(self, *args: Any) -> Any:
            raise AssertionError("run_shell")

        async def run_script(self, *args: Any) -> Any:
            raise AssertionError("run_script")

        async def run_workflow(self, *args: Any) -> Any:
            raise AssertionError("run_workflow")

        async def sleep(self, seconds: float) -> None:
            raise AssertionError("sleep")

    wf = document(
        [
            {"loop": {"for": {"in": "${ [1, 2] }"}, "do": [{"add": {"set": "${ . + 1 }"}}]}},
            {"block": {"do": [{"same": {"set": "${ . }"}}]}},
            {"both": {"fork": {"branches": [{"x": {"set": "${ . }"}}]}}},
            {
                "pick": {
                    "switch": [
                        {"big": {"when": "${ length > 100 }", "then": "end"}},
                        {"small": {"then": "continue"}},
                    ]
                }
            },
            {
                "guard": {
                    "try": [{"fail": {"raise": {"error": {"type": "oops", "status": 400}}}}],
                    "catch": {"do": [{"back": {"set": "${ 7 }"}}]},
                }
            },
            {"last": {"set": "${ [., 1] }"}},
        ]
    )
    assert await run_workflow(wf, Host(), 0) == [7, 1]
