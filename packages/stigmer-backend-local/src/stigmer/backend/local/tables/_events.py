"""The execution event log and status updates: the hot path of every runner.

One call is one transaction of a few SQL statements, written once as text: lock and read the
execution row, insert the new events, write the row back. Status lives in the row as a serialized
``ExecutionStatus`` so a call never parses JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    "Prepared",
    "answer",
    "apply_update",
    "events_after",
    "forget_finished_runtime_secrets",
    "load",
    "prepare_update",
    "save",
    "to_execution",
    "write_back",
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
# What a status update reads of the row (see ``load_for_update``), and the rest of it.
_SELECT_STATE = "SELECT pk, phase, last_sequence, status, updated_at FROM executions WHERE id = :eid"
_SELECT_FIXED = "SELECT kind, labels, spec, created_at FROM executions WHERE pk = :pk"
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


_status_of = ex.ExecutionStatus.FromString
_new_event = ex.ExecutionEvent
_new_row = tuple.__new__  # ExecRow of the row's tuple, as ``ExecRow._make`` makes it (without its checks)


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


class Loaded:
    """An execution row being changed inside one write transaction."""

    __slots__ = ("last", "new_events", "now", "phase", "row", "status")

    def __init__(self, row: ExecRow, status: ex.ExecutionStatus, phase: int, last: int, now: int) -> None:
        self.row = row
        self.status = status
        self.phase = phase
        self.last = last
        self.now = now
        self.new_events: list[ex.ExecutionEvent] = []

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
    found = conn.first(_SELECT + conn.for_update if lock else _SELECT, {"eid": execution_id})
    if found is None:
        raise NotFound(f"execution {execution_id!r} does not exist; list them with `stigmer execution list`")
    row = _new_row(ExecRow, found)
    return Loaded(row, _status_of(row.status), row.phase, row.last_sequence, now_us())


def load_for_update(conn: Conn, execution_id: str) -> Loaded:
    """``load(conn, execution_id)``, reading only the columns a status update changes (the fixed
    ones come from the memo: :func:`fixed`)."""
    if not execution_id:
        raise InvalidArgument("execution_id is required", ["execution_id"])
    found = conn.first(_SELECT_STATE + conn.for_update, {"eid": execution_id})
    if found is None:
        raise NotFound(f"execution {execution_id!r} does not exist; list them with `stigmer execution list`")
    pk, phase, last, status, updated_at = found
    kind, labels, spec, created, _ = fixed(conn, execution_id, pk)
    row = _new_row(ExecRow, (pk, execution_id, kind, phase, last, labels, spec, status, created, updated_at))
    return Loaded(row, _status_of(status), phase, last, now_us())


def save(conn: Conn, item: Loaded) -> ex.Execution:
    """Insert the new events and write the row back (:func:`write_back`); returns the execution
    as stored."""
    write_back(conn, item)
    return _as_saved(conn.memo, item.row, item.status, item.now)


def write_back(conn: Conn, item: Loaded) -> None:
    """Insert the new events and write the row back.

    Reaching a final phase deletes the execution's run-time secrets (``execution_secrets``);
    WAITING_APPROVAL keeps them, since the run continues after the decision.
    """
    eid = item.row.id
    if len(item.new_events) == 1:  # the common case: one statement, no list
        e = item.new_events[0]
        conn.run(
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
        conn.run(_UPDATE_PHASE, values)
    else:
        conn.run(_UPDATE, values)
    if item.phase != item.row.phase and item.phase in TERMINAL_PHASES:
        # Every path to a final phase (status update, cancel) comes through here.
        conn.execute(_DELETE_RUNTIME_SECRETS, {"eid": eid})


class Fixed(NamedTuple):
    """The columns of an execution that never change once it is created (after ``create``, only
    this module writes its row, and only phase, last_sequence, status and updated_at), and the
    Execution they make (serialized, without status and updated_at)."""

    kind: str
    labels: str
    spec: bytes
    created_at: int
    execution: bytes


_MEMO = "executions"  # this module's key of ``Conn.memo``: Fixed by execution id
_MEMO_MAX = 256  # executions kept (those being updated now); then it starts over
_MEMO_SPEC_MAX = 64 * 1024  # a larger spec is read and built each time


def fixed(conn: Conn, eid: str, pk: int) -> Fixed:
    """The fixed parts of execution ``eid`` (row ``pk``), from the database's memo (read the
    first time)."""
    found: Fixed | None = conn.memo[_MEMO].get(eid)
    if found is None:
        found = _remember(conn.memo, eid, conn.execute(_SELECT_FIXED, {"pk": pk}).one())
    return found


def _remember(memo: dict[str, dict[Any, Any]], eid: str, row: Any) -> Fixed:
    """The fixed parts of ``row`` (which has them), kept in ``memo`` unless its spec is large."""
    spec = bytes(row.spec)
    head = _head(eid, row.kind, row.labels, row.created_at, spec)
    found = Fixed(row.kind, row.labels, spec, row.created_at, head.SerializeToString())
    if len(spec) <= _MEMO_SPEC_MAX:
        kept = memo[_MEMO]
        if len(kept) >= _MEMO_MAX:
            kept.clear()
        kept[eid] = found
    return found


def _as_saved(
    memo: dict[str, dict[Any, Any]], row: ExecRow, status: ex.ExecutionStatus, updated_at: int
) -> ex.Execution:
    """``to_execution(row, status, updated_at)``, made from the execution's fixed parts."""
    known = memo[_MEMO].get(row.id) or _remember(memo, row.id, row)
    out = _execution_of(known.execution)
    set_timestamp(out.metadata.updated_at, updated_at)
    out.status.CopyFrom(status)
    return out


