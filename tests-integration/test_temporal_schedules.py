"""Stigmer Schedules as Temporal Schedules (issue 21), on a real Temporal dev server: one Temporal
Schedule per Stigmer Schedule, kept in step on apply, pause and delete; its fires start runs
through the dispatcher, each slot once."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import SCHEDULE_LABEL, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.temporal import TemporalSchedules, temporal_dispatch
from stigmer.testing import TemporalServer
from temporalio.client import ScheduleOverlapPolicy

pytestmark = pytest.mark.timeout(120)

MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: beat}
spec:
  document: {dsl: 1.0.0, namespace: t, name: beat, version: 1.0.0}
  do:
    - hi: {set: {beat: true}}
---
apiVersion: stigmer.ai/v1
kind: Schedule
metadata: {name: heartbeat}
spec:
  every: 1s
  overlap: allowAll
  enabled: ENABLED
  target: {kind: Workflow, name: beat}
"""


async def _scheduled_runs(local: LocalBackend, schedule: str = "") -> list[execution_pb2.Execution]:
    """The executions schedules started (of ``schedule`` only if given), oldest first."""
    found = await local.list_executions(svc.ListExecutionsRequest(page_size=200))
    runs = [e for e in found.executions if SCHEDULE_LABEL in e.metadata.labels]
    if schedule:
        runs = [e for e in runs if e.metadata.labels[SCHEDULE_LABEL] == schedule]
    return sorted(runs, key=lambda e: e.metadata.id)


async def test_a_temporal_schedule_is_kept_in_step_and_fires_each_slot_once(
    tmp_path: Path, temporal_server: TemporalServer
) -> None:
    local = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    served, dispatcher = temporal_dispatch(local, temporal_server.address)
    # no worker serves this queue: the runs stay pending (allowAll fires every slot regardless)
    dispatcher.queues["WorkflowExecution"] = f"nobody-{time.monotonic_ns()}"
    schedules = TemporalSchedules(local, dispatcher, queue=f"schedules-{time.monotonic_ns()}")
    dispatcher.schedules = schedules
    stop = asyncio.Event()
    worker = asyncio.create_task(schedules.run(stop))
    client: Any = await dispatcher.client()

    async def apply(enabled: bool) -> None:
        for loaded in parse_manifest(MANIFESTS.replace("ENABLED", str(enabled).lower()), "m.yaml"):
            await served.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        if schedules._pending is not None:
            await schedules._pending

    try:
        await apply(True)
        schedule = (await local.list(svc.ListRequest(kind="Schedule"))).resources[0].schedule
        handle = client.get_schedule_handle(f"stigmer-schedule-{schedule.metadata.id}")
        described = await handle.describe()
        assert described.schedule.state.paused is False
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
        deadline = time.monotonic() + 30
        while len(started := await _scheduled_runs(local)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert len(started) >= 2
        slots = [e.metadata.labels["stigmer.ai/fire-time"] for e in started]
        assert len(slots) == len(set(slots))
        assert {e.metadata.labels[SCHEDULE_LABEL] for e in started} == {"heartbeat"}

        await apply(False)  # paused in Temporal too
        assert (await handle.describe()).schedule.state.paused is True

        await served.delete(svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="Schedule", name="heartbeat")))
        await asyncio.sleep(0.3)
        if schedules._pending is not None:
            await schedules._pending
        ids = [s.id async for s in await client.list_schedules()]
        assert f"stigmer-schedule-{schedule.metadata.id}" not in ids
    finally:
        stop.set()
        await worker
        await local.close()


WAITER = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waiter}
spec:
  document: {dsl: 1.0.0, namespace: t, name: waiter, version: 1.0.0}
  do:
    - go:
        listen:
          to:
            one: {with: {type: com.example.go}}
---
apiVersion: stigmer.ai/v1
kind: Schedule
metadata: {name: yearly}
spec:
  cron: "0 0 1 1 *"
  overlap: OVERLAP
  catchupWindow: 5m
  target: {kind: Workflow, name: waiter}
