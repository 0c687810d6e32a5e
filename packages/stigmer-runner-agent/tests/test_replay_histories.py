"""Committed Temporal histories of agent executions (``StigmerAgent``) replay against the current code.

``tests/histories/*.json``: one history per branch of each ``workflow.patched(...)`` call; how they
are recorded, and when to re-record, is in ``stigmer.testing._histories``.
"""

from __future__ import annotations

from pathlib import Path

import pydantic_ai  # noqa: F401  # imported before replay, as a worker process has it
import pytest
from stigmer.runner.agent.temporal._host import RETRY_PATCH
from stigmer.runner.agent.temporal._workflow import PER_ACTIVITY_PATCH, StigmerAgent
from stigmer.temporal._failure import FAILED_PATCH
from stigmer.testing import assert_patch_branches, load_history
from temporalio.worker import Replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed_for_both_branches_of_each_patch() -> None:
    assert_patch_branches(HISTORIES, PER_ACTIVITY_PATCH)
    assert_patch_branches(HISTORIES, FAILED_PATCH)
    assert_patch_branches(HISTORIES, RETRY_PATCH)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_committed_history_replays_without_non_determinism(path: Path) -> None:
    result = await Replayer(workflows=[StigmerAgent]).replay_workflow(
        load_history(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
