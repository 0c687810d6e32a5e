"""Pytest fixtures of ``stigmer.testing`` (loaded through the ``pytest11`` entry point).

``temporal_servers`` (session): a factory of Temporal dev servers shared by the whole session,
one per option set (``temporal_servers(namespaces=["other"])``). ``temporal_server`` (session):
the default one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._temporal import TemporalServer, TemporalServers

__all__ = ["temporal_server", "temporal_servers"]


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
