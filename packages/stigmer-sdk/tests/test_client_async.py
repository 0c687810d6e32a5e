"""``AsyncStigmer`` does the same as ``Stigmer``; the sync client also works inside a running loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stigmer.sdk import AsyncStigmer, ExecutionFailed, Raise, Set, Stigmer, Workflow

HELLO = Workflow("hello", namespace="t", do={"greet": Set({"greeting": '${ "Hello, " + .name }'})})


async def test_async_client_applies_runs_and_streams(home: Path) -> None:
    async with AsyncStigmer(home=home) as stigmer:
        assert stigmer.local
        [applied] = await stigmer.apply(HELLO)
        assert applied.action == "created"
        run = await stigmer.run("hello", input={"name": "async"})
        seen = [event async for event in run]
        assert seen and seen[-1].type == "phase"
        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        assert await run.result() == {"greeting": "Hello, async"}
        names = [w.metadata.name for w in await stigmer.list("workflow")]  # type: ignore[attr-defined]
        assert names == ["hello"]


async def test_async_runs_execute_concurrently(home: Path) -> None:
    async with AsyncStigmer(home=home) as stigmer:
        await stigmer.apply(HELLO)
        runs = [await stigmer.run("hello", input={"name": str(i)}) for i in range(5)]
        outputs = await asyncio.gather(*(r.result(timeout=60) for r in runs))
        assert outputs == [{"greeting": f"Hello, {i}"} for i in range(5)]
        assert len({r.id for r in runs}) == 5


async def test_async_failure_raises_the_execution_error(home: Path) -> None:
    async with AsyncStigmer(home=home) as stigmer:
        await stigmer.apply(Workflow("bad", namespace="t", do={"x": Raise(type="https://e/x", status=400)}))
        run = await stigmer.run("bad")
        with pytest.raises(ExecutionFailed) as info:
            await run.result()
        assert info.value.status == 400 and info.value.instance == "/do/0/x"


async def test_the_sync_client_works_inside_a_running_event_loop(home: Path) -> None:
    assert asyncio.get_running_loop().is_running()
    with Stigmer(home=home) as stigmer:  # its own loop thread: no "loop already running" errors
        stigmer.apply(HELLO)
        run = stigmer.run("hello", input={"name": "nested"})
        assert run.result(timeout=30) == {"greeting": "Hello, nested"}
        assert [e.type for e in run.events(0)][-1] == "phase"


async def test_follow_passes_every_event_on_and_start_false_leaves_the_run_for_later(home: Path) -> None:
    """``follow`` (what ``stigmer run`` shows) and ``run(start=False)`` + ``follow(start=True)``
    (what ``stigmer run --detach`` and ``stigmer execution resume`` do)."""
    async with AsyncStigmer(home=home) as stigmer:
        await stigmer.apply(HELLO)
        run = await stigmer.run("hello", kind="wf", input={"name": "follow"})
        seen: list[str] = []
        final = await run.follow(lambda ev: seen.append(ev.type))
        assert run.phase == "SUCCEEDED" and final.status.last_sequence == run.execution.status.last_sequence
        assert "task.completed" in seen and seen[-1] == "phase"

        later = await stigmer.run("hello", input={"name": "later"}, start=False)
        assert later.phase == "PENDING" and later.in_process
        again = await stigmer.execution(later.id)
        await again.follow(start=True)
        assert again.output == {"greeting": "Hello, later"}