"""


@pytest.mark.parametrize(
    ("overlap", "policy"),
    [
        ("skip", ScheduleOverlapPolicy.SKIP),
        ("bufferOne", ScheduleOverlapPolicy.BUFFER_ONE),
        ("allowAll", ScheduleOverlapPolicy.ALLOW_ALL),
    ],
)
async def test_temporal_judges_overlap_on_the_real_runs(
    tmp_path: Path, temporal_server: TemporalServer, overlap: str, policy: ScheduleOverlapPolicy
) -> None:
    """Each fire lasts as long as its run (a workflow that listens for an event), so Temporal's own
    overlap policy decides: a second fire while the first run still runs is dropped (skip), kept
    until that run ends — one of them, a third is dropped (bufferOne) — or run at once (allowAll).
    Fires come from Temporal's own ``trigger`` (no waiting for the cron)."""
    from stigmer.runner.workflow.temporal._worker import workflow_worker
    from stigmer.temporal import EVENT_SIGNAL

    local = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    served, dispatcher = temporal_dispatch(local, temporal_server.address)
    queue = f"overlap-{time.monotonic_ns()}"
    dispatcher.queues["WorkflowExecution"] = queue
    schedules = TemporalSchedules(local, dispatcher, queue=f"schedules-{time.monotonic_ns()}")
    dispatcher.schedules = schedules
    for loaded in parse_manifest(WAITER.replace("OVERLAP", overlap), "m.yaml"):
        await served.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    stop = asyncio.Event()
    firing = asyncio.create_task(schedules.run(stop))  # syncs, then runs the fire worker
    client: Any = await dispatcher.client()
    schedule = (await local.list(svc.ListRequest(kind="Schedule"))).resources[0].schedule
    handle = client.get_schedule_handle(f"stigmer-schedule-{schedule.metadata.id}")

    async def runs(count: int, phase: int = execution_pb2.PHASE_RUNNING) -> list[execution_pb2.Execution]:
        deadline = time.monotonic() + 30
        while True:
            found = await _scheduled_runs(local, "yearly")
            if len([e for e in found if e.status.phase == phase]) >= count:
                return found
            assert time.monotonic() < deadline, [execution_pb2.Phase.Name(e.status.phase) for e in found]
            await asyncio.sleep(0.1)

    async def release(execution: execution_pb2.Execution) -> None:
        event = {"specversion": "1.0", "id": execution.metadata.id, "source": "t", "type": "com.example.go"}
        await client.get_workflow_handle(execution.metadata.id).signal(EVENT_SIGNAL, event)

    async def skipped(count: int) -> None:
        """Temporal has dropped ``count`` fires for overlap (it takes triggers in on its own time)."""
        deadline = time.monotonic() + 30
        while (await handle.describe()).info.num_actions_skipped_overlap < count:
            assert time.monotonic() < deadline, "Temporal skipped no fire"
            await asyncio.sleep(0.1)

    try:
        async with workflow_worker(client, queue, local):
            await asyncio.sleep(0.3)
            if schedules._pending is not None:
                await schedules._pending
            described = await handle.describe()
            assert described.schedule.policy.overlap == policy
            assert described.schedule.policy.catchup_window == datetime.timedelta(minutes=5)
            # A fire's workflow id ends with its time in whole seconds: one trigger a second.
            await handle.trigger()
            (first,) = await runs(1)
            await asyncio.sleep(1.1)
            await handle.trigger()  # while the first run still runs
            if overlap == "bufferOne":
                await asyncio.sleep(1.1)
                await handle.trigger()  # a third: only one is buffered
            if overlap != "allowAll":
                await skipped(1)  # skip: the second; bufferOne: the third (the second is buffered)
                await asyncio.sleep(0.5)
            while_running = await _scheduled_runs(local, "yearly")
            if overlap == "allowAll":
                both = await runs(2)
                assert len(both) == 2  # both run at once
                for execution in both:
                    await release(execution)
                done = await runs(2, execution_pb2.PHASE_SUCCEEDED)
            else:
                assert len(while_running) == 1  # nothing else started meanwhile
                await release(first)
                await runs(1, execution_pb2.PHASE_SUCCEEDED)
                if overlap == "bufferOne":
                    later = await runs(1)  # the buffered fire starts once the first run ended
                    (second,) = [e for e in later if e.metadata.id != first.metadata.id]
                    await release(second)
                    await runs(2, execution_pb2.PHASE_SUCCEEDED)
                await asyncio.sleep(1.0)  # nothing more starts
                done = await _scheduled_runs(local, "yearly")
            expected = {"skip": 1, "bufferOne": 2, "allowAll": 2}[overlap]
            assert len(done) == expected, [e.metadata.labels for e in done]
            assert all(e.status.phase == execution_pb2.PHASE_SUCCEEDED for e in done)
            info = (await handle.describe()).info
            assert info.num_actions_skipped_overlap == {"skip": 1, "bufferOne": 1, "allowAll": 0}[overlap]
            assert info.num_actions == expected
            if overlap == "skip":
                # A run cancelled through Stigmer ends its fire too: the schedule fires again.
                await asyncio.sleep(1.1)
                await handle.trigger()
                await runs(1)
                seen = {e.metadata.id for e in done}
                (third,) = [e for e in await _scheduled_runs(local, "yearly") if e.metadata.id not in seen]
                await served.cancel_execution(svc.CancelExecutionRequest(id=third.metadata.id))
                await runs(1, execution_pb2.PHASE_CANCELLED)
                deadline = time.monotonic() + 30
                while (await handle.describe()).info.running_actions:
                    assert time.monotonic() < deadline, "the fire of a cancelled run did not end"
                    await asyncio.sleep(0.1)
    finally:
        stop.set()
        await firing
        await local.close()
