"""Two `stigmer server` processes on one PostgreSQL database, behind one address (issue 24)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from stigmer.server import ServerProcess

pytestmark = pytest.mark.postgres


def test_two_servers_started_together_on_a_fresh_database_both_come_up(
    postgres_url: str, tmp_path: Path
) -> None:
    servers = [
        ServerProcess(home=tmp_path / name, database_url=postgres_url, args=["--no-run-executions"])
        for name in ("a", "b", "c")
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
            started = list(pool.map(lambda s: s.start(), servers))
        assert len(set(started)) == len(servers)
        for server in servers:
            assert server.running()
            assert (server.home / "tokens" / "admin").is_file()
            assert "revoke it first" not in server.log_path.read_text()
    finally:
        for server in servers:
            server.stop()
