"""``$task`` describes the running task to the expressions that name it; a document that never
names it runs without each task being described."""

from __future__ import annotations

from typing import Any

from stigmer.runner.workflow import InProcessHost, load_workflow, run_workflow

DOCUMENT = {"dsl": "1.0.0", "namespace": "t", "name": "task-variable", "version": "1.0.0"}


def loop(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "document": DOCUMENT,
        "do": [
            {"start": {"set": {"total": 0}}},
            {"loop": {"for": {"each": "n", "in": "${ [range(2)] }"}, "do": [{"add": {"set": body}}]}},
        ],
    }


async def test_a_document_that_names_task_anywhere_has_every_task_described() -> None:
    workflow = loop(
        {
            "total": "${ .total + 1 }",
            "name": "${ $task.name }",
            "reference": "${ $task.reference }",
            "input": "${ $task.input }",
            "started": "${ $task.startedAt.iso8601 | type }",
            "epoch": "${ $task.startedAt.epoch.milliseconds > 0 }",
        }
    )
    assert load_workflow(workflow).mentions_task
    out = await run_workflow(workflow, InProcessHost())
    assert out["name"] == "add"
    assert out["reference"] == "/do/1/loop/do/0/add"
    assert out["input"]["total"] == 1 and out["started"] == "string" and out["epoch"] is True


async def test_a_document_that_never_names_task_runs_the_same() -> None:
    workflow = loop({"total": "${ .total + 1 }", "step": "${ $n }", "literal": "task"})
    assert not load_workflow(workflow).mentions_task
    assert await run_workflow(workflow, InProcessHost()) == {"total": 2, "step": 1, "literal": "task"}


def test_any_mention_counts_even_in_use_or_a_nested_list() -> None:
    nested = loop({"x": "${ .total }"})
    nested["use"] = {
        "errors": {"e": {"type": "https://example.com/e", "status": 400, "detail": "${ $task.name }"}}
    }
    assert load_workflow(nested).mentions_task
