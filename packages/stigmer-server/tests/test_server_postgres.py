"""`stigmer server` and its tokens on PostgreSQL (``STIGMER_TEST_POSTGRES_URL``), in a fresh schema."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import ServerProcess, TokenStore

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
