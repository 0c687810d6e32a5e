"""The console script tells the truth: help works, the Temporal worker mode is not there yet."""

from __future__ import annotations

import subprocess
import sys

import pytest
from stigmer.runner.workflow._worker import main


def test_help_explains_the_temporal_mode_is_coming(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "Temporal worker mode arrives with the full-stack work" in " ".join(
        capsys.readouterr().out.split()
    )


def test_any_other_invocation_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "not available in this version" in capsys.readouterr().err


def test_the_installed_console_script_runs() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from stigmer.runner.workflow._worker import main; sys.exit(main())",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Temporal worker mode" in done.stderr
