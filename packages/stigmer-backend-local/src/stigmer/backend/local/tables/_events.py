"""The execution event log and status updates: the hot path of every runner.

One call is one transaction of a few SQL statements, written once as text: lock and read the
execution row, insert the new events, write the row back. Status lives in the row as a serialized
``ExecutionStatus`` so a call never parses JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stigmer.backend.local._db import Conn
from stigmer.backend.local.tables._columns import now_us, timestamp
from stigmer.backend.local.tables._grants import claim
from stigmer.backend.local.tables._input import q
from stigmer.backend.local.tables._usage import add_session_usage, add_usage
from stigmer.core import (
    API_VERSION,
    TERMINAL_PHASES,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Principal,
    phase_name,
    set_timestamp,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

__all__ = [
    "ALLOWED",
    "ExecRow",
    "Loaded",
    "events_after",
    "forget_finished_runtime_secrets",
    "load",
    "save",
    "to_execution",
    "update_status",
]

P = ex.Phase
ALLOWED: dict[int, frozenset[int]] = {
    ex.PHASE_PENDING: frozenset({ex.PHASE_RUNNING, ex.PHASE_CANCELLED, ex.PHASE_FAILED}),
    ex.PHASE_RUNNING: frozenset(
        {ex.PHASE_WAITING_APPROVAL, ex.PHASE_SUCCEEDED, ex.PHASE_FAILED, ex.PHASE_CANCELLED, ex.PHASE_RUNNING}
    ),
    ex.PHASE_WAITING_APPROVAL: frozenset({ex.PHASE_RUNNING, ex.PHASE_FAILED, ex.PHASE_CANCELLED}),
}
_PHASES = frozenset(P.values())

# The execution row as ``ExecRow``; ``load`` appends ``conn.for_update`` to lock it.
_SELECT = (
    "SELECT pk, id, kind, phase, last_sequence, labels, spec, status, created_at, updated_at "
    "FROM executions WHERE id = :eid"
)
_SELECT_EVENT = "SELECT body FROM execution_events WHERE execution_id = :eid AND sequence = :seq"
_INSERT_EVENT = (
    "INSERT INTO execution_events (execution_id, sequence, type, body) "
    "VALUES (:execution_id, :sequence, :type, :body)"
)
_UPDATE_PHASE = (
    "UPDATE executions SET phase = :b_phase, last_sequence = :b_last, status = :b_status, "
    "updated_at = :b_now WHERE pk = :b_pk"
)
# Without the phase column, so the phase index is not rewritten by the common update.
_UPDATE = (
    "UPDATE executions SET last_sequence = :b_last, status = :b_status, updated_at = :b_now WHERE pk = :b_pk"
)
# A run's own secrets (`stigmer run --secret`) are kept only until it finishes.
_DELETE_RUNTIME_SECRETS = "DELETE FROM execution_secrets WHERE execution_id = :eid"
_EVENTS_AFTER = (
    "SELECT body FROM execution_events WHERE execution_id = :eid AND sequence > :after "
    "ORDER BY sequence LIMIT 500"
)


class ExecRow(NamedTuple):
    pk: int
    id: str
    kind: str
    phase: int
    last_sequence: int
    labels: str
    spec: bytes
    status: bytes
    created_at: int
    updated_at: int


@dataclass
class Loaded:
    """An execution row being changed inside one write transaction."""

    row: Any
    status: ex.ExecutionStatus
    phase: int
    last: int
    now: int
    new_events: list[ex.ExecutionEvent] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.row.id)

    def append(self, type_: str, **fields: Any) -> ex.ExecutionEvent:
        self.last += 1
        event = ex.ExecutionEvent(execution_id=self.id, sequence=self.last, type=type_, **fields)
        set_timestamp(event.time, self.now)
        self.new_events.append(event)
        return event

    def set_phase(self, phase: int, text: str = "") -> None:
        """Validate and apply a phase change, appending its ``phase`` event."""
        if phase == self.phase and phase != ex.PHASE_RUNNING:
            if phase in TERMINAL_PHASES:
                return
            raise FailedPrecondition(
                f"execution {self.id} is already {phase_name(phase)}; that is not a phase change it can make"
            )
        if self.phase in TERMINAL_PHASES:
            raise FailedPrecondition(
                f"execution {self.id} is {phase_name(self.phase)}; a finished execution cannot change"
            )
        if phase not in ALLOWED.get(self.phase, ()):
            raise FailedPrecondition(
                f"execution {self.id} cannot go from {phase_name(self.phase)} to {phase_name(phase)}"
            )
        if phase == self.phase:
            return
        self.phase = phase
        self.status.phase = phase  # type: ignore[assignment]
        if phase == ex.PHASE_RUNNING and not self.status.HasField("started_at"):
            self.status.started_at.CopyFrom(timestamp(self.now))
        if phase != ex.PHASE_WAITING_APPROVAL:
            self.status.ClearField("pending_approval")
        if phase in TERMINAL_PHASES:
            self.status.finished_at.CopyFrom(timestamp(self.now))
        if phase == ex.PHASE_CANCELLED:
            # A cancelled run's runner stops where it is and may never write again (it is refused):
            # the tasks it had under way end here, with the run, for every runner and host.
            for task in self.status.tasks:
                if task.phase not in TERMINAL_PHASES:
                    task.phase = ex.PHASE_CANCELLED
                    task.finished_at.CopyFrom(timestamp(self.now))
        self.append("phase", phase=phase, text=text)


def load(conn: Conn, execution_id: str, lock: bool = True) -> Loaded:
    if not execution_id:
        raise InvalidArgument("execution_id is required", ["execution_id"])
    found = conn.execute(_SELECT + conn.for_update if lock else _SELECT, {"eid": execution_id}).tuples()
    if not found:
        raise NotFound(f"execution {execution_id!r} does not exist; list them with `stigmer execution list`")
    row = ExecRow._make(found[0])
    return Loaded(row, ex.ExecutionStatus.FromString(row.status), row.phase, row.last_sequence, now_us())


def save(conn: Conn, item: Loaded) -> ex.Execution:
    """Insert the new events and write the row back; returns the execution as stored.

    Reaching a final phase deletes the execution's run-time secrets (``execution_secrets``);
    WAITING_APPROVAL keeps them, since the run continues after the decision.
    """
    eid = item.row.id
    if len(item.new_events) == 1:  # the common case: one statement, no list
        e = item.new_events[0]
        conn.execute(
            _INSERT_EVENT,
            {"execution_id": eid, "sequence": e.sequence, "type": e.type, "body": e.SerializeToString()},
        )
    elif item.new_events:
        conn.executemany(
            _INSERT_EVENT,
            [
                {"execution_id": eid, "sequence": e.sequence, "type": e.type, "body": e.SerializeToString()}
                for e in item.new_events
            ],
        )
    item.status.last_sequence = item.last
    body = item.status.SerializeToString()
    values = {"b_pk": item.row.pk, "b_last": item.last, "b_status": body, "b_now": item.now}
    if item.phase != item.row.phase:
        values["b_phase"] = item.phase
        conn.execute(_UPDATE_PHASE, values)
    else:
        conn.execute(_UPDATE, values)
    if item.phase != item.row.phase and item.phase in TERMINAL_PHASES:
        # Every path to a final phase (status update, cancel) comes through here.
        conn.execute(_DELETE_RUNTIME_SECRETS, {"eid": eid})
    return to_execution(item.row, item.status, item.now)


def to_execution(
    row: Any, status: ex.ExecutionStatus | None = None, updated_at: int | None = None
) -> ex.Execution:
    out = ex.Execution(api_version=API_VERSION, kind=row.kind)
    md = out.metadata
    md.id = md.name = md.slug = row.id
    md.version = 1
    if row.labels != "{}":
        md.labels.update(json.loads(row.labels))
    set_timestamp(md.created_at, row.created_at)
    set_timestamp(md.updated_at, updated_at if updated_at is not None else row.updated_at)
    out.spec.ParseFromString(row.spec)
    if status is None:
        out.status.ParseFromString(row.status)
    else:
        out.status.CopyFrom(status)
    return out


def _same(stored: bytes, event: ex.ExecutionEvent) -> bool:
    old = ex.ExecutionEvent.FromString(stored)
    if not event.HasField("time"):
        event.time.CopyFrom(old.time)
    return old == event


def update_status(
    conn: Conn, request: svc.UpdateExecutionStatusRequest, principal: Principal | None = None
) -> ex.Execution:
    if principal is not None:
        claim(conn, principal, request.execution_id, "report the progress of")
    item = load(conn, request.execution_id)
    pending: dict[int, ex.ExecutionEvent] = {}
    changed = False
    # A run starts (PENDING -> RUNNING) when asked to, or with the first report naming its
    # runner; the start comes first in its log, before the events sent with it (unless the writer
    # numbered them). Any other phase comes after the events it is sent with (a run's last
    # events, then its end).
    phase, runner = request.phase, request.runner
    starting = item.phase == ex.PHASE_PENDING and (phase == ex.PHASE_RUNNING or bool(runner))
    numbered = starting and any(e.sequence for e in request.events)
    if starting and not numbered:
        item.set_phase(ex.PHASE_RUNNING)
    eid = item.row.id
    for index, given in enumerate(request.events):
        event = ex.ExecutionEvent()
        event.CopyFrom(given)
        if event.execution_id and event.execution_id != eid:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} belongs to execution {q(event.execution_id)}, not {eid}",
                [f"{where}.execution_id"],
            )
        if not event.type or len(event.type) > 64:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} needs a type of at most 64 characters (e.g. 'log', 'task.started')",
                [f"{where}.type"],
            )
        event.execution_id = eid
        seq = event.sequence or item.last + 1
        event.sequence = seq
        if seq <= item.last:
            earlier = pending.get(seq)
            if earlier is not None:
                if not event.HasField("time"):
                    event.time.CopyFrom(earlier.time)
                same = earlier == event
            else:
                found = conn.execute(_SELECT_EVENT, {"eid": item.id, "seq": seq}).scalar()
                same = found is not None and _same(bytes(found), event)
            if not same:
                raise FailedPrecondition(
                    f"event {seq} of execution {item.id} is already stored with different content; "
                    "an event is never rewritten (send it with sequence 0 to append it)"
                )
            continue
        if seq != item.last + 1:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} has sequence {seq} but the next one is {item.last + 1}; events must have no gaps",
                [f"{where}.sequence"],
            )
        if item.phase in TERMINAL_PHASES:
            raise FailedPrecondition(
                f"execution {item.id} is {phase_name(item.phase)}; a finished execution takes no new events"
            )
        if not event.HasField("time"):
            set_timestamp(event.time, item.now)
        item.last = seq
        item.new_events.append(event)
        pending[seq] = event
        changed = True
    status = item.status
    has_changes = bool(
        request.HasField("output")
        or request.HasField("error")
        or request.tasks
        or request.HasField("usage")
        or request.HasField("pending_approval")
        or request.checkpoint
        or request.HasField("workspace")
        or request.HasField("todos")
    )
    if has_changes and item.phase in TERMINAL_PHASES:
        raise FailedPrecondition(
            f"execution {item.id} is {phase_name(item.phase)}; a finished execution cannot change"
        )
    if runner:
        status.runner = runner
    if has_changes:
        if request.HasField("output"):
            status.output.CopyFrom(request.output)
        if request.HasField("error"):
            status.error.CopyFrom(request.error)
        if request.tasks:
            _upsert_tasks(status, request.tasks)
        if request.HasField("usage"):
            add_usage(status.usage, request.usage)
            session_id = ex.ExecutionSpec.FromString(item.row.spec).session_id
            if session_id:
                add_session_usage(conn, session_id, request.usage)
        if request.checkpoint:
            status.checkpoint = request.checkpoint
        if request.HasField("workspace"):
            status.workspace.CopyFrom(request.workspace)
        if request.HasField("todos"):
            del status.todos[:]
            status.todos.extend(request.todos.items)
    if starting and numbered:
        item.set_phase(ex.PHASE_RUNNING)
    if phase and not (starting and phase == ex.PHASE_RUNNING):
        if phase not in _PHASES:
            raise InvalidArgument(f"unknown phase {int(phase)}", ["phase"])
        item.set_phase(phase, request.error.detail if phase == ex.PHASE_FAILED else "")
    if has_changes and request.HasField("pending_approval"):
        if item.phase != ex.PHASE_WAITING_APPROVAL:
            raise FailedPrecondition(
                f"pending_approval can only be set with phase WAITING_APPROVAL (execution {item.id} is "
                f"{phase_name(item.phase)})"
            )
        status.pending_approval.CopyFrom(request.pending_approval)
        if not status.pending_approval.HasField("requested_at"):
            status.pending_approval.requested_at.CopyFrom(timestamp(item.now))
    if not (changed or has_changes or item.new_events or runner):
        return to_execution(item.row, status)
    return save(conn, item)


# The finished executions (the terminal phases are constant integers, written into the text).
_FINISHED = "SELECT id FROM executions WHERE phase IN ({})".format(
    ", ".join(str(int(p)) for p in sorted(TERMINAL_PHASES))
)
_LEFT_BEHIND = (
    f"SELECT DISTINCT execution_id FROM execution_secrets WHERE execution_id IN ({_FINISHED}) LIMIT 1000"
)
_FORGET = f"DELETE FROM execution_secrets WHERE execution_id IN ({_FINISHED})"


def forget_finished_runtime_secrets(db: Any) -> int:
    """Delete run-time secrets an older version left behind for runs that have finished.

    One read when there are none (every open), a write only when there are; returns how many
    executions had some.
    """
    with db.read() as conn:
        left = conn.execute(_LEFT_BEHIND).scalars()
    if not left:
        return 0
    with db.write() as conn:
        conn.execute(_FORGET)
    return len(left)


def _upsert_tasks(status: ex.ExecutionStatus, tasks: Sequence[ex.TaskProgress]) -> None:
    index = {t.path: i for i, t in enumerate(status.tasks)}
    for i, task in enumerate(tasks):
        if not task.path:
            raise InvalidArgument(f"tasks[{i}] has no path", [f"tasks[{i}].path"])
        at = index.get(task.path)
        if at is None:
            index[task.path] = len(status.tasks)
            status.tasks.add().CopyFrom(task)
        else:
            # Fields the update leaves unset keep their value (a completion keeps started_at).
            status.tasks[at].MergeFrom(task)


def events_after(conn: Conn, execution_id: str, after: int) -> list[ex.ExecutionEvent]:
    """Up to 500 events with a sequence number greater than ``after``, in order."""
    rows = conn.execute(_EVENTS_AFTER, {"eid": execution_id, "after": after}).scalars()
    return [ex.ExecutionEvent.FromString(bytes(r)) for r in rows]
