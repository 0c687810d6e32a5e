"""Schedules firing: each slot of a Schedule fires once, recorded in ``schedule_fires`` (unique on
(schedule, slot)) in the same transaction as the execution it creates, so two scheduler processes
on one database (or a scheduler restarted mid-way) never start a slot twice.

A slot's outcome: ``fired`` (an execution started), ``skipped`` (overlap ``skip`` while the
schedule's previous run is not finished), or ``buffered`` (overlap ``bufferOne``: it starts when
that run ends; one at most, later slots are skipped meanwhile).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stigmer.backend.local._db import Conn, in_list
from stigmer.backend.local.tables import _executions
from stigmer.backend.local.tables import _resources as res
from stigmer.backend.local.tables._columns import now_us
from stigmer.core import SCHEDULE_LABEL, SLOT_LABEL, TERMINAL_PHASES, Principal, Timetable
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2
from stigmer.proto.v1.schedule_pb2 import Schedule

if TYPE_CHECKING:
    from stigmer.backend.local._crypto import SecretBox

__all__ = ["Fire", "buffered_ids", "fire_slot", "last_fires", "recorded_slots", "schedules", "start_buffered"]

#: Every Schedule's row.
_SCHEDULES = f"{res.SELECT_ROWS} WHERE kind = :kind ORDER BY pk"
#: The execution of a schedule's latest fired slot (``{}``: the columns of ``executions`` read).
_LATEST_RUN = (
    "SELECT {} FROM schedule_fires JOIN executions ON executions.id = schedule_fires.execution_id "
    "WHERE schedule_fires.schedule_id = :schedule_id AND schedule_fires.outcome = :outcome "
    "ORDER BY schedule_fires.slot DESC LIMIT 1"
)
_OPEN_RUN = _LATEST_RUN.format("executions.phase")
_LAST_RUN = _LATEST_RUN.format("executions.phase, executions.status, executions.updated_at")
_OUTCOME = "SELECT outcome FROM schedule_fires WHERE schedule_id = :schedule_id AND slot = :slot"
_BUFFERED_IDS = "SELECT schedule_id FROM schedule_fires WHERE outcome = :outcome"
_BUFFERED = (
    "SELECT slot FROM schedule_fires WHERE schedule_id = :schedule_id AND outcome = :outcome ORDER BY slot"
)
_INSERT = (
    "INSERT INTO schedule_fires (schedule_id, slot, execution_id, outcome, fired_at) "
    "VALUES (:schedule_id, :slot, :execution_id, :outcome, :fired_at)"
)
_START = (
    "UPDATE schedule_fires SET execution_id = :execution_id, outcome = :outcome, fired_at = :fired_at "
    "WHERE schedule_id = :schedule_id AND slot = :slot AND outcome = :was"
)
_LAST_FIRES = (
    "SELECT schedule_fires.slot, schedule_fires.outcome, schedule_fires.execution_id, executions.phase "
    "FROM schedule_fires LEFT OUTER JOIN executions ON executions.id = schedule_fires.execution_id "
    "WHERE schedule_fires.schedule_id = :schedule_id ORDER BY schedule_fires.slot DESC LIMIT :limit"
)


@dataclass(frozen=True)
class Fire:
    """What happened to one slot of one schedule."""

    schedule: str  # name
    slot: datetime
    outcome: str  # fired, skipped, buffered, already (fired before, by this or another process)
    execution: ex.Execution | None = None


def schedules(conn: Conn, name: str = "") -> list[Schedule]:
    """Every Schedule (or the one called ``name``), as stored."""
    out = []
    for row in conn.execute(_SCHEDULES, {"kind": "Schedule"}).all():
        msg = res.to_message(row).schedule
        if not name or res.same_name(msg.metadata.name, name):
            out.append(msg)
    return out


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def _slot_text(slot: datetime) -> str:
    return slot.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _open_run(conn: Conn, schedule_id: str) -> bool:
    """Whether the latest run this schedule started has not finished."""
    row = conn.execute(_OPEN_RUN, {"schedule_id": schedule_id, "outcome": "fired"}).first()
    return row is not None and row.phase not in TERMINAL_PHASES


def recorded_slots(conn: Conn, schedule: Schedule, slots: list[datetime]) -> set[datetime]:
    """Which of ``slots`` of ``schedule`` are recorded already (fired, skipped or buffered)."""
    if not slots:
        return set()
    wanted = {_us(slot): slot for slot in slots}
    slots_in, params = in_list("slot", sorted(wanted))
    rows = conn.execute(
        f"SELECT slot FROM schedule_fires WHERE schedule_id = :schedule_id AND slot IN {slots_in}",
        {**params, "schedule_id": schedule.metadata.id},
    ).all()
    return {wanted[int(r.slot)] for r in rows}


def buffered_ids(conn: Conn) -> set[str]:
    """The schedules with a buffered slot waiting for their previous run to end."""
    return set(conn.execute(_BUFFERED_IDS, {"outcome": "buffered"}).scalars())


def _buffered(conn: Conn, schedule_id: str) -> int | None:
    row = conn.execute(_BUFFERED, {"schedule_id": schedule_id, "outcome": "buffered"}).first()
    return None if row is None else int(row.slot)


@dataclass(frozen=True)
class Creator:
    """How executions are created here (the backend's settings)."""

    box: SecretBox | None = None
    principal: Principal | None = None
    offer_to_runners: bool = True
    server_id: str = ""
    agent_ceiling: Mapping[str, float] | None = None

    def create(self, conn: Conn, schedule: Schedule, slot: datetime) -> ex.Execution:
        spec = schedule.spec
        run = ex.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind=spec.target.kind, name=spec.target.name, id=spec.target.id),
            target_version=spec.target_version,
            message=spec.message,
            env=dict(spec.env),
        )
        if spec.HasField("input"):
            run.input.CopyFrom(spec.input)
        labels = {SCHEDULE_LABEL: schedule.metadata.name, SLOT_LABEL: _slot_text(slot)}
        request = svc.CreateExecutionRequest(spec=run, labels=labels)
        return _executions.create(
            conn,
            self.box,  # type: ignore[arg-type]
            request,
            self.principal,
            self.offer_to_runners,
            self.server_id,
            self.agent_ceiling,
        )


