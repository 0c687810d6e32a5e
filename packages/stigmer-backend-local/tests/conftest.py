"""Fixtures of the local store's tests: a LocalBackend on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.testing import postgres_schema

KEY = bytes(range(32))


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:  # postgres_url: fails loudly in CI if unset
    """A schema of its own in the session's PostgreSQL database (tests count what they list)."""
    with postgres_schema(prefix="stigmer_store") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalBackend]:
    """A LocalBackend on a new SQLite file, and on a new PostgreSQL schema (a module's tests take
    it as ``backend``: the conformance suite's own fixture has that name)."""
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgres" else None
    b = LocalBackend(url or f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    try:
        yield b
    finally:
        await b.close()
