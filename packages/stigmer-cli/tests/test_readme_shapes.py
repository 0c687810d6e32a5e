"""The JSON shapes documented in the README are the ones the CLI prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stigmer.cli import event_to_dict, execution_to_dict
from stigmer.proto.v1 import execution_pb2

README = Path(__file__).resolve().parent.parent / "README.md"


def _json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)```", README.read_text(), re.S)


def test_execution_shape_matches_the_readme() -> None:
    documented = json.loads(_json_blocks()[0])
    actual = execution_to_dict(execution_pb2.Execution())
    assert list(documented) == list(actual)
    assert list(documented["usage"]) == list(actual["usage"])
    assert set(documented["tasks"][0]) == {"path", "name", "phase", "attempts", "startedAt", "finishedAt"}


def test_event_shape_matches_the_readme() -> None:
    documented = json.loads(_json_blocks()[1])
    assert list(documented) == list(event_to_dict(execution_pb2.ExecutionEvent()))


def test_every_event_type_of_the_contract_is_documented() -> None:
    text = README.read_text()
    for kind in [
        "phase",
        "task.started",
        "text.delta",
        "tool.call",
        "approval.requested",
        "cancel.requested",
    ]:
        assert f"`{kind}`" in text
