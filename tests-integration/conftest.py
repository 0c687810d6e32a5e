"""Shared fixtures of the integration tests.

``stigmer``: run the real ``stigmer`` command (``python -m stigmer.cli`` in this environment) in a
fresh ``STIGMER_HOME`` with a real SQLite store; returns the completed process.
``console_server``: a ``stigmer server`` with its web console, an admin and a user token.
``fullstack_world``: the URLs the full-stack tests' workflows call and their stand-in model
(``stigmer.testing.FullstackWorld``). The stand-ins themselves live in ``stigmer.testing``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from stigmer.testing import (
    FullstackWorld,
    ScriptedLLM,
    cli_env,
    free_port,
    self_signed_cert,
    wait_for_port,
)

if TYPE_CHECKING:
    from stigmer.backend.cloud import CloudBackend
    from stigmer.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return home


# Runs the CLI as if the named plugins were not installed (their entry points hidden).
_HIDE_PLUGINS = """
import importlib.metadata as md, sys
def entry_points(**kw):
    # every installed entry point but the hidden ones (all groups, as Python 3.12 gives them)
    kept = md.EntryPoints(
        ep for dist in md.distributions() for ep in dist.entry_points if ep.name not in {hidden!r}
    )
    return kept.select(**kw) if kw else kept
md.entry_points = entry_points
from stigmer.cli._app import main
main(sys.argv[1:])
"""


@pytest.fixture
def stigmer(stigmer_home: Path, tmp_path: Path) -> StigmerCli:
    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 90,
        env: dict[str, str] | None = None,
        hide_plugins: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stigmer.cli"]
        if hide_plugins:
            command = [sys.executable, "-c", _HIDE_PLUGINS.format(hidden=set(hide_plugins))]
        return subprocess.run(
            [*command, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**cli_env(stigmer_home), **(env or {})},
        )

    return run


@pytest.fixture
def stigmer_env(stigmer_home: Path) -> dict[str, str]:
    """The environment the ``stigmer`` fixture runs the CLI with (for processes started by hand)."""
    return cli_env(stigmer_home)


@pytest.fixture
def make_cert(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """``make_cert(name)``: a self-signed certificate and key named ``name`` in the test's folder
    (``tls_files``, the one named ``server`` in a folder of its own, comes with ``stigmer.testing``)."""
    return lambda name: self_signed_cert(tmp_path, name=name)


@pytest.fixture(scope="module")
def fullstack_world() -> Iterator[FullstackWorld]:
    with FullstackWorld() as world:
        yield world


@dataclass
class ConsoleServer:
    """A real ``stigmer server`` process with its HTTP listener (the web console at ``url``),
    an admin token and a ``user`` token, and the stand-in model its agents talk to."""

    process: ServerProcess
    home: Path
    url: str  # http://127.0.0.1:PORT/console
    admin: str
    user: str
    llm: ScriptedLLM

    def backend(self, token: str | None = None) -> CloudBackend:
        from stigmer.backend.cloud import CloudBackend

        return CloudBackend(self.process.endpoint, token=token or self.admin)

    def call(self, method: str, request: object, token: str | None = None) -> Any:
        """One Backend call over gRPC (a fresh channel in a fresh event loop, in a thread of its own:
        Playwright's sync API keeps a loop running in this one)."""

        async def go() -> Any:
            backend = self.backend(token)
            try:
                return await getattr(backend, method)(request)
            finally:
                await backend.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    from stigmer.server import ServerProcess, TokenStore, admin_token_path

    home = tmp_path_factory.mktemp("console") / "server-home"
    port = free_port()
    process = ServerProcess(
        home=home,
        database_url=f"sqlite:///{home / 'stigmer.db'}",
        args=["--http-listen", f"127.0.0.1:{port}"],
    )
    with ScriptedLLM() as llm:
        process.start()
        try:
            wait_for_port(port)
            store = TokenStore(database_url=process.database_url)
            try:
                user = store.create("user", "mallory").token
            finally:
                store.close()
            admin = admin_token_path(home).read_text().strip()
            yield ConsoleServer(process, home, f"http://127.0.0.1:{port}/console", admin, user, llm)
        finally:
            process.stop()
