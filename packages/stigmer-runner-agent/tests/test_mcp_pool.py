"""The pool of running MCP toolsets a Temporal agent worker keeps per execution."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stigmer.runner.agent.mcp import McpPool


class Toolset:
    """Records when, and in which task, it was entered and exited (as an MCP toolset would be)."""

    def __init__(self) -> None:
        self.entered_in: asyncio.Task[Any] | None = None
        self.exited_in: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Toolset:
        self.entered_in = asyncio.current_task()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited_in = asyncio.current_task()

    @property
    def open(self) -> bool:
        return self.entered_in is not None and self.exited_in is None


async def test_calls_of_one_execution_share_a_toolset_until_it_ends() -> None:
    pool = McpPool()
    first, second, other = Toolset(), Toolset(), Toolset()
    async with pool.use("ex-1", "mcp:a", first) as got:
        assert got is first and first.open
    async with pool.use("ex-1", "mcp:a", second) as got:
        assert got is first  # the running one, not the freshly built one
    async with pool.use("ex-2", "mcp:a", other) as got:
        assert got is other  # another execution has its own
    assert second.entered_in is None
    await pool.close("ex-1")
    assert not first.open and first.exited_in is first.entered_in  # by the task that entered it
    assert pool.running("ex-1") == [] and pool.running("ex-2") == ["mcp:a"]
    await pool.close_all()
    assert not other.open


async def test_an_idle_toolset_is_closed_and_the_next_call_starts_another() -> None:
    pool = McpPool(idle=0.05)
    first, second = Toolset(), Toolset()
    async with pool.use("ex-1", "mcp:a", first):
        await asyncio.sleep(0.1)  # in use: not idle
    assert first.open
    await asyncio.sleep(0.2)
    assert not first.open and pool.running("ex-1") == []
    async with pool.use("ex-1", "mcp:a", second) as got:
        assert got is second
    await pool.close_all()


async def test_a_failed_call_retires_its_toolset_once_concurrent_calls_are_done() -> None:
    pool = McpPool()
    first, second = Toolset(), Toolset()
    release = asyncio.Event()

    async def long_call() -> None:
        async with pool.use("ex-1", "mcp:a", first):
            await release.wait()

    other = asyncio.create_task(long_call())
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError):
        async with pool.use("ex-1", "mcp:a", Toolset()):
            raise RuntimeError("the server went away")
    assert first.open  # the other call still uses it
    async with pool.use("ex-1", "mcp:a", second) as got:
        assert got is second  # new calls get a fresh one
    release.set()
    await other
    assert not first.open
    await pool.close_all()
    assert not second.open


async def test_a_toolset_that_cannot_start_is_not_kept() -> None:
    class Broken(Toolset):
        async def __aenter__(self) -> Toolset:
            raise ConnectionError("no such server")

    pool = McpPool()
    with pytest.raises(ConnectionError):
        async with pool.use("ex-1", "mcp:a", Broken()):
            pass
    assert pool.running("ex-1") == []
