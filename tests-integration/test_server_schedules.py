"""Schedules fired by `stigmer server` (issue 21): two server processes on one PostgreSQL database,
one of them restarted meanwhile, fire each slot of an every-second schedule exactly once; the runs
carry the schedule's name and slot as labels and run to the end. Slots are one second apart: no
test waits for wall-clock minutes."""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.core import SCHEDULE_LABEL, SLOT_LABEL, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.server import ServerProcess, TokenStore
from stigmer.testing import postgres_schema

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

MASTER_KEY = base64.b64encode(b"s" * 32).decode()
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


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


def server(database: str, home: Path) -> ServerProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(STIGMER_MASTER_KEY=MASTER_KEY, STIGMER_SCHEDULER_TICK="0.2")
    return ServerProcess(home=home, database_url=database, env=env)


async def apply(client: CloudBackend, enabled: bool) -> None:
    text = MANIFESTS.replace("ENABLED", "true" if enabled else "false")
    for loaded in parse_manifest(text, "heartbeat.yaml"):
        await client.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def test_two_servers_and_a_restart_fire_each_slot_once(database: str, tmp_path: Path) -> None:
    a, b = server(database, tmp_path / "a"), server(database, tmp_path / "b")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.start(), [a, b]))
    store = TokenStore(database_url=database)
    token = store.create("user", "scheduler-test").token
    store.close()
    client = CloudBackend(b.endpoint, token=token)
    try:
        await apply(client, enabled=True)
        await asyncio.sleep(2.5)
        await asyncio.to_thread(a.stop)  # a restart of one server while the other fires on
        await asyncio.sleep(1.5)
        await asyncio.to_thread(a.start)
        await asyncio.sleep(2.5)
        await apply(client, enabled=False)  # paused: no more fires
        time.sleep(0.5)
        page = await client.list_executions(
            svc.ListExecutionsRequest(label_selector=f"{SCHEDULE_LABEL}=heartbeat", page_size=500)
        )
        slots = collections.Counter(e.metadata.labels[SLOT_LABEL] for e in page.executions)
        assert len(slots) >= 5, slots
        assert set(slots.values()) == {1}, [s for s, n in slots.items() if n > 1]
        # every run is carried out (by whichever server fired it)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = await client.list_executions(
                svc.ListExecutionsRequest(label_selector=f"{SCHEDULE_LABEL}=heartbeat", page_size=500)
            )
            if all(e.status.phase == execution_pb2.PHASE_SUCCEEDED for e in page.executions):
                break
            await asyncio.sleep(0.5)
        assert {e.status.phase for e in page.executions} == {execution_pb2.PHASE_SUCCEEDED}
        after = len(page.executions)
        await asyncio.sleep(1.5)
        again = await client.list_executions(
            svc.ListExecutionsRequest(label_selector=f"{SCHEDULE_LABEL}=heartbeat", page_size=500)
        )
        assert len(again.executions) == after  # paused
    finally:
        await client.close()
        a.stop()
        b.stop()
