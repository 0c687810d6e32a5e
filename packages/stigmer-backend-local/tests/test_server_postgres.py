"""`stigmer server` and its tokens on PostgreSQL (``STIGMER_TEST_POSTGRES_URL``), in a fresh schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
from stigmer.backend.local._server_process import ServerProcess
from stigmer.backend.local._tokens import TokenStore
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("STIGMER_TEST_POSTGRES_URL", "")
    if not url:
        pytest.fail("set STIGMER_TEST_POSTGRES_URL (postgresql+psycopg://user:password@host:port/database)")
    import sqlalchemy as sa

    schema = f"stigmer_srv_{secrets.token_hex(4)}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


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
