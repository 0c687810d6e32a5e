"""pytest plugin of the conformance suite: default fixtures and the ``conformance`` marker.

A backend's test module supplies the backend under test, either as an async ``backend``
fixture (yielding a ``stigmer.core.Backend``) or as a ``backend_factory`` fixture (an async
callable returning a new client of one shared store). ``backend_peer`` is a second client of
the same store, used to check that one client sees another's writes; it defaults to a second
instance from ``backend_factory`` when there is one, else to ``backend`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from stigmer.core import Backend

BackendFactory = Callable[[], Awaitable[Backend]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a test of the stigmer backend conformance suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and cls.__module__.startswith("stigmer.conformance."):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture
def conformance_factory(request: pytest.FixtureRequest) -> BackendFactory | None:
    """The ``backend_factory`` fixture of the backend's tests, or None when it has none."""
    try:
        factory: BackendFactory = request.getfixturevalue("backend_factory")
    except pytest.FixtureLookupError:
        return None
    return factory


@pytest_asyncio.fixture
async def backend(conformance_factory: BackendFactory | None) -> AsyncIterator[Backend]:
    """The backend under test, made by the ``backend_factory`` fixture of the backend's tests."""
    factory = conformance_factory
    if factory is None:
        raise pytest.UsageError(
            "the stigmer conformance suite needs a `backend` fixture (an async fixture yielding a Backend) "
            "or a `backend_factory` fixture in the backend's test module"
        )
    instance = await factory()
    try:
        yield instance
    finally:
        await instance.close()


@pytest_asyncio.fixture
async def backend_peer(
    conformance_factory: BackendFactory | None, backend: Backend
) -> AsyncIterator[Backend]:
    """A second client of the store ``backend`` uses (``backend`` itself when no factory is given)."""
    factory = conformance_factory
    if factory is None:
        yield backend
        return
    instance = await factory()
    try:
        yield instance
    finally:
        await instance.close()
