"""Checkpoints: scrubbed as data, tolerant parsing, approval decisions from events."""

from __future__ import annotations

import json

from google.protobuf import struct_pb2
from stigmer.core import Redactor
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent._checkpoint import Checkpoint, Decision, PendingCall, _decision_of


def test_checkpoint_scrubs_values_that_json_would_escape() -> None:
    secret = 'tok"en\\with-quote'
    state = Checkpoint(
        messages=[{"parts": [{"content": f"the key is {secret}"}]}],
        pending=[PendingCall(id="c1", tool="t", args={"key": secret})],
        decisions={"c0": Decision(approved=False, reason="no")},
    )
    text = state.dump(Redactor([secret]))
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    back = Checkpoint.parse(text)
    assert back.messages == [{"parts": [{"content": "the key is ***"}]}]
    assert back.pending[0].args == {"key": "***"}
    assert back.decisions["c0"] == Decision(approved=False, reason="no")


def test_parse_is_tolerant() -> None:
    for text in ("", "not json", "[]", '{"version": 99}'):
        assert Checkpoint.parse(text) == Checkpoint()


def _event(
    subject: str, data: dict[str, str | float | bool] | None, text: str = ""
) -> execution_pb2.ExecutionEvent:
    event = execution_pb2.ExecutionEvent(type="approval.resolved", subject=subject, text=text)
    if data is not None:
        value = struct_pb2.Value()
        value.struct_value.update(data)
        event.data.CopyFrom(value)
    return event


def test_decisions_from_events() -> None:
    assert _decision_of(_event("c1", {"approved": True, "reason": ""})) == ("c1", Decision(True, ""))
    assert _decision_of(_event("c1", {"approved": False, "reason": "no"})) == ("c1", Decision(False, "no"))
    assert _decision_of(_event("", {"approvalId": "c2", "decision": "approved"})) == (
        "c2",
        Decision(True, ""),
    )
    assert _decision_of(_event("c3", None, text="rejected"))[1].approved is False
