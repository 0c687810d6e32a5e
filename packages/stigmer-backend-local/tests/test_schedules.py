"""Schedules in the local store (issue 21): each slot fires once — twice asked, two backends on
one database, a restart in between — overlap, catch-up window, jitter, enabled; on SQLite and
(marked ``postgres``) PostgreSQL. The clock is injected: nothing waits for wall-clock minutes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stigmer.backend.local import LocalBackend, Scheduler
from stigmer.core import (
    SCHEDULE_LABEL,
    SLOT_LABEL,
    FailedPrecondition,
    InvalidArgument,
    Timetable,
    parse_manifest,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

KEY = os.urandom(32)
FLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: tick}
spec:
  document: {dsl: 1.0.0, namespace: t, name: tick, version: 1.0.0}
  do:
    - hi: {set: {hi: true}}
"""


def schedule(name: str = "every-minute", **spec: Any) -> str:
    body = {"every": "1m", "target": "{kind: Workflow, name: tick}", **spec}
    lines = "".join(f"  {k}: {v}\n" for k, v in body.items())
    return f"apiVersion: stigmer.ai/v1\nkind: Schedule\nmetadata: {{name: {name}}}\nspec:\n{lines}"


async def apply(backend: LocalBackend, text: str) -> Any:
    out = None
    for loaded in parse_manifest(text, "test.yaml"):
        out = await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stigmer.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def open_backend(url: str, tmp_path: Path) -> AsyncIterator[Callable[[], LocalBackend]]:
    opened: list[LocalBackend] = []

    def make() -> LocalBackend:
        backend = LocalBackend(url, home=tmp_path, master_key=KEY)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        await backend.close()


async def created(backend: LocalBackend, name: str = "every-minute") -> datetime:
    found = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Schedule", name=name)))
    return found.schedule.metadata.created_at.ToDatetime(tzinfo=UTC)


def next_slot(after: datetime, minutes: int = 1) -> datetime:
    return Timetable(every=timedelta(minutes=minutes)).next_slots(after, 1)[0]


async def test_each_slot_fires_once_across_calls_backends_and_a_restart(
    open_backend: Callable[[], LocalBackend],
) -> None:
    first = open_backend()
    await apply(first, FLOW)
    await apply(first, schedule(overlap="allowAll"))
    slot = next_slot(await created(first))
    now = slot + timedelta(seconds=5)
    assert await first.fire_due(slot - timedelta(seconds=1)) == []  # not yet
    second = open_backend()  # a second server process on the same database
    a, b = await asyncio.gather(first.fire_due(now), second.fire_due(now))
    a, b = [f for f in a if f.schedule == "every-minute"], [f for f in b if f.schedule == "every-minute"]
    outcomes = sorted(f.outcome for f in [*a, *b])
    assert outcomes == ["already", "fired"]
    [fired] = [f for f in [*a, *b] if f.outcome == "fired"]
    assert fired.slot == slot and fired.execution is not None
    labels = dict(fired.execution.metadata.labels)
    assert labels == {SCHEDULE_LABEL: "every-minute", SLOT_LABEL: slot.isoformat().replace("+00:00", "Z")}
    await first.close()
    restarted = open_backend()
    assert [f.outcome for f in await restarted.fire_due(now)] == ["already"]
    page = await restarted.list_executions(
        svc.ListExecutionsRequest(label_selector=f"{SCHEDULE_LABEL}=every-minute")
    )
    assert len(page.executions) == 1
    ref = meta_pb2.ResourceRef(kind="Schedule", name="every-minute")
    status = (await restarted.get(svc.GetRequest(ref=ref))).schedule.status
    assert status.fire_count == 1 and status.last_execution_id == fired.execution.metadata.id


