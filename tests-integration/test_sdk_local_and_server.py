"""The same SDK program against the local store (runs in-process) and against a real `stigmer
server` process (the server runs them): define an agent and a workflow, apply, run, stream events,
answer an approval."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.sdk import (
    Agent,
    ApprovalRequired,
    CallAgent,
    McpServer,
    McpUsage,
    Model,
    Set,
    Stigmer,
    Workflow,
)
from stigmer.server import ServerProcess
from stigmer.testing import ScriptedLLM, call, text

MCP_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("sdk-test")


@server.tool()
def close_ticket(ticket: str) -> str:
    """Close a ticket (needs a human's approval)."""
    return f"closed {ticket}"


if __name__ == "__main__":
    server.run()
'''


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture(params=["local", "server"])
def stigmer(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stigmer]:
    """A client of a fresh local store, or of a fresh `stigmer server` process on 127.0.0.1."""
    monkeypatch.setenv("STIGMER_MASTER_KEY", "b" * 64)
    if request.param == "local":
        with Stigmer(home=tmp_path / "local") as client:
            assert client.local
            yield client
        return
    home = tmp_path / "server"
    # One person's own server: its runs may start the stdio MCP server, as in Lite.
    server = ServerProcess(home=home, database_url=f"sqlite:///{home / 'stigmer.db'}", args=["--allow-run"])
    server.start()
    try:
        with Stigmer(endpoint=server.endpoint, home=home) as client:  # the admin token of a loopback server
            assert not client.local
            yield client
    finally:
        assert server.stop() == 0
        assert "Traceback" not in server.log_path.read_text()


def program(stigmer: Stigmer, llm_url: str) -> tuple[Any, list[str], Any]:
    """What an application does, written once."""
    triager = Agent(
        "triager",
        instructions="Answer with one word: bug, feature or question.",
        model=Model("openai-compatible", "stand-in", base_url=llm_url),
    )
    triage = Workflow(
        "triage",
        namespace="apps",
        do={
            "ask": CallAgent(triager, '${ "Label this issue: " + .title }'),
            "answer": Set({"title": "${ $workflow.input.title }", "label": "${ . }"}),
        },
    )
    stigmer.apply(triage, triager)
    run = stigmer.run("triage", input={"title": "crash on start"})
    events = [event.type for event in run]
    direct = stigmer.run("triager", message="Is this a bug?").result(timeout=60)
    return run.result(timeout=60), events, direct


def test_the_same_program_runs_locally_and_on_a_server(stigmer: Stigmer, llm: ScriptedLLM) -> None:
    llm.add(text("bug"), text("question"))
    output, events, direct = program(stigmer, llm.base_url)
    assert output == {"title": "crash on start", "label": "bug"}
    assert direct == "question"
    assert events[0] == "phase" and events[-1] == "phase"
    assert events.count("task.started") >= 2 and events.count("task.completed") >= 2
    assert llm.requests[0]["messages"][-1]["content"] == "Label this issue: crash on start"
    [listed] = stigmer.list("agent")
    assert listed.metadata.name == "triager"  # type: ignore[attr-defined]


def test_an_approval_is_answered_through_the_handle(
    stigmer: Stigmer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = tmp_path / "tickets_mcp.py"
    script.write_text(MCP_SERVER)
    tickets = McpServer("tickets", command=sys.executable, args=[str(script)])
    agent = Agent(
        "helpdesk",
        instructions="Be brief.",
        model=Model("openai-compatible", "stand-in", base_url=llm.base_url),
        mcp_servers=[McpUsage(tickets, tools=["close_ticket"], require_approval=["close_ticket"])],
    )
    stigmer.apply(tickets, agent)
    llm.add(call("close_ticket", ticket="T-7"), text("Ticket T-7 is closed."))
    run = stigmer.run("helpdesk", message="close T-7")
    seen = [event.type for event in run]  # stops at the approval
    assert "approval.requested" in seen and run.phase == "WAITING_APPROVAL"
    with pytest.raises(ApprovalRequired) as info:
        run.result(timeout=60)
    assert info.value.approval.tool == "close_ticket"
    run.approve("fine")
    assert run.result(timeout=60) == "Ticket T-7 is closed."
    rest = [event.type for event in run]
    assert "approval.resolved" in rest and "tool.result" in rest
