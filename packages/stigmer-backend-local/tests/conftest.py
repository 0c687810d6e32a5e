"""Shared test setup of stigmer-backend-local.

PostgreSQL: tests marked ``postgres`` use the server in ``STIGMER_TEST_POSTGRES_URL``. Without it
they are deselected (and reported as such), except under CI (``CI`` set), where the missing URL
makes them fail loudly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

POSTGRES_ENV = "STIGMER_TEST_POSTGRES_URL"
_deselected: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"postgres: needs a PostgreSQL server in ${POSTGRES_ENV} (deselected when unset outside CI)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(POSTGRES_ENV) or os.environ.get("CI"):
        return
    keep = [i for i in items if i.get_closest_marker("postgres") is None]
    dropped = [i for i in items if i.get_closest_marker("postgres") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        _deselected.extend(dropped)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_line(
            f"postgres: deselected {len(_deselected)} PostgreSQL tests because {POSTGRES_ENV} is not set "
            f"(set it to a postgresql+psycopg:// URL to run them)",
            yellow=True,
        )


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh, empty schema in the PostgreSQL server of $STIGMER_TEST_POSTGRES_URL, one per
    test module (a store refuses to write secrets under a second master key, and modules use their own)."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.fail(
            f"CI is set but {POSTGRES_ENV} is not: the PostgreSQL tests must run in CI; start a server and "
            "set the URL (postgresql+psycopg://user:password@host:port/database)"
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
