"""The Stigmer backend conformance suite: every ``stigmer.core.Backend`` must pass it.

A backend's tests run the whole suite with a small shim module::

    import pytest_asyncio
    from stigmer.conformance import *  # noqa: F403  (the Test* classes)

    pytest_plugins = ["stigmer.conformance.plugin"]

    @pytest_asyncio.fixture
    async def backend(tmp_path):
        instance = MyBackend(...)
        yield instance
        await instance.close()

or, instead of ``backend``, a ``backend_factory`` fixture returning an async callable that makes
a new client of one shared store (the suite then also checks one client sees another's writes).
Tests use unique names, so they also run against a shared, non-empty store (a server).
"""

from stigmer.conformance._builders import expect_error, unique, unique_secret
from stigmer.conformance._recording import RecordingBackend
from stigmer.conformance.suite._artifacts import TestArtifacts
from stigmer.conformance.suite._events import TestEvents, TestTriggers
from stigmer.conformance.suite._executions import (
    TestApprovals,
    TestCancel,
    TestExecutions,
    TestPhases,
    TestStatusUpdates,
    TestWatch,
)
from stigmer.conformance.suite._memories import TestMemories
from stigmer.conformance.suite._resources import TestApply, TestGetListDelete, TestReferences
from stigmer.conformance.suite._secrets import TestExecutionContext, TestNoSecretLeaks, TestSecretStore

__all__ = [
    "RecordingBackend",
    "TestApply",
    "TestApprovals",
    "TestArtifacts",
    "TestCancel",
    "TestEvents",
    "TestExecutionContext",
    "TestExecutions",
    "TestGetListDelete",
    "TestMemories",
    "TestNoSecretLeaks",
    "TestPhases",
    "TestReferences",
    "TestSecretStore",
    "TestStatusUpdates",
    "TestTriggers",
    "TestWatch",
    "expect_error",
    "unique",
    "unique_secret",
]
