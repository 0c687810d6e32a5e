"""The conformance suite against LocalBackend on a SQLite file."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.conformance import *  # noqa: F403

pytest_plugins = ["stigmer.conformance.plugin"]

KEY = os.urandom(32)


@pytest.fixture
def backend_factory(tmp_path: Path) -> Callable[[], Awaitable[LocalBackend]]:
    """New clients of one SQLite file per test (the suite uses a second one as `backend_peer`)."""

    async def make() -> LocalBackend:
        return LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)

    return make
