"""What an agent execution saves in ``status.checkpoint`` and reads back: the conversation
(pydantic-ai messages, scrubbed), approvals still pending, and tool calls already reported.

Sessions need no memory of their own: each turn's checkpoint holds the whole conversation, so
the next turn reads the latest finished execution of the session from the Backend.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.core import Backend, Redactor
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent._loop import Decision, PendingCall

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

__all__ = [
    "Checkpoint",
    "Decision",
    "PendingCall",
    "dump_messages",
    "load_messages",
    "read_decisions",
    "session_history",
]

VERSION = 1


@dataclass
class Checkpoint:
    """The decoded checkpoint of an agent execution."""

    messages: list[Any] = field(default_factory=list)  # JSON form of pydantic-ai messages
    pending: list[PendingCall] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    reported_calls: list[str] = field(default_factory=list)
    requested: str = ""  # id of the call whose approval.requested was written
    sequence: int = 0  # last event sequence when the checkpoint was written
    inflight: bool = False  # saved mid-run (after tool results), to continue a killed run from

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            return cls()
        return cls(
            messages=list(raw.get("messages") or []),
            pending=[PendingCall(**p) for p in raw.get("pending") or []],
            decisions={k: Decision(**v) for k, v in (raw.get("decisions") or {}).items()},
            reported_calls=list(raw.get("reportedCalls") or []),
            requested=str(raw.get("requested") or ""),
            sequence=int(raw.get("sequence") or 0),
            inflight=bool(raw.get("inflight")),
        )

    def dump(self, redactor: Redactor) -> str:
        data = {
            "version": VERSION,
            "messages": self.messages,
            "pending": [p.__dict__ for p in self.pending],
            "decisions": {k: v.__dict__ for k, v in self.decisions.items()},
            "reportedCalls": self.reported_calls,
            "requested": self.requested,
            "sequence": self.sequence,
            "inflight": self.inflight,
        }
        # Scrub the structure (not the JSON text), so escaped values are masked too.
        return json.dumps(redactor.scrub(data), separators=(",", ":"))

    def undecided(self) -> list[PendingCall]:
        return [p for p in self.pending if p.id not in self.decisions]


def dump_messages(messages: list[ModelMessage]) -> list[Any]:
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    dumped: list[Any] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return dumped


def load_messages(data: list[Any]) -> list[ModelMessage]:
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.validate_python(data)


async def session_history(backend: Backend, session_id: str, current_id: str) -> list[Any]:
    """The conversation so far: the messages saved by the session's latest finished turn."""
    token = ""
    while True:
        page = await backend.list_executions(
            svc.ListExecutionsRequest(kind="AgentExecution", session_id=session_id, page_token=token)
        )
        for execution in page.executions:  # newest first
            if execution.metadata.id == current_id:
                continue
            if execution.status.phase != execution_pb2.PHASE_SUCCEEDED:
                continue
            state = Checkpoint.parse(execution.status.checkpoint)
            if state.messages:
                return state.messages
        if not page.next_page_token:
            return []
        token = page.next_page_token


def _decision_of(event: execution_pb2.ExecutionEvent) -> tuple[str, Decision]:
    from google.protobuf import json_format

    data: Any = json_format.MessageToDict(event.data) if event.HasField("data") else {}
    if not isinstance(data, dict):
        data = {"approved": data} if isinstance(data, bool) else {}
    call_id = str(data.get("approvalId") or data.get("approval_id") or data.get("id") or event.subject or "")
    approved: Any = data.get("approved")
    if approved is None:
        decision = str(data.get("decision") or data.get("action") or event.text).lower()
        approved = decision.startswith("approv") or decision in ("yes", "allow", "allowed", "true")
    reason = str(data.get("reason") or "")
    return call_id, Decision(approved=bool(approved), reason=reason)


async def read_decisions(
    backend: Backend, execution: execution_pb2.Execution, state: Checkpoint
) -> dict[str, Decision]:
    """Decisions recorded as ``approval.resolved`` events since the checkpoint was written."""
    last = execution.status.last_sequence
    if last <= state.sequence:
        return {}
    decisions: dict[str, Decision] = {}
    undecided = [p.id for p in state.undecided()]
    stream: AsyncIterator[execution_pb2.ExecutionEvent] = backend.watch_execution(
        svc.WatchExecutionRequest(execution_id=execution.metadata.id, after_sequence=state.sequence)
    )
    try:
        async for event in stream:
            if event.type == "approval.resolved":
                call_id, decision = _decision_of(event)
                if call_id not in undecided:
                    call_id = state.requested or (undecided[0] if undecided else call_id)
                decisions[call_id] = decision
            if event.sequence >= last:
                break
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
    return decisions
