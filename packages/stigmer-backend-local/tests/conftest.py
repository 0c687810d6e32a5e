"""Shared test setup of stigmer-backend-local.

PostgreSQL: tests marked ``postgres`` use the server in ``STIGMER_TEST_POSTGRES_URL``. Without it
they are deselected (and reported as such), except under CI (``CI`` set), where the missing URL
makes them fail loudly.
"""

from __future__ import annotations

import os

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
