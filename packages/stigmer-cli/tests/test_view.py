"""The stable JSON shapes of executions and events."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st
from stigmer.cli import event_to_dict, execution_to_dict
from stigmer.core import phase_name
from stigmer.proto.v1 import execution_pb2, meta_pb2


def _value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def test_succeeded_workflow_execution() -> None:
    ex = execution_pb2.Execution(
        api_version="stigmer.ai/v1",
        kind="WorkflowExecution",
        metadata=meta_pb2.Metadata(id="wex_1", labels={"a": "b"}),
        spec=execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Workflow", name="hello"),
            target_version=3,
            input=_value({"n": 1}),
        ),
        status=execution_pb2.ExecutionStatus(
            phase=execution_pb2.PHASE_SUCCEEDED,
            output=_value({"greeting": "hi", "count": 2}),
            usage=execution_pb2.Usage(input_tokens=5),
            tasks=[
                execution_pb2.TaskProgress(
                    path="/do/0/greet", name="greet", phase=execution_pb2.PHASE_SUCCEEDED
                )
            ],
        ),
    )
    ex.metadata.created_at.FromJsonString("2026-01-02T03:04:05Z")
    ex.status.finished_at.FromJsonString("2026-01-02T03:04:06Z")
    data = execution_to_dict(ex)
    assert data["id"] == "wex_1"
    assert data["phase"] == "SUCCEEDED"
    assert data["kind"] == "WorkflowExecution"
    assert data["target"] == {"kind": "Workflow", "name": "hello"}
    assert data["output"] == {"greeting": "hi", "count": 2}
    assert isinstance(data["output"]["count"], int)
    assert data["input"] == {"n": 1}
    assert data["error"] is None
    assert data["session"] is None
    assert data["createdAt"] == "2026-01-02T03:04:05Z"
    assert data["finishedAt"] == "2026-01-02T03:04:06Z"
    assert data["startedAt"] is None
    assert data["usage"] == {
        "inputTokens": 5,
        "outputTokens": 0,
        "requests": 0,
        "toolCalls": 0,
        "costUsd": 0.0,
        "costUnknown": False,
        "byRequest": [],
    }
    assert data["tasks"][0]["name"] == "greet" and data["tasks"][0]["phase"] == "SUCCEEDED"
    json.dumps(data)  # serialisable as is


def test_failed_agent_execution_with_approval() -> None:
    ex = execution_pb2.Execution(
        kind="AgentExecution",
        metadata=meta_pb2.Metadata(id="aex_1"),
        spec=execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message="hi", session_id="ses_1"
        ),
        status=execution_pb2.ExecutionStatus(
            phase=execution_pb2.PHASE_FAILED,
            error=execution_pb2.ExecutionError(title="Boom", detail="it broke", status=500),
            pending_approval=execution_pb2.ApprovalRequest(id="call_1", tool="create_issue"),
        ),
    )
    data = execution_to_dict(ex)
    assert data["phase"] == "FAILED"
    assert data["error"]["title"] == "Boom" and data["error"]["status"] == 500
    assert data["session"] == "ses_1"
    assert data["message"] == "hi"
    assert data["output"] is None
    assert data["pendingApproval"]["tool"] == "create_issue"


def test_phase_names() -> None:
    assert phase_name(execution_pb2.PHASE_WAITING_APPROVAL) == "WAITING_APPROVAL"
    assert phase_name(0) == "UNSPECIFIED"
    assert phase_name(99) == "99"


def test_event_shape() -> None:
    ev = execution_pb2.ExecutionEvent(
        execution_id="wex_1", sequence=3, type="task.completed", subject="/do/0/greet", data=_value({"x": 1})
    )
    assert event_to_dict(ev) == {
        "executionId": "wex_1",
        "sequence": 3,
        "time": None,
        "type": "task.completed",
        "phase": None,
        "subject": "/do/0/greet",
        "text": None,
        "data": {"x": 1},
    }


@given(
    st.integers(min_value=-62135596800, max_value=253402300799),
    st.one_of(
        st.integers(min_value=0, max_value=999_999_999),
        st.integers(min_value=0, max_value=999).map(lambda n: n * 1_000_000),
        st.integers(min_value=0, max_value=999_999).map(lambda n: n * 1000),
    ),
)
def test_a_timestamp_prints_as_protobuf_prints_it(seconds: int, nanos: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp
    from stigmer.cli.output._view import timestamp

    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert timestamp(ts) == (ts.ToJsonString() if seconds or nanos else None)
