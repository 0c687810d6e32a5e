"""Fixtures: a real LocalBackend on a tmp SQLite file, a scripted stand-in LLM server, and the
test MCP server over streamable HTTP (the stand-ins come from ``stigmer.testing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stigmer.core import Backend
from stigmer.testing import ScriptedLLM, mcp_http_server
from stigmer.testing.agents import KEY


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``STIGMER_HOME``: stdio MCP servers' logs go under it, not the user's."""
    home = tmp_path / "home"
    monkeypatch.setenv("STIGMER_HOME", str(home))
    return home


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def http_mcp() -> Iterator[str]:
    """The test MCP server over streamable HTTP; yields its URL."""
    with mcp_http_server() as url:
        yield url
