"""The conformance suite, unchanged, against CloudBackend -> a real `stigmer server` process -> LocalBackend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.conformance import *  # noqa: F403
from stigmer.server import ServerProcess

pytest_plugins = ["stigmer.conformance.plugin"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: the suite uses unique names, so a shared store is fine."""
    home: Path = tmp_path_factory.mktemp("server-conformance")
    process = ServerProcess(
        home=home,
        database_url=f"sqlite:///{home / 'stigmer.db'}",
        # The suite drives executions itself, as a runner would.
        args=["--no-run-executions", "--log-level", "WARNING"],
    )
    process.start()
    yield process
    assert process.stop() == 0, "the server did not shut down cleanly"


@pytest.fixture
def backend_factory(server: ServerProcess) -> Callable[[], Awaitable[CloudBackend]]:
    """New clients of the server; the admin token is read from $STIGMER_HOME/tokens/admin (loopback)."""

    async def make() -> CloudBackend:
        return CloudBackend(server.endpoint, home=server.home, timeout=30)

    return make


def test_server_log_has_no_tracebacks(server: ServerProcess) -> None:
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-4000:]
