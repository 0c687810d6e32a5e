"""Committed Temporal histories of ``stigmer.schedule.fire`` (``FireWorkflow``) replay against the
current code: one per branch of each ``workflow.patched(...)`` call (recorded by
``scripts/record_histories.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.temporal._fire import FIRE_WAITS_PATCH, FireWorkflow
from stigmer.testing import assert_patch_branches, load_history
from temporalio.worker import Replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed_for_both_branches_of_each_patch() -> None:
    assert_patch_branches(HISTORIES, FIRE_WAITS_PATCH)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_committed_history_replays_without_non_determinism(path: Path) -> None:
    result = await Replayer(workflows=[FireWorkflow]).replay_workflow(
        load_history(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
