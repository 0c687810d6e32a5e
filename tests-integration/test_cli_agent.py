"""`stigmer agent execute` end to end in Lite mode against a local stand-in LLM (OpenAI wire format):
streamed text, tool calls, and approvals (a printed hint, `execution approve`, an inline prompt)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
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
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: items}\n"
        f"spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}\n"
        "---\n"
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.base_url!r}}}\n"
        "  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
    )
    result = stigmer("apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mcpserver/items", "created", "agent/bot", "created"]
    return "bot"


def test_agent_answer_streams(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(text("Hello from the stand-in model."))
    live = stigmer("agent", "execute", agent, "hi there")
    assert live.returncode == 0, live.stderr
    assert "Hello from the stand-in model." in live.stdout
    assert live.stdout.count("Hello from the stand-in model.") == 1  # streamed, not repeated at the end
    assert llm.requests[-1]["messages"][-1]["content"] == "hi there"

    llm.add(text("Second answer."))
    result = stigmer("run", agent, "--message", "again", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "AgentExecution"
    assert data["phase"] == "SUCCEEDED"
    assert data["output"] == "Second answer."
    assert data["message"] == "again"
    assert data["target"] == {"kind": "Agent", "name": "bot"}
    assert data["usage"]["inputTokens"] == 11 and data["usage"]["requests"] == 1


def test_approval_without_a_terminal_then_approve(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(call("delete_item", item="42"))
    llm.add(text("Item 42 is gone."))
    paused = stigmer("agent", "execute", agent, "delete item 42")
    assert paused.returncode == 0, paused.stderr
    assert "approval requested: delete_item" in paused.stdout
    hint = paused.stderr.strip().splitlines()[-1]
    assert "waits for approval" in hint and "stigmer execution approve aex_" in hint
    ex_id = hint.split("stigmer execution approve ")[1].split("`")[0]
    waiting = json.loads(stigmer("execution", "get", ex_id, "-o", "json").stdout)
    assert waiting["phase"] == "WAITING_APPROVAL"
    assert waiting["pendingApproval"]["tool"] == "delete_item"
    assert waiting["pendingApproval"]["arguments"] == {"item": "42"}

    approved = stigmer("execution", "approve", ex_id, "-o", "json")
    assert approved.returncode == 0, approved.stderr
    done = json.loads(approved.stdout)
    assert done["phase"] == "SUCCEEDED"
    assert done["output"] == "Item 42 is gone."
    events = [
        json.loads(line) for line in stigmer("execution", "logs", ex_id, "-o", "json").stdout.splitlines()
    ]
    resolved = next(e for e in events if e["type"] == "approval.resolved")
    assert resolved["data"]["approved"] is True
    assert any(e["type"] == "tool.result" for e in events)


def test_approve_says_how_to_continue_the_session(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(call("delete_item", item="7"))
    llm.add(text("Item 7 is gone."))
    paused = stigmer("agent", "execute", agent, "delete item 7", "-o", "json")
    waiting = json.loads(paused.stdout)
    assert waiting["phase"] == "WAITING_APPROVAL", paused.stderr
    approved = stigmer("execution", "approve", waiting["id"])
    assert approved.returncode == 0, approved.stderr
    last = approved.stderr.strip().splitlines()[-1]
    assert last == f'continue: stigmer agent execute {agent} "…" --session {waiting["session"]}'


def _run_on_a_terminal(
    env: dict[str, str], args: list[str], answers: list[str], timeout: float = 90
) -> tuple[int, str, str]:
    """Run the CLI with stdin and stderr on a pseudo-terminal; answer each prompt in turn."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", *args],
        stdin=slave,
        stderr=slave,
        stdout=subprocess.PIPE,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = ""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if master in ready:
            try:
                seen += os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
        if pending and seen.rstrip().endswith(("[y/N]", "(optional):")):
            os.write(master, (pending.pop(0) + "\n").encode())
            seen += "\n"
    stdout = proc.communicate(timeout=max(1, deadline - time.monotonic()))[0].decode()
    while True:
        ready, _, _ = select.select([master], [], [], 0)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
    os.close(master)
    return proc.returncode, stdout, seen


def test_inline_rejection_on_a_terminal(
    stigmer: StigmerCli, llm: ScriptedLLM, agent: str, stigmer_env: dict[str, str]
) -> None:
    llm.add(call("delete_item", item="7"))
    llm.add(text("Understood, I kept item 7."))
    code, stdout, terminal = _run_on_a_terminal(
        stigmer_env, ["agent", "execute", agent, "delete item 7", "-o", "json"], ["n", "too risky"]
    )
    assert code == 0, terminal
    assert "approval needed: delete_item (MCP server items)" in terminal
    assert "approve? [y/N]" in terminal
    data = json.loads(stdout)
    assert data["phase"] == "SUCCEEDED"
    assert data["output"] == "Understood, I kept item 7."
    events = [
        json.loads(line)
        for line in stigmer("execution", "logs", data["id"], "-o", "json").stdout.splitlines()
    ]
    resolved = next(e for e in events if e["type"] == "approval.resolved")
    assert resolved["data"]["approved"] is False and resolved["text"] == "too risky"
    # the model heard about the refusal
    assert "too risky" in json.dumps(llm.requests[-1]["messages"])


