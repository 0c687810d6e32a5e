"""The stable JSON shapes of executions and events (``-o json``); one function per shape."""

from __future__ import annotations

import datetime
import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from stigmer.proto.v1 import execution_pb2

__all__ = ["cli_name", "event_to_dict", "execution_to_dict", "timestamp", "value_to_python"]


def cli_name(kind: str) -> str:
    """The lower-case name a kind has in CLI output (``McpServer`` -> ``mcpserver``)."""
    from stigmer.core import EXECUTION, kind_info

    if kind == EXECUTION:
        return "execution"
    try:
        return kind_info(kind).cli_name
    except KeyError:
        return kind.lower()


def timestamp(ts: Any) -> str | None:
    """RFC 3339 text of a protobuf Timestamp (what its ``ToJsonString`` gives), or None when unset.

    Written here for the usual range (after 1970, before 10000): a run prints two per task."""
    if ts is None:
        return None
    seconds, nanos = ts.seconds, ts.nanos
    if not seconds and not nanos:
        return None
    if not (0 <= seconds < _YEAR_10000 and 0 <= nanos < 1_000_000_000):
        text: str = ts.ToJsonString()  # and its refusal of an invalid one
        return text
    clock = _clock(seconds)
    if not nanos:
        return clock + "Z"
    if not nanos % 1_000_000:
        return f"{clock}.{nanos // 1_000_000:03d}Z"
    if not nanos % 1000:
        return f"{clock}.{nanos // 1000:06d}Z"
    return f"{clock}.{nanos:09d}Z"


_YEAR_10000 = 253402300800  # 10000-01-01T00:00:00Z


@functools.lru_cache(maxsize=256)
def _clock(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) of a second (a run's tasks start within a few)."""
    day, rest = divmod(seconds, 86400)
    date = datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
    return f"{date.isoformat()}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"


def value_to_python(msg: Message, field: str) -> Any:
    """A ``google.protobuf.Value`` field as plain Python (None when unset)."""
    from stigmer.core import from_value

    if not msg.HasField(field):
        return None
    return from_value(getattr(msg, field))


def execution_to_dict(ex: execution_pb2.Execution) -> dict[str, Any]:
    """The JSON object ``stigmer run -o json`` and ``stigmer execution get -o json`` print."""
    from stigmer.core import phase_name

    status = ex.status
    spec = ex.spec
    error: dict[str, Any] | None = None
    if status.HasField("error"):
        e = status.error
        error = {
            "type": e.type,
            "title": e.title,
            "status": e.status,
            "detail": e.detail,
            "instance": e.instance,
        }
    approval: dict[str, Any] | None = None
    if status.HasField("pending_approval") and status.pending_approval.id:
        a = status.pending_approval
        from stigmer.core import from_value

        approval = {
            "id": a.id,
            "tool": a.tool,
            "server": a.server,
            "arguments": from_value(a.arguments),
            "requestedAt": timestamp(a.requested_at),
        }
    u = status.usage
    return {
        "id": ex.metadata.id,
        "kind": ex.kind,
        "target": {"kind": spec.target.kind, "name": spec.target.name or spec.target.id},
        "targetVersion": spec.target_version,
        "phase": phase_name(status.phase),
        "input": value_to_python(spec, "input"),
        "message": spec.message or None,
        "session": spec.session_id or None,
        "env": dict(spec.env),
        "resumedFrom": spec.resumed_from or None,
        "rerunOf": spec.rerun_of or None,
        "output": value_to_python(status, "output"),
        "error": error,
        "pendingApproval": approval,
        "tasks": [
            {
                "path": t.path,
                "name": t.name,
                "phase": phase_name(t.phase),
                "attempts": t.attempts,
                "startedAt": timestamp(t.started_at),
                "finishedAt": timestamp(t.finished_at),
            }
            for t in status.tasks
        ],
        "usage": {
            "inputTokens": u.input_tokens,
            "outputTokens": u.output_tokens,
            "requests": u.requests,
            "toolCalls": u.tool_calls,
            "costUsd": u.cost_usd,
            "costUnknown": u.cost_unknown,
            "byRequest": [
                {
                    "model": r.model,
                    "inputTokens": r.input_tokens,
                    "outputTokens": r.output_tokens,
                    "costUsd": r.cost_usd,
                    "costUnknown": r.cost_unknown,
                }
                for r in u.by_request
            ],
        },
        "todos": [{"id": t.id, "content": t.content, "status": t.status} for t in status.todos],
        "workspace": (
            {"artifact": w.artifact, "files": w.files, "bytes": w.bytes}
            if (w := status.workspace).artifact
            else None
        ),
        "labels": dict(ex.metadata.labels),
        "createdAt": timestamp(ex.metadata.created_at),
        "startedAt": timestamp(status.started_at),
        "finishedAt": timestamp(status.finished_at),
    }


def event_to_dict(ev: execution_pb2.ExecutionEvent) -> dict[str, Any]:
    """One event as a JSON object (``stigmer execution logs -o json`` prints one per line)."""
    from stigmer.core import phase_name

    return {
        "executionId": ev.execution_id,
        "sequence": ev.sequence,
        "time": timestamp(ev.time),
        "type": ev.type,
        "phase": phase_name(ev.phase) if ev.phase else None,
        "subject": ev.subject or None,
        "text": ev.text or None,
        "data": value_to_python(ev, "data"),
    }
