"""The conformance suite against LocalBackend on PostgreSQL (``STIGMER_TEST_POSTGRES_URL``).

Each test session works in a fresh schema that is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.conformance import *  # noqa: F403

pytest_plugins = ["stigmer.conformance.plugin"]
pytestmark = pytest.mark.postgres

KEY = os.urandom(32)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("STIGMER_TEST_POSTGRES_URL", "")
    if not url:
        pytest.fail(
            "CI is set but STIGMER_TEST_POSTGRES_URL is not: the PostgreSQL conformance tests must run in CI; "
            "start a server and set the URL (postgresql+psycopg://user:password@host:port/database)"
        )
    import sqlalchemy as sa

    schema = f"stigmer_test_{secrets.token_hex(4)}"
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


@pytest.fixture
def backend_factory(postgres_url: str, tmp_path: Path) -> Callable[[], Awaitable[LocalBackend]]:
    async def make() -> LocalBackend:
        return LocalBackend(postgres_url, home=tmp_path, master_key=KEY)

    return make
