"""`stigmer server` and its tokens on PostgreSQL (``STIGMER_TEST_POSTGRES_URL``), in a fresh schema."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import grpc
import pytest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import ServerProcess, TokenStore
from stigmer.testing import postgres_schema

pytestmark = pytest.mark.postgres


def test_token_store_on_postgres(postgres_url: str) -> None:
    store = TokenStore(database_url=postgres_url)
    issued = store.create("runner", "pg-worker")
    principal = store.verify(issued.token)
    assert principal is not None and principal.role == "runner"
    other = TokenStore(database_url=postgres_url)
    assert [t.name for t in other.list()] == ["pg-worker"]
    other.revoke("pg-worker")
    assert store.verify(issued.token) is None
    store.close()
    other.close()


def test_server_on_postgres_accepts_tokens_from_the_same_database(postgres_url: str, tmp_path: Path) -> None:
    server = ServerProcess(home=tmp_path, database_url=postgres_url, args=["--no-run-executions"])
    address = server.start()
    store = TokenStore(database_url=postgres_url)
    token = store.create("user", "pg-user").token
    store.close()
    assert not (tmp_path / "tokens.db").exists()  # tokens live in PostgreSQL
    with grpc.insecure_channel(address) as channel:
        listed = svc_grpc.BackendServiceStub(channel).List(
            svc.ListRequest(kind="Agent"), metadata=(("authorization", f"Bearer {token}"),), timeout=10
        )
    assert list(listed.resources) == []
    assert server.stop() == 0


def _start_admin(url: str, home: Path, barrier: Any, out: Any) -> None:
    from stigmer.server import ensure_admin_token

    store = TokenStore(database_url=url)
    store.list()  # the table exists: the race is in the admin token itself
    barrier.wait()
    try:
        out.put((str(home), ensure_admin_token(store, home)))
    except Exception as exc:
        out.put((str(home), f"error: {exc}"))
    finally:
        store.close()


def _admins_started_together(url: str, homes: list[Path]) -> dict[str, str]:
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(len(homes)), ctx.Queue()
    procs = [ctx.Process(target=_start_admin, args=(url, home, barrier, out)) for home in homes]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(30)
    return results


def test_servers_started_together_each_get_an_admin_token(tmp_path: Path) -> None:
    """Issue 24: servers with their own homes, started at once on one database, raced for the
    name 'admin' and one refused to start ("an active token named 'admin' exists")."""
    for round_ in range(4):
        with postgres_schema() as url:
            _check_round(url, tmp_path / f"round-{round_}")


def _check_round(postgres_url: str, base: Path) -> None:
    homes = [base / f"server-{i}" for i in range(6)]
    tokens = _admins_started_together(postgres_url, homes)
    assert sorted(tokens) == sorted(map(str, homes))
    assert not [t for t in tokens.values() if t.startswith("error")], tokens
    store = TokenStore(database_url=postgres_url)
    admins = [t for t in store.list() if not t.revoked and t.role == "admin"]
    assert len(admins) == len(homes)
    assert [t.name for t in admins].count("admin") == 1  # the name is taken once, under a lock
    for home, token in tokens.items():
        principal = store.verify(token)
        assert principal is not None and principal.role == "admin"
        assert (Path(home) / "tokens" / "admin").read_text().strip() == token
    store.close()
