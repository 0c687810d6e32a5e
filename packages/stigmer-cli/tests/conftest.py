"""Fixtures: run the CLI in-process in a temporary STIGMER_HOME."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("STIGMER_HOME", str(path))
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("STIGMER_CONTEXT", "STIGMER_DATABASE_URL", "STIGMER_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    from stigmer.cli._app import main
    from stigmer.cli._options import OPTIONS

    def run(*args: str) -> Result:
        OPTIONS.debug = False
        OPTIONS.context = ""
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
