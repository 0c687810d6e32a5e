"""Schedules through the SDK: pause/resume (``spec.enabled``), trigger, backfill, what fires next
and what ran, and Lite's ``run_due`` / ``scheduler`` (fire what is due here and run it in this
process). A server fires its schedules itself; trigger and backfill against a server create the
executions (labelled like the server's) for the server to run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stigmer.core import SCHEDULE_LABEL, SLOT_LABEL, FailedPrecondition, InvalidArgument, Timetable

if TYPE_CHECKING:
    from collections.abc import Callable

    from stigmer.proto.v1 import execution_pb2
    from stigmer.proto.v1.schedule_pb2 import Schedule
    from stigmer.sdk._client import AsyncStigmer
    from stigmer.sdk._execution import AsyncExecution

__all__ = ["Fired", "ScheduleInfo"]


@dataclass(frozen=True)
class Fired:
    """One slot a schedule fired (or skipped): ``outcome`` is fired, skipped, buffered or already."""

    schedule: str
    slot: datetime
    outcome: str
    execution_id: str = ""


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule with its next fire times (none while paused) and its latest runs, newest first
    (``slot``, ``outcome``, ``executionId``, ``phase``)."""

    schedule: Schedule
    next_fires: tuple[datetime, ...]
    last_runs: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def enabled(self) -> bool:
        return enabled(self.schedule)


def enabled(schedule: Schedule) -> bool:
    return not schedule.spec.HasField("enabled") or schedule.spec.enabled


def utcnow() -> datetime:
    return datetime.now(UTC)


def slot_text(slot: datetime) -> str:
    return slot.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def get_schedule(client: AsyncStigmer, name: str) -> Schedule:
    found: Any = await client.get("Schedule", name)
    schedule: Schedule = found
    return schedule


async def set_enabled(client: AsyncStigmer, name: str, value: bool) -> Schedule:
    """Pause or resume: a new version of the schedule with ``spec.enabled`` set."""
    from stigmer.core import unwrap
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import resource_pb2

    schedule = await get_schedule(client, name)
    schedule.spec.enabled = value
    schedule.ClearField("status")
    response = await client.backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(schedule=schedule)))
    applied: Any = unwrap(response.resource)
    return applied  # type: ignore[no-any-return]


async def info(
    client: AsyncStigmer, name: str, *, count: int = 3, now: datetime | None = None
) -> ScheduleInfo:
    schedule = await get_schedule(client, name)
    when = now or utcnow()
    upcoming = Timetable.of(schedule.spec).next_slots(when, count) if enabled(schedule) else []
    return ScheduleInfo(schedule, tuple(upcoming), tuple(await last_runs(client, schedule)))


async def last_runs(client: AsyncStigmer, schedule: Schedule, limit: int = 5) -> list[dict[str, Any]]:
    from stigmer.backend.local import LocalBackend

    backend = client.backend
    if isinstance(backend, LocalBackend):
        return await backend.schedule_fires(schedule.metadata.name, limit)
    page = await client.list_executions(labels={SCHEDULE_LABEL: schedule.metadata.name}, limit=limit)
    return [
        {
            "slot": ex.metadata.labels.get(SLOT_LABEL, ""),
            "outcome": "fired",
            "executionId": ex.metadata.id,
            "phase": int(ex.status.phase),
        }
        for ex in page.executions
    ]


def _local(client: AsyncStigmer, what: str) -> Any:
    from stigmer.backend.local import LocalBackend

    if not isinstance(client.backend, LocalBackend):
        raise FailedPrecondition(
            f"{what} fires schedules in a local context; a server fires its schedules itself "
            "(`stigmer schedule trigger NAME` starts one run there)"
        )
    return client.backend


def _handle(client: AsyncStigmer, execution: execution_pb2.Execution, start: bool) -> AsyncExecution:
    from stigmer.core import kind_info
    from stigmer.sdk._connection import load_runner_plugin
    from stigmer.sdk._execution import AsyncExecution

    runs = kind_info(execution.spec.target.kind).runner
    runner = load_runner_plugin(runs) if client.local and runs else None
    handle = AsyncExecution(client.backend, execution, runner, start=start)
    client._executions.append(handle)
    return handle


