"""The public API of stigmer.conformance."""

from __future__ import annotations

import stigmer.conformance as conformance


def test_exported_names() -> None:
    assert conformance.__all__ == [
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
    for name in conformance.__all__:
        assert getattr(conformance, name) is not None


def test_plugin_module_imports() -> None:
    import stigmer.conformance.plugin as plugin

    assert callable(plugin.backend) and callable(plugin.backend_peer)
