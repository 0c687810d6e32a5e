"""A stdio MCP server is a local process: it starts only when the backend grants the ``run``
capability (a real LocalBackend with and without it, the scripted stand-in LLM)."""

from __future__ import annotations

from pathlib import Path

from stigmer.backend.local import LocalBackend
from stigmer.core import from_value
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import KEY, apply, openai_agent, start, stdio_server

P = execution_pb2


def _marking_server(name: str, marker: Path) -> str:
    """An McpServer whose command would leave ``marker`` behind if it were ever started."""
    return (
        f"apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {{name: {name}}}\n"
        f"spec: {{stdio: {{command: sh, args: ['-c', 'touch {marker}']}}}}\n"
    )


async def test_a_stdio_mcp_server_is_refused_without_the_run_capability(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    marker = tmp_path / "started"
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY, allow_run=False)
    try:
        await apply(backend, _marking_server("local", marker))
        await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: local}]\n"))
        done = await AgentRunner().execute(backend, await start(backend, "bot", "hi"))
    finally:
        await backend.close()
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.status == 403
    assert done.status.error.detail == (
        "MCP server local (stdio: a local command) is not allowed on this server; "
        "an admin can enable it with `stigmer server --allow-run`"
    )
    assert not marker.exists()
    assert llm.requests == []  # refused before the model was asked anything


async def test_with_the_run_capability_the_stdio_server_runs(tmp_path: Path, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=2, b=3), text("5"))
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY, allow_run=True)
    try:
        await apply(backend, stdio_server("calc"))
        await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc, tools: [add]}]\n"))
        done = await AgentRunner().execute(backend, await start(backend, "bot", "2+3?"))
    finally:
        await backend.close()
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "5"