def test_named_session_carries_the_conversation(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(text("Noted: 42."))
    llm.add(text("You said 42."))
    first = stigmer("agent", "execute", agent, "remember the number 42", "--session", "chat", "-o", "json")
    assert first.returncode == 0, first.stderr
    session_id = json.loads(first.stdout)["session"]
    assert session_id.startswith("ses_")
    second = stigmer("agent", "execute", agent, "which number?", "--session", "chat", "-o", "json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["session"] == session_id
    # the second turn's request carried the first turn
    assert "remember the number 42" in json.dumps(llm.requests[-1]["messages"])
    sessions = stigmer("get", "sessions")
    assert "chat" in sessions.stdout and "bot" in sessions.stdout


def test_a_run_without_a_session_can_be_continued(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(text("Noted: 42."), text("You said 42."), text("Hello again."))
    first = stigmer("agent", "execute", agent, "remember the number 42", "-o", "json")
    assert first.returncode == 0, first.stderr
    session_id = json.loads(first.stdout)["session"]
    assert session_id and session_id.startswith("ses_"), first.stdout
    second = stigmer("agent", "execute", agent, "which number?", "--session", session_id)
    assert second.returncode == 0, second.stderr
    # the second turn's request carried the first turn, question and answer
    history = [(m["role"], m.get("content")) for m in llm.requests[-1]["messages"] if m["role"] != "system"]
    assert history == [
        ("user", "remember the number 42"),
        ("assistant", "Noted: 42."),
        ("user", "which number?"),
    ]
    # the table output ends saying how to go on, with the same session
    assert second.stderr.strip().splitlines()[-1] == (
        f'continue: stigmer agent execute {agent} "…" --session {session_id}'
    ), second.stderr
    # a new run without --session starts a conversation of its own
    third = stigmer("run", agent, "--message", "hi", "-o", "json")
    assert json.loads(third.stdout)["session"] not in ("", None, session_id)
    assert [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"] == ["hi"]


def test_approval_in_a_cloud_context(stigmer: StigmerCli, llm: ScriptedLLM, tmp_path: Path) -> None:
    """Against a server: the server runs the agent; the CLI creates, watches and approves."""
    from stigmer.server import ServerProcess, TokenStore

    server_home = tmp_path / "server-home"
    server_home.mkdir()
    server = ServerProcess(home=server_home, args=["--allow-run"])  # the MCP server is a local command
    server.start()
    try:
        token = TokenStore(home=server_home).create(role="user").token
        assert stigmer("login", "--endpoint", server.endpoint, "--token", token).returncode == 0
        manifest = tmp_path / "agent.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: items}\n"
            f"spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}\n"
            "---\n"
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.base_url!r}}}\n"
            "  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        )
        assert stigmer("apply", "-f", str(manifest)).returncode == 0
        llm.add(call("delete_item", item="9"))
        llm.add(text("Item 9 is gone."))
        paused = stigmer("agent", "execute", "bot", "delete item 9")
        assert paused.returncode == 0, paused.stderr
        hint = paused.stderr.strip().splitlines()[-1]
        assert "waits for approval" in hint
        ex_id = hint.split("stigmer execution approve ")[1].split("`")[0]
        approved = stigmer("execution", "approve", ex_id, "-o", "json")
        assert approved.returncode == 0, approved.stderr
        done = json.loads(approved.stdout)
        assert done["phase"] == "SUCCEEDED"
        assert done["output"] == "Item 9 is gone."
    finally:
        assert server.stop() == 0


def test_a_servers_agent_ceiling_bounds_every_run(
    stigmer: StigmerCli, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """`stigmer server --agent-max-requests N`: a run asking for more gets N; the run that reaches
    it fails naming the limit, and the cost of what it spent is recorded."""
    from stigmer.server import ServerProcess, TokenStore

    server_home = tmp_path / "server-home"
    server_home.mkdir()
    refused = subprocess.run(
        [
            str(Path(sys.executable).with_name("stigmer-server")),
            "--home",
            str(server_home),
            "--agent-max-cost",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "must not be negative" in refused.stderr
    server = ServerProcess(home=server_home, args=["--agent-max-requests", "1"])
    server.start()
    try:
        token = TokenStore(home=server_home).create(role="user").token
        assert stigmer("login", "--endpoint", server.endpoint, "--token", token).returncode == 0
        manifest = tmp_path / "agent.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: gpt-4o-mini, baseUrl: {llm.base_url!r}}}\n"
        )
        assert stigmer("apply", "-f", str(manifest)).returncode == 0
        llm.add(call("no_such_tool"), text("never sent"))
        ran = stigmer("agent", "execute", "bot", "go", "--max-requests", "10", "-o", "json")
        assert ran.returncode == 1, ran.stderr
        out = json.loads(ran.stdout)
        assert out["phase"] == "FAILED"
        assert "max_requests = 1 model requests" in out["error"]["detail"]
        assert len(llm.requests) == 1
        described = json.loads(stigmer("execution", "get", out["id"], "-o", "json").stdout)
        assert described["usage"]["requests"] == 1 and described["usage"]["costUsd"] > 0
    finally:
        assert server.stop() == 0
