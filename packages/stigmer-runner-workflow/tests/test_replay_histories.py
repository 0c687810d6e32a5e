"""Committed Temporal histories of workflow executions (the Temporal host) replay against the current code.

``tests/histories/*.json``: one history per branch of each ``workflow.patched(...)`` call, and one
per way a server's start reaches the interpreter (``document`` and ``limits``; ``document`` only);
how they are recorded, and when to re-record, is in ``stigmer.testing._histories``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.runner.workflow.temporal._host import CHILD_WORKFLOWS_PATCH
from stigmer.runner.workflow.temporal._worker import PASSTHROUGH
from stigmer.runner.workflow.temporal._workflow import StigmerWorkflow
from stigmer.temporal._failure import FAILED_PATCH
from stigmer.testing import assert_patch_branches, history_start_args, load_history
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed_for_both_branches_of_each_patch() -> None:
    assert_patch_branches(HISTORIES, CHILD_WORKFLOWS_PATCH)
    assert_patch_branches(HISTORIES, FAILED_PATCH)


def test_histories_are_committed_for_each_kind_of_server_start() -> None:
    """A start with ``document`` and ``limits`` (no activity before the interpreter) and one with
    ``document`` only (an earlier release's server: the ``stigmer.workflow.start`` local activity)."""
    starts = {path.name: history_start_args(path) for path in HISTORIES}
    kinds = {
        name: ("document" in args, "limits" in args)
        for name, args in starts.items()
        if isinstance(args, dict)
    }
    assert (True, True) in kinds.values(), f"none starts with document and limits: {kinds}"
    assert (True, False) in kinds.values(), f"none starts with document and no limits: {kinds}"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_committed_history_replays_without_non_determinism(path: Path) -> None:
    replayer = Replayer(
        workflows=[StigmerWorkflow],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
    result = await replayer.replay_workflow(load_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
