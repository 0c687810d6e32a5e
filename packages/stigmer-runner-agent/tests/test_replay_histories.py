"""Committed Temporal histories of agent executions replay against the current workflow code.

``tests/histories/*.json`` holds one history per branch of each ``workflow.patched(...)`` call in
``StigmerAgent`` — recorded by the current code, and by the last commit before the patch (the
branch that runs started by earlier releases take). A change that would break such a run on a
new worker (non-determinism) fails here.

Re-record with ``uv run python scripts/record_histories.py`` when the workflow changes on purpose
(and then guard the change with a new ``workflow.patched`` branch, and add its legacy recording
to that script); every new ``workflow.patched`` call needs a recording there.
"""

from __future__ import annotations

from pathlib import Path

import pydantic_ai  # noqa: F401  # imported before replay, as a worker process has it
import pytest
from stigmer.runner.agent.temporal._workflow import PER_ACTIVITY_PATCH, StigmerAgent
from stigmer.testing import assert_patch_branches, load_history
from temporalio.worker import Replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed_for_both_branches_of_each_patch() -> None:
    assert_patch_branches(HISTORIES, PER_ACTIVITY_PATCH)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_committed_history_replays_without_non_determinism(path: Path) -> None:
    result = await Replayer(workflows=[StigmerAgent]).replay_workflow(
        load_history(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
