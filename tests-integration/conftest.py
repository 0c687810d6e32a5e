"""Shared fixtures of the integration tests.

``stigmer``: run the real ``stigmer`` command (``python -m stigmer.cli`` in this environment) in a
fresh ``STIGMER_HOME`` with a real SQLite store; returns the completed process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI process: a private home, no colour, no inherited context."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update({"STIGMER_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}, **extra)
    return env


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return home


@pytest.fixture
def stigmer(stigmer_home: Path, tmp_path: Path) -> StigmerCli:
    def run(
        *args: str, input: str | None = None, timeout: float = 90, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stigmer.cli", *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**cli_env(stigmer_home), **(env or {})},
        )

    return run
