"""Verbs upstream Stigmer users type, through the real `stigmer` command (issue 23): an upstream
agent applied and run with `run agent NAME MESSAGE --auto-approve`, `resume` of its session,
(a converted `listen` answered with `send-event --id`: test_fullstack_local.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stigmer.testing import MCP_SERVER, ScriptedLLM, call, text

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def agent(stigmer: StigmerCli, llm: ScriptedLLM, tmp_path: Path) -> str:
    """An upstream-shaped agent (agentic.stigmer.ai/v1, camelCase) whose tool needs approval."""
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "apiVersion: agentic.stigmer.ai/v1\nkind: McpServer\nmetadata: {name: items, org: acme}\n"
        f"spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}\n"
        "---\n"
        "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot, org: acme}\n"
        "spec:\n  instructions: Be brief and careful.\n"
        f"  config: {{model: 'openai-compatible/stand-in'}}\n"
        "  mcpServerUsages:\n"
        "    - mcpServerRef: {kind: mcp_server, org: acme, slug: items}\n"
        "      enabledTools: [delete_item]\n"
        "      toolApprovalOverrides: [{toolName: delete_item, requiresApproval: true}]\n"
    )
    result = stigmer("apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("notice: ") == 1  # one line for the file
    # the stand-in's URL: this project's field, set on the mapped agent
    got = json.loads(stigmer("get", "agent", "bot", "-o", "json").stdout)
    got["spec"]["model"]["baseUrl"] = llm.base_url
    for key in ("id", "slug", "version", "createdAt", "updatedAt"):
        got["metadata"].pop(key, None)
    got.pop("status", None)
    (tmp_path / "bot.json").write_text(json.dumps(got))
    assert stigmer("apply", "-f", str(tmp_path / "bot.json")).returncode == 0
    return "bot"


def test_run_agent_with_auto_approve_then_resume_the_session(
    stigmer: StigmerCli, llm: ScriptedLLM, agent: str
) -> None:
    llm.add(call("delete_item", item="42"))
    llm.add(text("Item 42 is gone."))
    done = stigmer("run", "agent", agent, "delete item 42", "--auto-approve", "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["phase"] == "SUCCEEDED" and data["output"] == "Item 42 is gone."
    events = [
        json.loads(line)
        for line in stigmer("execution", "logs", data["id"], "-o", "json").stdout.splitlines()
    ]
    resolved = next(e for e in events if e["type"] == "approval.resolved")
    assert resolved["data"]["approved"] is True

    llm.add(text("Still gone."))
    resumed = stigmer("resume", "-m", "and now?", "-o", "json")  # the latest session
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads(resumed.stdout)
    assert again["session"] == data["session"] and again["output"] == "Still gone."
    user_turns = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert user_turns == ["delete item 42", "and now?"]
    no_message = stigmer("resume", data["session"])
    assert no_message.returncode == 1 and "give the next message" in no_message.stderr
