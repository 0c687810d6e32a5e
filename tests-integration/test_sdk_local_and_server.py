"""The same SDK program against the local store (runs in-process) and against a real `stigmer
server` process (the server runs them): define an agent and a workflow, apply, run, stream events,
answer an approval."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class StandInLLM:
    """OpenAI chat completions (streamed) on 127.0.0.1, answering from a script of replies."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                llm.requests.append(body)
                reply = llm.replies.pop(0) if llm.replies else {"text": "done"}
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for chunk in llm.chunks(reply, len(llm.requests)):
                    self.wfile.write(f"data: {chunk}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def chunks(self, reply: dict[str, Any], n: int) -> Iterator[str]:
        base = {"id": f"c{n}", "object": "chat.completion.chunk", "created": 1700000000, "model": "stand-in"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        yield chunk({"role": "assistant", "content": ""})
        if "text" in reply:
            yield chunk({"content": reply["text"]})
        if "tool" in reply:
            call = {
                "id": f"call_{n}",
                "type": "function",
                "function": {"name": reply["tool"], "arguments": json.dumps(reply["args"])},
            }
            yield chunk({"tool_calls": [{"index": 0, **call}]})
        yield chunk({}, "tool_calls" if "tool" in reply else "stop")
        yield json.dumps(
            {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        )
        yield "[DONE]"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def llm() -> Iterator[StandInLLM]:
    server = StandInLLM()
    yield server
    server.close()


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


def test_the_same_program_runs_locally_and_on_a_server(stigmer: Stigmer, llm: StandInLLM) -> None:
    llm.replies += [{"text": "bug"}, {"text": "question"}]
    output, events, direct = program(stigmer, llm.base_url)
    assert output == {"title": "crash on start", "label": "bug"}
    assert direct == "question"
    assert events[0] == "phase" and events[-1] == "phase"
    assert events.count("task.started") >= 2 and events.count("task.completed") >= 2
    assert llm.requests[0]["messages"][-1]["content"] == "Label this issue: crash on start"
    [listed] = stigmer.list("agent")
    assert listed.metadata.name == "triager"  # type: ignore[attr-defined]


def test_an_approval_is_answered_through_the_handle(
    stigmer: Stigmer, llm: StandInLLM, tmp_path: Path
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
    llm.replies += [{"tool": "close_ticket", "args": {"ticket": "T-7"}}, {"text": "Ticket T-7 is closed."}]
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
