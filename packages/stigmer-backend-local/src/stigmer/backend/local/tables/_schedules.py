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
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from stigmer.backend.local._crypto import SecretBox
from stigmer.backend.local.tables import _executions
from stigmer.backend.local.tables import _resources as res
from stigmer.backend.local.tables import _schema as s
from stigmer.backend.local.tables._columns import now_us
from stigmer.core import SCHEDULE_LABEL, SLOT_LABEL, TERMINAL_PHASES, Principal, Timetable
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2
from stigmer.proto.v1.schedule_pb2 import Schedule

__all__ = ["Fire", "buffered_ids", "fire_slot", "last_fires", "recorded_slots", "schedules", "start_buffered"]


@dataclass(frozen=True)
class Fire:
    """What happened to one slot of one schedule."""

    schedule: str  # name
    slot: datetime
    outcome: str  # fired, skipped, buffered, already (fired before, by this or another process)
    execution: ex.Execution | None = None


def schedules(conn: Connection, name: str = "") -> list[Schedule]:
    """Every Schedule (or the one called ``name``), as stored."""
    r = s.resources
    query = select(r).where(r.c.kind == "Schedule").order_by(r.c.pk)
    out = []
    for row in conn.execute(query):
        msg = res.to_message(row).schedule
        if not name or res.same_name(msg.metadata.name, name):
            out.append(msg)
    return out


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def _slot_text(slot: datetime) -> str:
    return slot.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _open_run(conn: Connection, schedule_id: str) -> bool:
    """Whether the latest run this schedule started has not finished."""
    f, e = s.schedule_fires, s.executions
    row = conn.execute(
        select(e.c.phase)
        .select_from(f.join(e, e.c.id == f.c.execution_id))
        .where(f.c.schedule_id == schedule_id, f.c.outcome == "fired")
        .order_by(f.c.slot.desc())
        .limit(1)
    ).first()
    return row is not None and row.phase not in TERMINAL_PHASES


def recorded_slots(conn: Connection, schedule: Schedule, slots: list[datetime]) -> set[datetime]:
    """Which of ``slots`` of ``schedule`` are recorded already (fired, skipped or buffered)."""
    if not slots:
        return set()
    f = s.schedule_fires
    wanted = {_us(slot): slot for slot in slots}
    rows = conn.execute(
        select(f.c.slot).where(f.c.schedule_id == schedule.metadata.id, f.c.slot.in_(sorted(wanted)))
    )
    return {wanted[int(r.slot)] for r in rows}


def buffered_ids(conn: Connection) -> set[str]:
    """The schedules with a buffered slot waiting for their previous run to end."""
    f = s.schedule_fires
    return {r.schedule_id for r in conn.execute(select(f.c.schedule_id).where(f.c.outcome == "buffered"))}


def _buffered(conn: Connection, schedule_id: str) -> int | None:
    f = s.schedule_fires
    row = conn.execute(
        select(f.c.slot).where(f.c.schedule_id == schedule_id, f.c.outcome == "buffered").order_by(f.c.slot)
    ).first()
    return None if row is None else int(row.slot)


@dataclass(frozen=True)
class Creator:
    """How executions are created here (the backend's settings)."""

    box: SecretBox | None = None
    principal: Principal | None = None
    offer_to_runners: bool = True
    server_id: str = ""
    agent_ceiling: Mapping[str, float] | None = None

    def create(self, conn: Connection, schedule: Schedule, slot: datetime) -> ex.Execution:
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
    conn: Connection, creator: Creator, schedule: Schedule, slot: datetime, *, manual: bool = False
) -> Fire:
    """Fire ``slot`` of ``schedule`` once: ``already`` when it was recorded before. ``manual``
    (trigger, backfill) ignores ``enabled``; overlap applies to every fire."""
    f = s.schedule_fires
    sid, name, slot_us = schedule.metadata.id, schedule.metadata.name, _us(slot)
    if conn.execute(select(f.c.outcome).where(f.c.schedule_id == sid, f.c.slot == slot_us)).first():
        return Fire(name, slot, "already")
    overlap = schedule.spec.overlap or "skip"
    outcome, execution = "fired", None
    if overlap != "allowAll" and _open_run(conn, sid):
        outcome = "buffered" if overlap == "bufferOne" and _buffered(conn, sid) is None else "skipped"
    if outcome == "fired":
        execution = creator.create(conn, schedule, slot)
    conn.execute(
        insert(f).values(
            schedule_id=sid,
            slot=slot_us,
            execution_id=execution.metadata.id if execution else "",
            outcome=outcome,
            fired_at=now_us(),
        )
    )
    _record(conn, schedule, slot, outcome, execution)
    return Fire(name, slot, outcome, execution)


def start_buffered(conn: Connection, creator: Creator, schedule: Schedule) -> Fire | None:
    """Start the buffered slot of a ``bufferOne`` schedule once its previous run ended."""
    sid = schedule.metadata.id
    slot_us = _buffered(conn, sid)
    if slot_us is None or _open_run(conn, sid):
        return None
    slot = datetime.fromtimestamp(slot_us / 1_000_000, UTC)
    execution = creator.create(conn, schedule, slot)
    f = s.schedule_fires
    conn.execute(
        update(f)
        .where(and_(f.c.schedule_id == sid, f.c.slot == slot_us, f.c.outcome == "buffered"))
        .values(outcome="fired", execution_id=execution.metadata.id, fired_at=now_us())
    )
    _record(conn, schedule, slot, "fired", execution)
    return Fire(schedule.metadata.name, slot, "fired", execution)


def _record(conn: Connection, schedule: Schedule, slot: datetime, outcome: str, execution: Any) -> None:
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


def last_fires(conn: Connection, schedule_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The latest slots of a schedule, newest first: slot, outcome, execution id and phase."""
    f, e = s.schedule_fires, s.executions
    rows = conn.execute(
        select(f.c.slot, f.c.outcome, f.c.execution_id, e.c.phase)
        .select_from(f.outerjoin(e, e.c.id == f.c.execution_id))
        .where(f.c.schedule_id == schedule_id)
        .order_by(f.c.slot.desc())
        .limit(limit)
    )
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


def due_after(conn: Connection, schedule: Schedule, now: datetime) -> list[datetime]:
    """The slot of an enabled ``after`` schedule due at ``now``: ``after`` past the end of its
    last run (or past its creation, before any), once that run ended."""
    if schedule.spec.HasField("enabled") and not schedule.spec.enabled:
        return []
    f, e = s.schedule_fires, s.executions
    row = conn.execute(
        select(e.c.phase, e.c.status, e.c.updated_at)
        .select_from(f.join(e, e.c.id == f.c.execution_id))
        .where(f.c.schedule_id == schedule.metadata.id, f.c.outcome == "fired")
        .order_by(f.c.slot.desc())
        .limit(1)
    ).first()
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
