"""A stdio MCP server's standard error: kept out of the run's terminal (a per-execution log file
under ``$STIGMER_HOME/logs/mcp``), and its last line, the command and the folder in the run's
error when the server fails to start or closes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from stigmer.core import Backend
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import MCP_SERVER, apply, openai_agent, start

P = execution_pb2


def _server(name: str, script: Path) -> str:
    return (
        f"apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {{name: {name}}}\n"
        f"spec: {{stdio: {{command: {sys.executable!r}, args: [{script.name!r}], cwd: {str(script.parent)!r}}}}}\n"
    )


async def test_a_server_that_exits_names_its_last_stderr_line_command_and_folder(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = tmp_path / "orders_mcp.py"
    script.write_text(
        "import sys\n"
        "print('starting the orders server', file=sys.stderr)\n"
        "print('Traceback (most recent call last):', file=sys.stderr)\n"
        "print(\"ModuleNotFoundError: No module named 'ordersdb'\", file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    await apply(backend, _server("orders", script))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: orders}]\n"))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_FAILED
    detail = done.status.error.detail
    assert "MCP server orders failed to start" in detail
    assert (done.status.error.title, done.status.error.instance) == ("MCP server failed", "/spec/mcpServers")
    assert "ModuleNotFoundError: No module named 'ordersdb'" in detail
    assert f"{sys.executable} orders_mcp.py" in detail
    assert str(tmp_path) in detail
    assert llm.requests == []


async def test_a_server_started_without_cwd_names_the_runners_folder(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The support example's failure on a worker: a relative path, looked up in the worker's folder."""
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    monkeypatch.chdir(worker_dir)
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: orders}\n"
        f"spec: {{stdio: {{command: {sys.executable!r}, args: [support/orders_mcp.py]}}}}\n",
    )
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: orders}]\n"))
    done = await AgentRunner().execute(backend, await start(backend, "bot", "hi"))

    assert done.status.phase == P.PHASE_FAILED
    detail = done.status.error.detail
    assert "support/orders_mcp.py" in detail and "No such file or directory" in detail
    assert f"folder {worker_dir}" in detail


async def test_server_stderr_goes_to_a_log_file_not_the_terminal(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path, _home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "chatty_mcp.py"
    script.write_text(
        "import runpy, sys\n"
        "print('CHATTY-SERVER-LOG-LINE', file=sys.stderr, flush=True)\n"
        f"sys.argv = [{MCP_SERVER!r}]\n"
        f"runpy.run_path({MCP_SERVER!r}, run_name='__main__')\n"
    )
    await apply(backend, _server("chatty", script))
    llm.add(call("add", a=1, b=2), text("3"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: chatty}]\n"))
    eid = await start(backend, "bot", "add")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    captured = capfd.readouterr()
    assert "CHATTY-SERVER-LOG-LINE" not in captured.err + captured.out
    log = _home / "logs" / "mcp" / f"{eid}-chatty.log"
    assert "CHATTY-SERVER-LOG-LINE" in log.read_text()


async def test_a_server_that_dies_during_a_call_names_its_last_stderr_line(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    await apply(backend, _server("calc", Path(MCP_SERVER)))
    llm.add(call("crash", reason="out of memory in the orders cache"), text("never"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc}]\n"))
    done = await AgentRunner().execute(backend, await start(backend, "bot", "crash"))

    assert done.status.phase == P.PHASE_FAILED
    detail = done.status.error.detail
    assert "MCP server calc closed during the run" in detail, detail
    assert "fatal: out of memory in the orders cache" in detail
    assert f"in folder {Path(MCP_SERVER).parent}" in detail
    assert len(llm.requests) == 1  # the model was not asked again with a broken tool
