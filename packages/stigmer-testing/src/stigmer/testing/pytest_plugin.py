"""Pytest fixtures and hooks of ``stigmer.testing`` (loaded through the ``pytest11`` entry point).

``temporal_servers`` (session): a factory of Temporal dev servers shared by the whole session,
one per option set (``temporal_servers(namespaces=["other"])``). ``temporal_server`` (session):
the default one.

``postgres`` marker: a test that needs the PostgreSQL server in ``$STIGMER_TEST_POSTGRES_URL``.
Without it such tests are deselected (and reported as such), except under CI (``CI`` set), where
the missing URL makes them fail loudly. ``postgres_url`` (module): a fresh, empty schema in that
server, one per test module.

``tls_files``: a self-signed certificate for localhost and 127.0.0.1, and its key (PEM files).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._otlp import OtlpReceiver, otlp_receiver
from ._postgres import POSTGRES_URL_ENV, postgres_schema
from ._temporal import TemporalServer, TemporalServers
from ._tls import self_signed_cert


def _load_hypothesis() -> None:
    """Where hypothesis is installed, import it and the modules it imports lazily now, before any test
    (at the session's start: after the plugins' initialization, which hypothesis wants kept fast).

    pytest rewrites (re-parses) every module of a distribution with a pytest plugin when it is first
    imported, and on Python 3.11.7 a parse during which the garbage collector finalizes a leaked
    socket fails with "AST constructor recursion depth mismatch" (a CPython bug fixed in later 3.11
    releases): a lazy import in the middle of a test (``st.from_regex`` imports its module on first
    use) or at the session's end failed that way. And no per-example deadline: on a loaded 2-core
    machine it times the machine, not the code (pytest-timeout still bounds every test).
    """
    if importlib.util.find_spec("hypothesis") is None:
        return
    hypothesis = importlib.import_module("hypothesis")
    for package in ("hypothesis.strategies._internal", "hypothesis.internal"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            if module.name not in sys.modules:
                with contextlib.suppress(ImportError):
                    importlib.import_module(module.name)
    hypothesis.settings.register_profile("stigmer", deadline=None)
    hypothesis.settings.load_profile("stigmer")


__all__ = ["postgres_url", "temporal_server", "temporal_servers", "tls_files"]

_deselected: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"postgres: needs a PostgreSQL server in ${POSTGRES_URL_ENV} (deselected when unset outside CI)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    _load_hypothesis()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(POSTGRES_URL_ENV) or os.environ.get("CI"):
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
            f"postgres: deselected {len(_deselected)} PostgreSQL tests because {POSTGRES_URL_ENV} is not "
            f"set (set it to a postgresql+psycopg:// URL to run them)",
            yellow=True,
        )


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh, empty schema in the PostgreSQL server of $STIGMER_TEST_POSTGRES_URL, one per
    test module (a store refuses to write secrets under a second master key, and modules use their
    own). Fails when the variable is unset (the ``postgres`` tests are deselected then, outside CI)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def temporal_servers() -> Iterator[TemporalServers]:
    servers = TemporalServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def temporal_server(temporal_servers: TemporalServers) -> TemporalServer:
    return temporal_servers()


@pytest.fixture(scope="session")
def otlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    """A real OTLP receiver (Arize Phoenix) for the session; its spans via ``.spans()``."""
    with otlp_receiver(tmp_path_factory.mktemp("phoenix")) as receiver:
        yield receiver
