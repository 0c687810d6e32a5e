"""Committed Temporal histories: reading them, and the ``workflow.patched`` markers they hold.

Each runner's ``tests/histories/*.json`` holds one history per branch of each ``workflow.patched(...)``
call of its workflow — recorded by the current code, and by the last commit before the patch (the
branch that runs started by earlier releases take). Its ``test_replay_histories.py`` replays them
against the current workflow code: a change that would break such a run on a new worker
(non-determinism) fails there.

Re-record with ``uv run python scripts/record_histories.py`` when the workflow changes on purpose
(and then guard the change with a new ``workflow.patched`` branch, and add its legacy recording
to that script); every new ``workflow.patched`` call needs a recording there.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

from temporalio.client import WorkflowHistory

from ._temporal import history_text

__all__ = ["assert_patch_branches", "history_patches", "history_start_args", "load_history"]


def load_history(path: Path) -> WorkflowHistory:
    """The history in a JSON file (as ``temporal workflow show --output json`` writes it), with the
    file's stem as its workflow id."""
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def history_patches(path: Path) -> set[str]:
    """The ids of the patches whose markers a history file holds (where the current branch of a
    ``workflow.patched(...)`` call was taken)."""
    events = json.loads(path.read_text(encoding="utf-8"))["events"]
    markers = [e["markerRecordedEventAttributes"] for e in events if "markerRecordedEventAttributes" in e]
    found: set[str] = set()
    for marker in markers:
        if marker["markerName"] == "core_patch":
            found.add(json.loads(history_text(marker["details"]["patch-data"]).splitlines()[0])["id"])
    return found


def history_start_args(path: Path) -> object:
    """The first argument a history's workflow was started with (decoded from its JSON payload):
    how a run was started decides its path through the workflow, as a patch's marker does."""
    events = json.loads(path.read_text(encoding="utf-8"))["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    payloads = started.get("input", {}).get("payloads", [])
    return json.loads(base64.b64decode(payloads[0]["data"])) if payloads else None


def assert_patch_branches(histories: Iterable[Path], patch: str) -> None:
    """Asserts that the histories hold at least two recordings: one that takes the patch ``patch``
    and one that takes its legacy branch."""
    paths = list(histories)
    assert len(paths) >= 2, "no committed histories found"
    markers = {path.name: history_patches(path) for path in paths}
    assert any(patch in found for found in markers.values()), f"none takes {patch}: {markers}"
    assert any(patch not in found for found in markers.values()), f"none takes its legacy branch: {markers}"
