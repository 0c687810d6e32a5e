"""The console script: help describes the Temporal worker; bad set-ups fail with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stigmer.runner.workflow._main import build_parser, main


def test_help_describes_the_temporal_worker(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Temporal worker for Stigmer workflow executions" in text
    for option in ("--temporal", "--task-queue", "--endpoint", "--token-file"):
        assert option in text


def test_an_unreadable_token_file_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--token-file", str(tmp_path / "missing")]) == 1
    assert "cannot read the token file" in capsys.readouterr().err


def test_the_installed_console_script_runs() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from stigmer.runner.workflow._main import main; sys.exit(main(['--help']))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "stigmer-workflow-runner" in done.stdout


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("--backend", "--token ", "--namespace", "--concurrency", "--max-concurrent"):
        assert option in text, option


def test_options_parse_with_their_defaults_and_aliases() -> None:
    from stigmer.temporal import TemporalConnection

    defaults = build_parser().parse_args([])
    assert (defaults.task_queue, defaults.concurrency) == ("stigmer-workflows", 100)
    assert (
        TemporalConnection.from_args(defaults, environ={}).describe() == "127.0.0.1:7233 (namespace default)"
    )
    args = build_parser().parse_args(
        [
            "--backend",
            "grpcs://stigmer.internal:7234",
            "--token",
            "tok",
            "--temporal",
            "temporal.internal:7233",
            "--namespace",
            "prod",
            "--task-queue",
            "q1",
            "--concurrency",
            "7",
        ]
    )
    assert args.endpoint == "grpcs://stigmer.internal:7234"
    assert (args.token, args.temporal, args.namespace, args.task_queue, args.concurrency) == (
        "tok",
        "temporal.internal:7233",
        "prod",
        "q1",
        7,
    )
    assert build_parser().parse_args(["--max-concurrent", "3"]).concurrency == 3


@pytest.mark.parametrize(
    "bad", [["--concurrency", "0"], ["--concurrency", "x"], ["--token", "a", "--token-file", "f"]]
)
def test_bad_options_exit_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(bad)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def _captured_run(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, Any]:
    import stigmer.runner.workflow.temporal._worker as temporal_worker

    seen: dict[str, Any] = {}

    def fake_run_worker(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    def fake_exit(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(temporal_worker, "run_worker", fake_run_worker)
    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        main(argv)
    return seen


def test_the_worker_gets_the_token_and_the_concurrency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STIGMER_TOKEN", "from-env")
    seen = _captured_run(monkeypatch, ["--token", "from-flag", "--concurrency", "4", "--namespace", "ns"])
    assert (seen["token"], seen["max_concurrent"], seen["temporal"].namespace) == ("from-flag", 4, "ns")
    assert _captured_run(monkeypatch, [])["token"] == "from-env"
    token_file = tmp_path / "runner.token"
    token_file.write_text("from-file\n")
    assert _captured_run(monkeypatch, ["--token-file", str(token_file)])["token"] == "from-file"
