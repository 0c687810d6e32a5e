"""Property tests: any document or text gives a workflow or a clear validation error — never
another exception, never a hang; arbitrary expressions give a value or an RFC 7807 fault."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.runner.workflow import (
    InProcessHost,
    Workflow,
    WorkflowError,
    WorkflowValidationError,
    load_workflow,
    validate_workflow,
)

EXAMPLES = [
    load_workflow(p.read_text(encoding="utf-8")).definition
    for p in sorted((Path(__file__).parent / "fixtures" / "examples").glob("*.yaml"))
]
KEYS = [
    "do",
    "document",
    "set",
    "call",
    "with",
    "then",
    "for",
    "in",
    "try",
    "catch",
    "fork",
    "branches",
    "x",
    "on",
    "use",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def check(source: Any) -> None:
    validation = validate_workflow(source)  # never raises: errors, warnings, references
    assert validation.ok == (validation.workflow is not None)
    assert all(w.warning for w in validation.warnings) and not any(e.warning for e in validation.errors)
    try:
        result = load_workflow(source)
    except WorkflowValidationError as error:
        assert not validation.ok
        assert error.problems
        assert all(isinstance(path, str) and message for path, message in error.problems)
        assert str(error).startswith("invalid workflow document")
    else:
        assert isinstance(result, Workflow)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_data_gives_a_clear_result(value: Any) -> None:
    check(value if isinstance(value, dict) else {"document": value, "do": value})
    check(value)


@settings(max_examples=150, deadline=2000)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_a_clear_result(text: str) -> None:
    check(text)


yaml_fragments = st.lists(
    st.sampled_from(
        [
            "document:",
            "do:",
            "  - a:",
            "    set:",
            "      x: 1",
            "[",
            "]",
            "{",
            "}",
            "&a",
            "*a",
            "!!binary",
            "? ",
            "- ",
            "\t",
            ":",
            "'",
            '"',
            "on: yes",
            "then: nowhere",
        ]
    ),
    max_size=25,
).map("\n".join)


@settings(max_examples=150, deadline=2000)
@given(yaml_fragments)
def test_yaml_shaped_noise_gives_a_clear_result(text: str) -> None:
    check(text)


def _mutate(document: Any, path: list[Any], replacement: Any, delete: bool) -> Any:
    target = document
    for step in path[:-1]:
        target = target[step]
    last = path[-1]
    if delete and isinstance(target, dict):
        del target[last]
    else:
        target[last] = replacement
    return document


def _paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, [*prefix, key]))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, [*prefix, index]))
    return found


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_spec_examples_give_a_clear_result(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(EXAMPLES)))
    path = data.draw(st.sampled_from(_paths(document, [])))
    replacement = data.draw(json_values)
    check(_mutate(document, path, replacement, data.draw(st.booleans())))


def test_alias_bombs_and_deep_nesting_are_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    for text in [bomb, "[" * 5000 + "]" * 5000, "a: &x [*x]"]:
        check(text)


jq_text = st.text(alphabet='.[]|+-*/()",{}:a1 $?', max_size=30)


@settings(max_examples=100, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(jq_text)
def test_arbitrary_expressions_give_a_value_or_a_workflow_error(expression: str) -> None:
    document = {
        "document": {"dsl": "1.0.0", "namespace": "p", "name": "p", "version": "1.0.0"},
        "do": [
            {"t": {"set": {"v": "${ " + expression + " }"}}},
            {"u": {"if": expression or ".", "set": {"w": 1}}},
        ],
    }
    try:
        workflow = load_workflow(document)
    except WorkflowValidationError:
        return

    async def run() -> Any:
        from stigmer.runner.workflow import run_workflow

        return await asyncio.wait_for(run_workflow(workflow, InProcessHost(), {"a": [1, "x"]}), timeout=5)

    try:
        asyncio.run(run())
    except WorkflowError as error:
        assert error.problem["type"].startswith("https://serverlessworkflow.io/spec/1.0.0/errors/")
        assert error.problem["instance"].startswith("/do/")


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | st.sampled_from(["PT1S", "P1D", "PT", "1S", "PT-1S", "P1Y2M", "-PT1S"]))
def test_a_duration_expression_gives_seconds_or_a_clear_fault(value: Any) -> None:
    """Whatever a duration expression yields (issue 17): non-negative seconds or a configuration
    fault naming the expression — never another exception."""
    from stigmer.runner.workflow import Interpreter
    from stigmer.runner.workflow._interpreter import Scope

    doc = {
        "document": {"dsl": "1.0.3", "namespace": "t", "name": "t", "version": "1.0.0"},
        "do": [{"a": {"set": {"x": 1}}}],
    }
    interpreter = Interpreter(doc, InProcessHost())
    try:
        seconds = asyncio.run(interpreter.duration("${ .v }", {"v": value}, Scope()))
    except WorkflowError as error:
        assert error.problem["status"] == 400
        assert "${ .v } gave" in str(error.problem["detail"]) and "is not a duration" in str(
            error.problem["detail"]
        )
    else:
        assert isinstance(seconds, float) and seconds >= 0