async def fire(
    client: AsyncStigmer, name: str, slots: list[datetime], *, overlap: bool, start: bool
) -> list[tuple[Fired, AsyncExecution | None]]:
    """Fire ``slots`` of the schedule ``name`` now, whether it is enabled or not."""
    from stigmer.backend.local import LocalBackend

    backend = client.backend
    out: list[tuple[Fired, AsyncExecution | None]] = []
    if isinstance(backend, LocalBackend):
        for f in await backend.fire_schedule(name, slots, overlap=overlap):
            handle = _handle(client, f.execution, start) if f.execution is not None else None
            out.append((Fired(f.schedule, f.slot, f.outcome, handle.id if handle else ""), handle))
        return out
    schedule = await get_schedule(client, name)
    for slot in slots:
        handle = await _create(client, schedule, slot)
        out.append((Fired(name, slot, "fired", handle.id), handle))
    return out


async def _create(client: AsyncStigmer, schedule: Schedule, slot: datetime) -> AsyncExecution:
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2

    spec = schedule.spec
    run = execution_pb2.ExecutionSpec(
        target=spec.target, target_version=spec.target_version, message=spec.message, env=dict(spec.env)
    )
    if spec.HasField("input"):
        run.input.CopyFrom(spec.input)
    labels = {SCHEDULE_LABEL: schedule.metadata.name, SLOT_LABEL: slot_text(slot)}
    created = await client.backend.create_execution(svc.CreateExecutionRequest(spec=run, labels=labels))
    return _handle(client, created, start=False)


def backfill_slots(schedule: Schedule, start: datetime, end: datetime, limit: int = 1000) -> list[datetime]:
    """The slots of ``schedule`` in ``[start, end)``; at most ``limit``."""
    from datetime import timedelta

    if end <= start:
        raise InvalidArgument("backfill needs --from before --to", ["start"])
    out: list[datetime] = []
    for slot in Timetable.of(schedule.spec).slots_after(start - timedelta(microseconds=1)):
        if slot >= end:
            break
        if len(out) == limit:
            raise InvalidArgument(f"the range holds more than {limit} slots; backfill a shorter one", ["end"])
        out.append(slot)
    return out


async def run_due(
    client: AsyncStigmer, *, now: datetime | None = None, name: str = "", wait: bool = True
) -> list[tuple[Fired, AsyncExecution | None]]:
    """Lite: fire what is due at ``now`` (default: the clock) and run it here; with ``wait``,
    until those runs end."""
    from stigmer.backend.local import Scheduler

    backend = _local(client, "run-due")
    out: list[tuple[Fired, AsyncExecution | None]] = []
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    for f in await Scheduler(backend, clock=clock).run_once(name):
        handle = _handle(client, f.execution, True) if f.execution is not None else None
        out.append((Fired(f.schedule, f.slot, f.outcome, handle.id if handle else ""), handle))
    if wait:
        await asyncio.gather(*(h.wait() for _f, h in out if h is not None), return_exceptions=True)
    return out


async def scheduler(
    client: AsyncStigmer,
    stop: asyncio.Event,
    *,
    tick: float = 1.0,
    clock: Callable[[], datetime] = utcnow,
    on_fire: Callable[[Fired], None] | None = None,
) -> None:
    """Lite: fire due schedules every ``tick`` seconds until ``stop``, each run in this process."""
    from stigmer.backend.local import Scheduler

    backend = _local(client, "the scheduler")

    def started(execution: execution_pb2.Execution) -> None:
        handle = _handle(client, execution, True)
        if on_fire is not None:
            labels = execution.metadata.labels
            slot = datetime.fromisoformat(labels.get(SLOT_LABEL, "").replace("Z", "+00:00"))
            on_fire(Fired(labels.get(SCHEDULE_LABEL, ""), slot, "fired", handle.id))

    await Scheduler(backend, started, clock=clock, tick=tick).run(stop)
