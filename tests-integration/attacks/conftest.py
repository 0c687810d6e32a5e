"""The attack suite's shared pieces: a real shared ``stigmer server`` with three principals, and
a leak scanner that greps files and texts for a secret and its encoded forms.

Every attack in this folder is run as the attacker would run it (a ``user`` or ``runner`` token
against a real server process, or the ``stigmer`` command in Lite) and asserts two things: the
attack failed, and nothing it could have recorded holds the secret in any encoding.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from stigmer.backend.cloud import CloudBackend
from stigmer.server import ServerProcess, TokenStore, admin_token_path

__all__ = ["SharedServer", "StigmerCli", "encoded_forms", "find_leaks"]

#: The type of the ``stigmer`` fixture (``../conftest.py``): runs the CLI, returns the finished process.
StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


def encoded_forms(value: str) -> dict[str, bytes]:
    """The forms a secret can leak in, each as bytes to grep for (written independently of the
    product's masking code, so the suite checks it rather than repeats it)."""
    forms: dict[str, str] = {
        "raw": value,
        "json": json.dumps(value)[1:-1],
        "repr": repr(value)[1:-1],
        "quote": urllib.parse.quote(value, safe=""),
        "quote_plus": urllib.parse.quote_plus(value),
        "base64": base64.b64encode(value.encode()).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    }
    lines = [line for line in value.splitlines() if len(line.strip()) >= 8]
    if len(lines) > 1:
        for i, line in enumerate(lines):
            forms[f"line{i}"] = line
    out = {name: text.encode() for name, text in forms.items() if text}
    # A base64 form is only a leak when it is long enough not to occur by chance.
    return {name: data for name, data in out.items() if len(data) >= 8}


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.append(path)
    return found


def find_leaks(value: str, *, paths: Iterable[Path] = (), texts: Iterable[str | bytes] = ()) -> list[str]:
    """Where ``value`` (or an encoded form of it) occurs: ``file:form`` / ``text#i:form`` entries.

    ``paths`` are files or folders (searched recursively: the database, its WAL, logs, ...). The
    caller must pass at least one existing file or one text, so a scan of nothing cannot pass.
    """
    forms = encoded_forms(value)
    files = _files(paths)
    blobs: list[tuple[str, bytes]] = [(str(p), p.read_bytes()) for p in files]
    blobs += [(f"text#{i}", t.encode() if isinstance(t, str) else t) for i, t in enumerate(texts)]
    assert blobs, "find_leaks was given nothing to scan"
    hits: list[str] = []
    for where, data in blobs:
        for name, needle in forms.items():
            if needle in data:
                hits.append(f"{where}:{name}")
    return hits


@dataclass
class SharedServer:
    """A running ``stigmer server`` (executions run by the server) and its three principals."""

    process: ServerProcess
    home: Path
    admin_token: str
    user_token: str  # token name "mallory", role user
    runner_token: str  # token name "worker", role runner

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    def client(self, token: str) -> CloudBackend:
        return CloudBackend(self.endpoint, token=token)

    def admin(self) -> CloudBackend:
        return self.client(self.admin_token)

    def user(self) -> CloudBackend:
        return self.client(self.user_token)

    def runner(self) -> CloudBackend:
        return self.client(self.runner_token)

    def recorded(self) -> list[Path]:
        """Everything the server may have written: its home (database, WAL, logs, tokens)."""
        return [self.home]


async def start_shared_server(home: Path, *args: str) -> SharedServer:
    process = ServerProcess(home=home, database_url=f"sqlite:///{home / 'stigmer.db'}", args=list(args))
    await asyncio.to_thread(process.start)
    store = TokenStore(database_url=process.database_url)
    try:
        user = store.create("user", "mallory").token
        runner = store.create("runner", "worker").token
    finally:
        store.close()
    admin = admin_token_path(home).read_text().strip()
    return SharedServer(process=process, home=home, admin_token=admin, user_token=user, runner_token=runner)


@pytest_asyncio.fixture
async def shared_server(tmp_path: Path) -> AsyncIterator[SharedServer]:
    """A shared server with its defaults (executions run by the server, `run` capabilities off)."""
    server = await start_shared_server(tmp_path / "server-home")
    try:
        yield server
    finally:
        await asyncio.to_thread(server.process.stop)


@pytest.fixture
def shared_server_sync(tmp_path: Path) -> Iterator[SharedServer]:
    """``shared_server`` for synchronous tests (CLI processes)."""
    server = asyncio.run(start_shared_server(tmp_path / "server-home"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest_asyncio.fixture
async def keyed_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SharedServer, str]]:
    """A shared server whose master key is in its environment (``STIGMER_MASTER_KEY``, as an
    admin may deploy it), and that key's text: what a ``$ENV`` read would reveal."""
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("STIGMER_MASTER_KEY", key)
    server = await start_shared_server(tmp_path / "server-home")
    try:
        yield server, key
    finally:
        await asyncio.to_thread(server.process.stop)
