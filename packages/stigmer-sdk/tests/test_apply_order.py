"""Apply order (what others refer to first) and the one-declaration-per-kind+name check."""

from __future__ import annotations

import pytest
from stigmer.core import APPLY_ORDER, InvalidArgument, parse_manifest
from stigmer.sdk._apply_order import order_resources


def _doc(kind: str, name: str) -> str:
    return f"apiVersion: stigmer.ai/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {{}}\n"


def test_referenced_kinds_first_sessions_last_stable_within_a_rank() -> None:
    kinds = ["Session", "Workflow", "Agent", "McpServer", "Environment", "Skill", "Agent"]
    names = ["s", "wf", "bot", "gh", "prod", "faq", "helper"]
    stream = "---\n".join(_doc(k, n) for k, n in zip(kinds, names, strict=True))
    ordered = order_resources(parse_manifest(stream, "all.yaml"))
    assert [(r.kind, r.name) for r in ordered] == [
        ("McpServer", "gh"),
        ("Environment", "prod"),
        ("Skill", "faq"),
        ("Agent", "bot"),
        ("Agent", "helper"),
        ("Workflow", "wf"),
        ("Session", "s"),
    ]
    assert set(APPLY_ORDER) == {
        "Skill",
        "McpServer",
        "Environment",
        "Agent",
        "Workflow",
        "Session",
        "Schedule",
        "Trigger",
    }
    assert APPLY_ORDER["Schedule"] > APPLY_ORDER["Workflow"] > APPLY_ORDER["Agent"]  # it targets them
    assert APPLY_ORDER["Trigger"] > APPLY_ORDER["Workflow"]


def test_same_kind_and_slug_twice_names_both_sources() -> None:
    first = parse_manifest(_doc("McpServer", "GitHub"), "a.yaml")
    second = parse_manifest(_doc("Agent", "x") + "---\n" + _doc("McpServer", "github"), "b.yaml")
    with pytest.raises(InvalidArgument) as exc:
        order_resources(first + second)
    assert str(exc.value) == "mcpserver/github is declared twice (a.yaml:1 and b.yaml:6); keep one"


def test_same_name_different_kinds_is_fine() -> None:
    loaded = parse_manifest(_doc("Agent", "triage") + "---\n" + _doc("Workflow", "triage"), "t.yaml")
    assert [r.kind for r in order_resources(loaded)] == ["Agent", "Workflow"]


@pytest.mark.parametrize("kind", ["AgentExecution", "WorkflowExecution"])
def test_executions_cannot_be_applied(kind: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^x.yaml:1: kind {kind} cannot be applied"):
        order_resources(parse_manifest(_doc(kind, "x"), "x.yaml"))


def test_nothing_in_nothing_out() -> None:
    assert order_resources([]) == []
