"""Fixtures: a private STIGMER_HOME (real SQLite store) and a sync client on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.sdk import Stigmer


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's STIGMER_* settings; the master key is fixed and local."""
    import os

    for key in list(os.environ):
        if key.startswith("STIGMER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STIGMER_MASTER_KEY", "a" * 64)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Iterator[Stigmer]:
    with Stigmer(home=home) as stigmer:
        yield stigmer
