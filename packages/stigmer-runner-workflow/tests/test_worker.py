"""The console script: help describes the Temporal worker; bad set-ups fail with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stigmer.runner.workflow._worker import main


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
            "import sys; from stigmer.runner.workflow._worker import main; sys.exit(main(['--help']))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "stigmer-workflow-runner" in done.stdout
