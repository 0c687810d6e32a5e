"""Apply planning: dependency order, duplicates, and the dry-run diff."""

from __future__ import annotations

import pytest
from stigmer.cli._errors import CliError
from stigmer.cli.commands._apply import diff_manifests, order_resources
from stigmer.core import parse_manifest

STREAM = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: wf}
spec: {document: {dsl: 1.0.0, namespace: d, name: wf, version: 1.0.0}, do: []}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {name: bot}
spec: {instructions: hi, skills: [{name: faq}], environments: [prod]}
---
apiVersion: stigmer.ai/v1
kind: Environment
metadata: {name: prod}
spec: {variables: {A: "1"}}
---
apiVersion: stigmer.ai/v1
kind: Skill
metadata: {name: faq}
spec: {content: "# FAQ"}
---
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {name: gh}
spec: {stdio: {command: gh-mcp}}
"""


def test_dependency_order() -> None:
    ordered = order_resources(parse_manifest(STREAM, "all.yaml"))
    assert [r.kind for r in ordered] == ["Environment", "Skill", "McpServer", "Agent", "Workflow"]


def test_duplicates_are_refused() -> None:
    doc = "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: Bot}\nspec: {}\n"
    twice = parse_manifest(doc + "---\n" + doc.replace("Bot", "bot"), "a.yaml")
    with pytest.raises(CliError, match=r"agent/bot is declared twice \(a.yaml:1 and a.yaml:6\)"):
        order_resources(twice)


def test_executions_cannot_be_applied() -> None:
    doc = "apiVersion: stigmer.ai/v1\nkind: WorkflowExecution\nmetadata: {name: x}\nspec: {}\n"
    with pytest.raises(CliError, match="cannot be applied"):
        order_resources(parse_manifest(doc, "x.yaml"))


def test_diff_shows_spec_changes_only() -> None:
    before = parse_manifest(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot, id: agt_1, version: 1}\n"
        "spec: {instructions: old}\n",
        "a.yaml",
    )[0].resource
    after = parse_manifest(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot, id: agt_1, version: 2}\n"
        "spec: {instructions: new}\n",
        "a.yaml",
    )[0].resource
    diff = diff_manifests(before, after, "agent/bot")
    assert "--- agent/bot (stored)" in diff
    assert "-  instructions: old" in diff
    assert "+  instructions: new" in diff
    assert "version" not in diff and "agt_1" not in diff
    created = diff_manifests(None, after, "agent/bot")
    assert "+kind: Agent" in created