async def test_missed_slots_beyond_the_catchup_window_are_skipped(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    await apply(backend, schedule("catchup", overlap="allowAll", catchupWindow="150s"))
    slot = next_slot(await created(backend, "catchup"))
    now = slot + timedelta(minutes=10, seconds=10)  # nothing ran for ten minutes
    fires = await backend.fire_due(now, "catchup")
    assert [f.slot for f in fires] == [
        slot + timedelta(minutes=8),
        slot + timedelta(minutes=9),
        slot + timedelta(minutes=10),
    ]


async def test_overlap_skip_buffer_one_and_allow_all(open_backend: Callable[[], LocalBackend]) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    for policy in ("skip", "bufferOne", "allowAll"):
        await apply(backend, schedule(policy.lower(), overlap=policy))
    start = next_slot(await created(backend, "skip"))
    names = {"skip", "bufferone", "allowall"}
    first = {f.schedule: f for f in await backend.fire_due(start) if f.schedule in names}
    assert {f.outcome for f in first.values()} == {"fired"}
    later = [start + timedelta(minutes=n) for n in (1, 2)]
    for at in later:  # the first runs are still PENDING (nothing runs them here)
        second = {f.schedule: f.outcome for f in await backend.fire_due(at) if f.schedule in names}
        if at == later[0]:
            assert second == {"skip": "skipped", "bufferone": "buffered", "allowall": "fired"}
        else:
            assert second == {"skip": "skipped", "bufferone": "skipped", "allowall": "fired"}
    # the buffered slot starts once the run before it ended
    running = first["bufferone"].execution
    assert running is not None
    await backend.cancel_execution(svc.CancelExecutionRequest(id=running.metadata.id))
    again = await backend.fire_due(later[1] + timedelta(seconds=1), "bufferone")
    assert [(f.outcome, f.slot) for f in again if f.outcome != "already"] == [("fired", later[0])]
    fires = await backend.schedule_fires("bufferone")
    assert [f["outcome"] for f in fires] == ["skipped", "fired", "fired"]


async def test_a_paused_schedule_fires_nothing_but_can_be_triggered(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    await apply(backend, schedule("paused", enabled="false"))
    slot = next_slot(await created(backend, "paused"))
    assert await backend.fire_due(slot + timedelta(seconds=1), "paused") == []
    [manual] = await backend.fire_schedule("paused", [slot])
    assert manual.outcome == "fired"
    assert [f.outcome for f in await backend.fire_schedule("paused", [slot])] == ["already"]


async def test_jitter_delays_a_fire_the_same_way_in_every_process() -> None:
    table = Timetable(every=timedelta(minutes=1), jitter=timedelta(seconds=30))
    slot = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    delay = table.jitter_for("sch_x", slot)
    assert timedelta(0) <= delay < timedelta(seconds=30)
    assert delay == Timetable(every=timedelta(minutes=1), jitter=timedelta(seconds=30)).jitter_for(
        "sch_x", slot
    )
    since = slot - timedelta(seconds=1)
    assert table.due("sch_x", since, slot + delay - timedelta(microseconds=1)) == []
    assert table.due("sch_x", since, slot + delay) == [slot]


def test_cron_slots_follow_the_time_zone_across_daylight_saving() -> None:
    table = Timetable(cron="0 9 * * *", time_zone="Europe/Berlin")
    march = table.next_slots(datetime(2026, 3, 28, tzinfo=UTC), 2)
    assert [s.hour for s in march] == [8, 7]  # 09:00 CET then 09:00 CEST


async def test_bad_schedules_are_refused_with_the_field(open_backend: Callable[[], LocalBackend]) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    cases = {
        "cron: 'not cron'": "spec.cron",
        "cron: '0 9 * * *'\n  timeZone: Mars/Olympus": "spec.timeZone",
        "cron: '0 9 * * *'\n  every: 1m": "spec.cron",
        "every: soon": "spec.every",
        "every: 1m\n  overlap: sometimes": "spec.overlap",
    }
    for body, field in cases.items():
        text = f"apiVersion: stigmer.ai/v1\nkind: Schedule\nmetadata: {{name: bad}}\nspec:\n  {body}\n  target: {{kind: Workflow, name: tick}}\n"
        with pytest.raises(InvalidArgument) as caught:
            await apply(backend, text)
        assert field in caught.value.message, (body, caught.value.message)


async def test_the_scheduler_hands_each_execution_it_creates_to_start(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    await apply(backend, schedule("handed", overlap="allowAll"))
    slot = next_slot(await created(backend, "handed"))
    clock = [slot - timedelta(seconds=1)]
    started: list[execution_pb2.Execution] = []
    scheduler = Scheduler(backend, started.append, clock=lambda: clock[0])
    assert await scheduler.run_once("handed") == [] and started == []
    clock[0] = slot + timedelta(minutes=1)
    await scheduler.run_once("handed")
    assert [dict(e.metadata.labels)[SLOT_LABEL] for e in started] == [
        s.isoformat().replace("+00:00", "Z") for s in (slot, slot + timedelta(minutes=1))
    ]


OWNED = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: pulse}
spec:
  document: {dsl: 1.0.0, namespace: t, name: pulse, version: 1.0.0}
  SCHEDULE
  do:
    - hi: {set: {hi: true}}
"""


async def test_a_workflow_schedule_makes_an_owned_schedule_kept_in_step(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    ref = meta_pb2.ResourceRef(kind="Schedule", name="pulse")
    await apply(backend, OWNED.replace("SCHEDULE", "schedule: {every: {minutes: 5}}"))
    owned = (await backend.get(svc.GetRequest(ref=ref))).schedule
    assert owned.spec.every == "300s" and owned.spec.target.name == "pulse"
    assert owned.metadata.annotations["stigmer.ai/owner"] == "Workflow/pulse"
    slot = Timetable(every=timedelta(minutes=5)).next_slots(await created(backend, "pulse"), 1)[0]
    [fire] = await backend.fire_due(slot + timedelta(seconds=1), "pulse")
    assert fire.outcome == "fired" and fire.execution is not None
    await apply(backend, OWNED.replace("SCHEDULE", "schedule: {cron: '*/10 * * * *'}"))
    owned = (await backend.get(svc.GetRequest(ref=ref))).schedule
    assert (owned.spec.cron, owned.spec.every, owned.metadata.version) == ("*/10 * * * *", "", 2)
    await apply(backend, OWNED.replace("SCHEDULE", ""))  # the document's schedule removed
    page = await backend.list(svc.ListRequest(kind="Schedule"))
    assert "pulse" not in [r.schedule.metadata.name for r in page.resources]
    await apply(backend, OWNED.replace("SCHEDULE", "schedule: {every: PT1M}"))
    await backend.delete(svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="Workflow", name="pulse")))
    page = await backend.list(svc.ListRequest(kind="Schedule"))
    assert "pulse" not in [r.schedule.metadata.name for r in page.resources]


async def test_a_schedule_the_workflow_does_not_own_is_never_replaced(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    await apply(backend, schedule("mine"))
    with pytest.raises(FailedPrecondition, match="a Schedule 'mine' it does not own exists"):
        await apply(backend, OWNED.replace("pulse", "mine").replace("SCHEDULE", "schedule: {every: PT1M}"))


async def test_an_after_schedule_starts_again_a_while_after_its_last_run_ended(
    open_backend: Callable[[], LocalBackend],
) -> None:
    backend = open_backend()
    await apply(backend, FLOW)
    await apply(backend, OWNED.replace("SCHEDULE", "schedule: {after: {minutes: 5}}"))
    owned = (
        await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Schedule", name="pulse")))
    ).schedule
    assert owned.spec.after == "300s"
    first = await created(backend, "pulse") + timedelta(minutes=5)
    assert await backend.fire_due(first - timedelta(seconds=1), "pulse") == []
    [fire] = await backend.fire_due(first, "pulse")
    assert fire.outcome == "fired" and fire.execution is not None
    much_later = first + timedelta(hours=1)
    assert await backend.fire_due(much_later, "pulse") == []  # its run has not ended
    ended = await backend.cancel_execution(svc.CancelExecutionRequest(id=fire.execution.metadata.id))
    end = ended.status.finished_at.ToDatetime(tzinfo=UTC)
    assert await backend.fire_due(end + timedelta(minutes=5) - timedelta(seconds=1), "pulse") == []
    [again] = await backend.fire_due(end + timedelta(minutes=5), "pulse")
    assert again.outcome == "fired" and again.slot == end + timedelta(minutes=5)