_execution_of = ex.Execution.FromString


def _head(eid: str, kind: str, labels: str, created_at: int, spec: bytes) -> ex.Execution:
    """An execution's fixed parts as an Execution (no status, no updated_at)."""
    out = ex.Execution(api_version=API_VERSION, kind=kind)
    md = out.metadata
    md.id = md.name = md.slug = eid
    md.version = 1
    if labels != "{}":
        md.labels.update(json.loads(labels))
    set_timestamp(md.created_at, created_at)
    out.spec.ParseFromString(spec)
    return out


def to_execution(
    row: Any, status: ex.ExecutionStatus | None = None, updated_at: int | None = None
) -> ex.Execution:
    out = _head(row.id, row.kind, row.labels, row.created_at, row.spec)
    set_timestamp(out.metadata.updated_at, updated_at if updated_at is not None else row.updated_at)
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


#: What a status update takes from its request before its transaction (:func:`prepare_update`):
#: each event copied and checked, with the sequence it was sent with and whether it came with a
#: time; and whether the request changes more than the log. (A plain tuple: made on every call.)
Prepared = tuple[list[tuple[ex.ExecutionEvent, int, bool]], bool]


def prepare_update(request: svc.UpdateExecutionStatusRequest) -> Prepared:
    """Check and copy what ``request`` carries that does not depend on the stored execution (so
    its transaction holds the database's write lock for less time)."""
    eid = request.execution_id
    events: list[tuple[ex.ExecutionEvent, int, bool]] = []
    for index, given in enumerate(request.events):
        event = _new_event()
        event.CopyFrom(given)
        if event.execution_id and event.execution_id != eid:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} belongs to execution {q(event.execution_id)}, not {eid}",
                [f"{where}.execution_id"],
            )
        kind = event.type
        if not kind or len(kind) > 64:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} needs a type of at most 64 characters (e.g. 'log', 'task.started')",
                [f"{where}.type"],
            )
        event.execution_id = eid
        events.append((event, event.sequence, event.HasField("time")))
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
    return events, has_changes


def answer(memo: dict[str, dict[Any, Any]], applied: Loaded | ex.Execution) -> ex.Execution:
    """The execution a status update answers with, made after its transaction from what
    :func:`apply_update` returned."""
    if isinstance(applied, Loaded):
        return _as_saved(memo, applied.row, applied.status, applied.now)
    return applied


def _append(conn: Conn, item: Loaded, events: list[tuple[ex.ExecutionEvent, int, bool]]) -> None:
    """Number, check and stamp the ``events`` of a status update (see :data:`Prepared`) and
    add the new ones to ``item``; one sent before (a retry) must be the same as stored."""
    last, now, pending = item.last, item.now, item.new_events
    ended = item.phase in TERMINAL_PHASES
    for index, (event, given, timed) in enumerate(events):
        seq = given or last + 1
        event.sequence = seq
        if seq <= last:  # sent before (a retry): it must be the same event
            earlier = next((e for e in pending if e.sequence == seq), None)
            if earlier is not None:
                if not timed:
                    event.time.CopyFrom(earlier.time)
                same = earlier == event
            else:
                if not timed:
                    event.ClearField("time")  # compared without one (_same)
                found = conn.execute(_SELECT_EVENT, {"eid": item.id, "seq": seq}).scalar()
                same = found is not None and _same(bytes(found), event)
            if not same:
                raise FailedPrecondition(
                    f"event {seq} of execution {item.id} is already stored with different content; "
                    "an event is never rewritten (send it with sequence 0 to append it)"
                )
            continue
        if seq != last + 1:
            where = f"events[{index}]"
            raise InvalidArgument(
                f"{where} has sequence {seq} but the next one is {last + 1}; events must have no gaps",
                [f"{where}.sequence"],
            )
        if ended:
            raise FailedPrecondition(
                f"execution {item.id} is {phase_name(item.phase)}; a finished execution takes no new events"
            )
        if not timed:
            set_timestamp(event.time, now)
        last = seq
        pending.append(event)
    item.last = last


def apply_update(
    conn: Conn,
    request: svc.UpdateExecutionStatusRequest,
    prepared: Prepared,
    principal: Principal | None = None,
) -> Loaded | ex.Execution:
    """The transaction of a status update: the execution as changed and saved (see :func:`answer`),
    or, when the request changes nothing, the execution as it is. It may run more than once (a
    retried transaction): it changes nothing of ``prepared`` a second run depends on."""
    if principal is not None:
        claim(conn, principal, request.execution_id, "report the progress of")
    item = load_for_update(conn, request.execution_id)
    events, has_changes = prepared
    phase, runner = request.phase, request.runner
    # A run starts (PENDING -> RUNNING) when asked to, or with the first report naming its
    # runner; the start comes first in its log, before the events sent with it (unless the writer
    # numbered them). Any other phase comes after the events it is sent with (a run's last
    # events, then its end).
    starting = item.phase == ex.PHASE_PENDING and (phase == ex.PHASE_RUNNING or bool(runner))
    numbered = starting and any(given for _, given, _ in events)
    if starting and not numbered:
        item.set_phase(ex.PHASE_RUNNING)
    if events:
        _append(conn, item, events)
    status = item.status
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
    if not (has_changes or item.new_events or runner):
        return to_execution(item.row, status)
    write_back(conn, item)
    return item


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