def fire_slot(
    conn: Conn, creator: Creator, schedule: Schedule, slot: datetime, *, manual: bool = False
) -> Fire:
    """Fire ``slot`` of ``schedule`` once: ``already`` when it was recorded before. ``manual``
    (trigger, backfill) ignores ``enabled``; overlap applies to every fire."""
    sid, name, slot_us = schedule.metadata.id, schedule.metadata.name, _us(slot)
    if conn.execute(_OUTCOME, {"schedule_id": sid, "slot": slot_us}).first():
        return Fire(name, slot, "already")
    overlap = schedule.spec.overlap or "skip"
    outcome, execution = "fired", None
    if overlap != "allowAll" and _open_run(conn, sid):
        outcome = "buffered" if overlap == "bufferOne" and _buffered(conn, sid) is None else "skipped"
    if outcome == "fired":
        execution = creator.create(conn, schedule, slot)
    conn.execute(
        _INSERT,
        {
            "schedule_id": sid,
            "slot": slot_us,
            "execution_id": execution.metadata.id if execution else "",
            "outcome": outcome,
            "fired_at": now_us(),
        },
    )
    _record(conn, schedule, slot, outcome, execution)
    return Fire(name, slot, outcome, execution)


def start_buffered(conn: Conn, creator: Creator, schedule: Schedule) -> Fire | None:
    """Start the buffered slot of a ``bufferOne`` schedule once its previous run ended."""
    sid = schedule.metadata.id
    slot_us = _buffered(conn, sid)
    if slot_us is None or _open_run(conn, sid):
        return None
    slot = datetime.fromtimestamp(slot_us / 1_000_000, UTC)
    execution = creator.create(conn, schedule, slot)
    conn.execute(
        _START,
        {
            "schedule_id": sid,
            "slot": slot_us,
            "was": "buffered",
            "outcome": "fired",
            "execution_id": execution.metadata.id,
            "fired_at": now_us(),
        },
    )
    _record(conn, schedule, slot, "fired", execution)
    return Fire(schedule.metadata.name, slot, "fired", execution)


def _record(conn: Conn, schedule: Schedule, slot: datetime, outcome: str, execution: Any) -> None:
    if outcome == "fired":
        changes: dict[str, Any] = {
            "fireCount+": 1,
            "lastFireTime": _slot_text(slot),
            "lastExecutionId": execution.metadata.id,
        }
    elif outcome == "skipped":
        changes = {"skippedCount+": 1}
    else:
        return
    res.bump_status(conn, schedule.metadata.id, changes)


def last_fires(conn: Conn, schedule_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The latest slots of a schedule, newest first: slot, outcome, execution id and phase."""
    rows = conn.execute(_LAST_FIRES, {"schedule_id": schedule_id, "limit": limit}).all()
    return [
        {
            "slot": _slot_text(datetime.fromtimestamp(r.slot / 1_000_000, UTC)),
            "outcome": r.outcome,
            "executionId": r.execution_id,
            "phase": int(r.phase or 0),
        }
        for r in rows
    ]


def created_at(schedule: Schedule) -> datetime:
    return schedule.metadata.created_at.ToDatetime(tzinfo=UTC)


def due(schedule: Schedule, now: datetime) -> list[datetime]:
    """The slots of an enabled schedule due at ``now`` (since it was created)."""
    if schedule.spec.HasField("enabled") and not schedule.spec.enabled:
        return []
    return Timetable.of(schedule.spec).due(schedule.metadata.id, created_at(schedule), now)


def due_after(conn: Conn, schedule: Schedule, now: datetime) -> list[datetime]:
    """The slot of an enabled ``after`` schedule due at ``now``: ``after`` past the end of its
    last run (or past its creation, before any), once that run ended."""
    if schedule.spec.HasField("enabled") and not schedule.spec.enabled:
        return []
    row = conn.execute(_LAST_RUN, {"schedule_id": schedule.metadata.id, "outcome": "fired"}).first()
    ended: datetime | None = None
    if row is not None and row.phase in TERMINAL_PHASES:
        status = ex.ExecutionStatus.FromString(row.status)
        ended = (
            status.finished_at.ToDatetime(tzinfo=UTC)
            if status.HasField("finished_at")
            else datetime.fromtimestamp(row.updated_at / 1_000_000, UTC)
        )
    table = Timetable.of(schedule.spec)
    slot = table.next_after(created_at(schedule), ended, row is not None and row.phase not in TERMINAL_PHASES)
    return [slot] if slot is not None and slot <= now else []
