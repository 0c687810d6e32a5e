"""An agent run on a terminal (a pseudo-terminal, ``pexpect``) in Lite shows the run and nothing
else: no pydantic-ai banner, no MCP server log lines or tracebacks (they go to the server's log
file under ``$STIGMER_HOME/logs/mcp``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
from stigmer.testing import MCP_SERVER, ScriptedLLM, call, cli_env, text

CHATTY = """\
import logging, runpy, sys
print("INFO:orders: CHATTY-SERVER-LOG-LINE started", file=sys.stderr, flush=True)
print("Traceback (most recent call last):", file=sys.stderr, flush=True)
print("  File 'orders.py', line 1, in CHATTY-TRACEBACK", file=sys.stderr, flush=True)
sys.argv = [{server!r}]
runpy.run_path({server!r}, run_name="__main__")
"""


def _terminal_env(home: Path, llm: ScriptedLLM) -> dict[str, str]:
    """The CLI's environment as a user's shell has it: not a test run, not CI (pydantic-ai hides
    its banner under either), with a terminal."""
    env = {**cli_env(home), **llm.env(), "TERM": "xterm-256color"}
    for key in ("PYTEST_VERSION", "PYTEST_CURRENT_TEST", "CI", "PYDANTIC_AI_NO_BANNER", "NO_COLOR"):
        env.pop(key, None)
    return env


def test_an_agent_run_on_a_terminal_shows_no_banner_and_no_mcp_server_output(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "chatty_mcp.py"
    script.write_text(CHATTY.format(server=MCP_SERVER))
    manifest = tmp_path / "agent.yaml"
    with ScriptedLLM([call("add", a=2, b=3), text("2 + 3 = 5")], default="OK") as llm:
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: calc}\n"
            f"spec: {{stdio: {{command: {sys.executable!r}, args: [chatty_mcp.py]}}}}\n"
            "---\n"
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: adder}\n"
            "spec:\n  instructions: Add.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
            "  mcpServers: [{name: calc, tools: [add]}]\n"
        )
        env = _terminal_env(home, llm)
        applied = subprocess.run(
            [sys.executable, "-m", "stigmer.cli", "apply", "-f", str(manifest)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        child = pexpect.spawn(
            sys.executable,
            ["-m", "stigmer.cli", "agent", "execute", "adder", "add 2 and 3"],
            env=env,
            cwd=str(home),  # another folder than the manifest's: its path was resolved at apply
            encoding="utf-8",
            timeout=90,
            dimensions=(50, 160),
        )
        child.expect(pexpect.EOF)
        child.close()
        screen = child.before or ""

    assert child.exitstatus == 0, screen
    assert "2 + 3 = 5" in screen and "succeeded" in screen, screen
    assert "pydantic-ai v" not in screen and "logfire" not in screen.lower(), screen
    assert "CHATTY" not in screen and "Traceback" not in screen, screen
    [log] = (home / "logs" / "mcp").glob("*-calc.log")
    assert "CHATTY-SERVER-LOG-LINE" in log.read_text()
    assert os.stat(log).st_mode & 0o077 == 0  # private, like every file under STIGMER_HOME
