"""The public API, the plugin entry point, cheap import, and the worker script."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest
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


def test_worker_options_parse_with_their_defaults_and_aliases() -> None:
    from stigmer.runner.agent._worker import build_parser
    from stigmer.temporal import TemporalConnection

    defaults = build_parser().parse_args([])
    assert (defaults.task_queue, defaults.concurrency) == ("stigmer-agents", 50)
    assert (
        TemporalConnection.from_args(defaults, environ={}).describe() == "127.0.0.1:7233 (namespace default)"
    )
    args = build_parser().parse_args(
        [
            "--backend",
            "grpc://h:1",
            "--token",
            "t",
            "--temporal",
            "t:7233",
            "--namespace",
            "n",
            "--concurrency",
            "2",
        ]
    )
    assert (args.endpoint, args.token, args.temporal, args.namespace, args.concurrency) == (
        "grpc://h:1",
        "t",
        "t:7233",
        "n",
        2,
    )
    assert build_parser().parse_args(["--max-concurrent", "3"]).concurrency == 3
    for bad in (["--concurrency", "0"], ["--token", "a", "--token-file", "f"]):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(bad)
        assert exited.value.code == 2


def test_worker_help_names_every_option() -> None:
    from stigmer.runner.agent._worker import build_parser

    text = build_parser().format_help()
    for option in (
        "--backend",
        "--endpoint",
        "--token ",
        "--token-file",
        "--temporal",
        "--namespace",
        "--task-queue",
        "--concurrency",
    ):
        assert option in text, option


def test_the_agent_worker_gets_the_token_and_the_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import stigmer.runner.agent._temporal_worker as temporal_worker
    from stigmer.runner.agent._worker import main

    seen: dict[str, Any] = {}

    def fake_run_worker(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    def fake_exit(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(temporal_worker, "run_worker", fake_run_worker)
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setenv("STIGMER_TOKEN", "from-env")
    with pytest.raises(SystemExit):
        main(["--token", "from-flag", "--concurrency", "4", "--task-queue", "q"])
    assert (seen["token"], seen["max_concurrent"], seen["task_queue"]) == ("from-flag", 4, "q")
    with pytest.raises(SystemExit):
        main([])
    assert seen["token"] == "from-env"
