"""A template's expressions that all run in this process run as one jq program: each still gives
its first result (null when it gives none), and a failure names the expression that failed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.runner.workflow import InProcessHost, WorkflowError, run_workflow
from stigmer.runner.workflow._expr import _evaluate_each, _joint_plan, evaluate_template

DATA = {"total": 3, "a": [1, 2], "s": "x", "f": 2.0, "sep": "\x00stigmer:next\x00", "o": {"k": None}}
VARIABLES = {"n": 5, "m": 2.5, "context": {"c": 1}, "input": {"i": True}}


def one_by_one(template: Any) -> Any:
    return _evaluate_each(template, DATA, VARIABLES, None)


@pytest.mark.parametrize(
    "template",
    [
        {"step": "${ $n }", "total": "${ .total + 1 }"},
        {
            "a": ["${ .a[0], .a[1] }", "literal", {"z": "${ empty }"}],
            "b": "${ $m }",
            "c": 3,
            "d": "${ empty }",
        },
        ["${ .s }", "${ .a | length }", "${ (.a), (.s) }", "${ .f }", "${ $context.c }", "${ $input }"],
        ["${ empty }", "${ empty }", "${ null }"],
        {"x": '${ "(" }', "y": '${ ")" + .s }'},
        {"x": "${ .total ) , ( .a }", "y": "${ 1 }"},  # unbalanced: each on its own
        {"x": "${ .sep }", "y": "${ 1 }", "z": "${ .sep, 2 }"},  # a body gives the separator itself
        {"x": "${ .o }", "y": "${ .o.k }", "z": "${ .missing }"},
    ],
)
def test_a_joint_program_gives_what_each_expression_gives_alone(template: Any) -> None:
    assert evaluate_template(template, DATA, VARIABLES) == one_by_one(template)


_bodies = st.lists(
    st.sampled_from(
        [
            ".total",
            ".total + 1",
            "$n",
            "$m * 2",
            ".a",
            ".a[0]",
            ".s",
            "empty",
            ".a[]?",
            "null",
            ".o.k",
            "1, 2",
            '"("',
        ]
    ),
    min_size=2,
    max_size=5,
)


@given(_bodies)
def test_any_expressions_give_together_what_they_give_alone(bodies: list[str]) -> None:
    template = {f"k{i}": f"${{ {body} }}" for i, body in enumerate(bodies)}
    assert evaluate_template(template, DATA, VARIABLES) == one_by_one(template)


def test_expressions_that_cannot_run_together_run_alone() -> None:
    assert _joint_plan(("[repeat(1)] | length", ".a"), ("n",)) is None  # not bounded: a jq process
    assert _joint_plan((".total ) , ( .a", ".a"), ("n",)) is None  # its parentheses do not balance
    names, _ = _joint_plan(("$n", ".total + $m"), ("context", "m", "n", "x")) or ((), None)
    assert names == ("m", "n")  # only what the bodies mention is bound


@pytest.mark.parametrize(
    ("template", "failing"),
    [
        ({"ok": "${ 1 }", "bad": "${ .s + 1 }"}, ".s + 1"),
        (['${ error("first") }', '${ error("second") }'], 'error("first")'),
        (
            {"a": "${ .a }", "b": {"c": "${ .total | ltrimstr(1) | tonumber }"}},
            ".total | ltrimstr(1) | tonumber",
        ),
    ],
)
def test_a_failure_names_the_expression_that_failed(template: Any, failing: str) -> None:
    with pytest.raises(WorkflowError) as joint:
        evaluate_template(template, DATA, VARIABLES)
    with pytest.raises(WorkflowError) as alone:
        one_by_one(template)
    assert joint.value.problem == alone.value.problem
    assert repr(failing) in str(joint.value.problem["detail"])


async def test_a_set_task_with_several_expressions_runs_as_before() -> None:
    workflow = {
        "document": {"dsl": "1.0.0", "namespace": "t", "name": "joint", "version": "1.0.0"},
        "do": [
            {"start": {"set": {"total": 0}}},
            {
                "loop": {
                    "for": {"each": "n", "in": "${ [range(3)] }"},
                    "do": [
                        {
                            "add": {
                                "set": {
                                    "step": "${ $n }",
                                    "total": "${ .total + 1 }",
                                    "name": "${ $task.name }",
                                }
                            }
                        }
                    ],
                }
            },
        ],
    }
    assert await run_workflow(workflow, InProcessHost()) == {"step": 2, "total": 3, "name": "add"}
