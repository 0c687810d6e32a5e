"""The conformance suite against LocalBackend on PostgreSQL (``STIGMER_TEST_POSTGRES_URL``).

The module works in a fresh schema that is dropped at the end (the ``postgres_url`` fixture of ``stigmer.testing``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.conformance import *  # noqa: F403

pytest_plugins = ["stigmer.conformance.plugin"]
pytestmark = pytest.mark.postgres

KEY = os.urandom(32)


@pytest.fixture
def backend_factory(postgres_url: str, tmp_path: Path) -> Callable[[], Awaitable[LocalBackend]]:
    async def make() -> LocalBackend:
        return LocalBackend(postgres_url, home=tmp_path, master_key=KEY)

    return make
