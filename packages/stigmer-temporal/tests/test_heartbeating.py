"""``heartbeating``: beats while a long body runs, none for a body that ends within the interval
(an immediate first heartbeat delayed the completion of every short activity)."""

from __future__ import annotations

import asyncio
from typing import Any

from stigmer.temporal import heartbeating
from temporalio import activity
from temporalio.testing import ActivityEnvironment


async def _beats(body_seconds: float, every: float) -> list[Any]:
    @activity.defn
    async def work() -> str:
        async with heartbeating(every=every):
            await asyncio.sleep(body_seconds)
        return "done"

    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    assert await env.run(work) == "done"
    return beats


async def test_a_short_body_sends_no_heartbeat() -> None:
    assert await _beats(0.05, every=1.0) == []


async def test_a_long_body_heartbeats_every_interval() -> None:
    beats = await _beats(0.75, every=0.2)
    assert 2 <= len(beats) <= 4
