"""The public API of stigmer.temporal, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import stigmer.core
import stigmer.temporal

EXPECTED = {
    "AGENT_QUEUE",
    "AGENT_WORKFLOW",
    "APPROVAL_SIGNAL",
    "DEFAULT_TEMPORAL_ADDRESS",
    "DEV_SERVER_ARGS",
    "FAILED_TYPE",
    "KIND_ATTRIBUTE",
    "NAME_ATTRIBUTE",
    "EVENT_SIGNAL",
    "SCHEDULE_QUEUE",
    "TEMPORAL_ENV",
    "WORKFLOW_QUEUE",
    "WORKFLOW_WORKFLOW",
    "TemporalConnection",
    "TemporalDispatcher",
    "TemporalSchedules",
    "WorkerCommand",
    "add_temporal_arguments",
    "heartbeating",
    "run_temporal_worker",
    "temporal_dispatch",
}


def test_all_is_pinned() -> None:
    assert set(stigmer.temporal.__all__) == EXPECTED
    assert len(stigmer.temporal.__all__) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in stigmer.temporal.__all__:
        assert getattr(stigmer.temporal, name) is not None, name


def test_core_no_longer_holds_temporal_names() -> None:
    assert not EXPECTED & set(stigmer.core.__all__)


def test_import_does_not_load_temporalio_or_grpc() -> None:
    code = (
        "import sys, stigmer.temporal; print(sorted(m for m in ('temporalio', 'grpc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
