"""The PostgreSQL server of the tests: its URL, and a fresh schema in it.

Tests marked ``postgres`` use the server in ``$STIGMER_TEST_POSTGRES_URL``. Without it they are
deselected (and reported as such), except under CI (``CI`` set), where the missing URL makes them
fail loudly (the ``pytest11`` plugin of this distribution does both, and gives the ``postgres_url``
fixture). ``sqlalchemy`` is imported only when a schema is made (the packages that test on
PostgreSQL have it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

__all__ = ["POSTGRES_URL_ENV", "postgres_schema", "postgres_test_url"]

POSTGRES_URL_ENV = "STIGMER_TEST_POSTGRES_URL"


def postgres_test_url() -> str:
    """The URL in ``$STIGMER_TEST_POSTGRES_URL``; fails the test when it is unset.

    Outside CI the ``postgres`` tests are deselected when it is unset, so only CI (or a test that
    asks without the marker) gets here without it.
    """
    url = os.environ.get(POSTGRES_URL_ENV, "")
    if not url:
        pytest.fail(
            f"CI is set but {POSTGRES_URL_ENV} is not: the PostgreSQL tests must run in CI; start a server "
            "and set the URL (postgresql+psycopg://user:password@host:port/database)"
        )
    return url


@contextmanager
def postgres_schema(url: str | None = None, prefix: str = "stigmer_test") -> Iterator[str]:
    """A fresh, empty schema ``{prefix}_<random>`` in the database of ``url`` (default:
    :func:`postgres_test_url`), dropped with all it holds on exit. Yields the URL that works in it
    (``search_path`` set through ``options``)."""
    import sqlalchemy as sa

    base = url or postgres_test_url()
    schema = f"{prefix}_{secrets.token_hex(4)}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()
