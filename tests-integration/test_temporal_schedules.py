"""Stigmer Schedules as Temporal Schedules (issue 21), on a real Temporal dev server: one Temporal
Schedule per Stigmer Schedule, kept in step on apply, pause and delete; its fires start runs
through the dispatcher, each slot once."""

from __future__ import annotations

import asyncio
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


class Started:
    def __init__(self) -> None:
        self.executions: list[execution_pb2.Execution] = []

    def start(self, execution: execution_pb2.Execution) -> None:
        self.executions.append(execution)


async def test_a_temporal_schedule_is_kept_in_step_and_fires_each_slot_once(
    tmp_path: Path, temporal_server: TemporalServer
) -> None:
    local = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    served, dispatcher = temporal_dispatch(local, temporal_server.address)
    started = Started()
    dispatcher.start = started.start  # type: ignore[method-assign]  # record instead of starting runs
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
        deadline = time.monotonic() + 30
        while len(started.executions) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert len(started.executions) >= 2
        slots = [e.metadata.labels["stigmer.ai/fire-time"] for e in started.executions]
        assert len(slots) == len(set(slots))
        assert {e.metadata.labels[SCHEDULE_LABEL] for e in started.executions} == {"heartbeat"}

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
