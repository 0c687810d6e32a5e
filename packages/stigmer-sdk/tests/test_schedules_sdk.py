"""Schedules through the SDK in a local context (issue 21): the foreground scheduler and run_due
run what they fire in this process; the clock is injected."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stigmer.core import FailedPrecondition, Timetable
from stigmer.sdk import AsyncStigmer, Fired, Stigmer

MANIFESTS = [
    {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "tick"},
        "spec": {
            "document": {"dsl": "1.0.0", "namespace": "t", "name": "tick", "version": "1.0.0"},
            "do": [{"hi": {"set": {"n": "${ .n }"}}}],
        },
    },
    {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Schedule",
        "metadata": {"name": "minutely"},
        "spec": {"every": "1m", "target": {"kind": "Workflow", "name": "tick"}, "input": {"n": 7}},
    },
]


def first_slot(client: Stigmer) -> datetime:
    created = client.get("schedule", "minutely").metadata.created_at.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]
    return Timetable(every=timedelta(minutes=1)).next_slots(created, 1)[0]


async def test_the_foreground_scheduler_runs_what_it_fires_here(home: Path) -> None:
    async with AsyncStigmer(home=home) as client:
        await client.apply(*MANIFESTS)
        schedule = await client.get("schedule", "minutely")
        created = schedule.metadata.created_at.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]
        slot = Timetable(every=timedelta(minutes=1)).next_slots(created, 1)[0]
        stop = asyncio.Event()
        fired: list[Fired] = []

        def seen(fire: Fired) -> None:
            fired.append(fire)
            stop.set()

        await asyncio.wait_for(
            client.run_scheduler(stop, tick=0.05, clock=lambda: slot + timedelta(seconds=2), on_fire=seen), 30
        )
        assert [(f.schedule, f.slot) for f in fired] == [("minutely", slot)]
        done = await (await client.execution(fired[0].execution_id, in_process=False)).wait(30)
        assert done.status.phase == 4  # SUCCEEDED: it ran in this process
        info = await client.schedule_info("minutely", now=slot)
        assert info.next_fires[0] == slot + timedelta(minutes=1)
        assert info.last_runs[0]["executionId"] == fired[0].execution_id


def test_run_due_trigger_backfill_and_pause_in_the_sync_client(client: Stigmer) -> None:
    client.apply(*MANIFESTS)
    slot = first_slot(client)
    [fire] = client.run_due(now=slot + timedelta(seconds=1))
    assert fire.outcome == "fired"
    assert client.get_execution(fire.execution_id).status.phase == 4
    assert [f.outcome for f in client.run_due(now=slot + timedelta(seconds=1))] == ["already"]
    client.pause_schedule("minutely")
    assert client.run_due(now=slot + timedelta(minutes=1, seconds=1)) == []
    assert client.schedule_info("minutely").next_fires == ()
    assert client.trigger_schedule("minutely").wait(30).status.phase == 4
    client.resume_schedule("minutely")
    back = client.backfill_schedule("minutely", slot + timedelta(minutes=10), slot + timedelta(minutes=12))
    assert [f.outcome for f in back] == ["fired", "fired"]
    again = client.backfill_schedule("minutely", slot + timedelta(minutes=10), slot + timedelta(minutes=12))
    assert [f.outcome for f in again] == ["already", "already"]


def test_run_due_is_for_a_local_context_only() -> None:
    from stigmer.sdk._schedules import _local

    class Remote:  # any backend that is not the local store
        pass

    class Client:
        backend = Remote()

    with pytest.raises(FailedPrecondition, match="a server fires its schedules itself"):
        _local(Client(), "run-due")  # type: ignore[arg-type]
