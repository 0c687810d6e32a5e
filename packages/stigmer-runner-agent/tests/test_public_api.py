"""The public API, the plugin entry point, cheap import, and the worker script."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import stigmer.runner.agent as agent_pkg
from stigmer.core import Runner, load_runner
from stigmer.runner.agent import AgentRunner


def test_exported_names() -> None:
    assert agent_pkg.__all__ == ["AgentRunner"]
    for name in agent_pkg.__all__:
        assert getattr(agent_pkg, name) is not None


def test_entry_point_and_protocol() -> None:
    (ep,) = [e for e in entry_points(group="stigmer.runners") if e.name == "agent"]
    assert ep.value == "stigmer.runner.agent:AgentRunner"
    assert ep.load() is AgentRunner
    assert isinstance(load_runner("agent"), Runner)
    assert isinstance(AgentRunner(), Runner)


def test_import_is_cheap() -> None:
    code = (
        "import sys, stigmer.runner.agent\n"
        "heavy = [m for m in ('pydantic_ai', 'openai', 'anthropic', 'mcp', 'fastmcp', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_worker_help_describes_the_temporal_worker() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "stigmer.runner.agent._worker", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    assert "Temporal worker for Stigmer agent executions" in " ".join(helped.stdout.split())
    ran = subprocess.run(
        [sys.executable, "-m", "stigmer.runner.agent._worker", "--token-file", "/nonexistent/token"],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 1
    assert "cannot read the token file" in ran.stderr
