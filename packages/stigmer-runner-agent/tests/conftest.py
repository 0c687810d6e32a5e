"""Fixtures: a real LocalBackend on a tmp SQLite file, a scripted stand-in LLM server, and the
test MCP server over streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from agent_helpers import KEY, MCP_SERVER, free_port
from agent_standins import ScriptedLLM
from stigmer.core import Backend


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
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, MCP_SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
