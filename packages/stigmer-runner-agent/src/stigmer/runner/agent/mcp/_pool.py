"""MCP servers kept running between the tool calls of one agent execution on a Temporal worker.

On Temporal every tool call is its own activity, which builds the agent from its definition
again. Starting the MCP server for each call would cost a process start (or a connection) per
call, so a worker keeps each execution's MCP toolsets open: the tool-listing step and the calls
that follow on the same worker share one server. They are closed when the execution ends on this
worker, after ``idle`` seconds without a call, or after a call that failed (the next call starts a
fresh one). Each toolset is entered and exited by a task of its own, as the MCP client's anyio
scopes require, whichever activity first needed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["IDLE_SECONDS", "McpPool"]

logger = logging.getLogger(__name__)

#: How long an execution's MCP server stays up without a call.
IDLE_SECONDS = 120.0


class _Held:
    """One running toolset, entered by its own task until ``close``."""

    def __init__(self, toolset: Any) -> None:
        self.toolset = toolset
        self.users = 0
        self.retired = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            try:
                async with self.toolset:
                    ready.set_result(None)
                    await self._stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError):
                    logger.debug("closing an MCP toolset failed", exc_info=True)

        self._task = asyncio.create_task(hold(), name="stigmer-mcp-held")
        try:
            await ready
        except BaseException:
            self._stop.set()
            raise

    def idle_after(self, seconds: float, on_idle: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, on_idle)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task


class McpPool:
    """Running MCP toolsets by (execution id, toolset key)."""

    def __init__(self, idle: float = IDLE_SECONDS) -> None:
        self.idle = idle
        self._held: dict[tuple[str, str], _Held] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def running(self, execution_id: str) -> list[str]:
        """Keys of the toolsets held open for ``execution_id``."""
        return sorted(key for eid, key in self._held if eid == execution_id)

    @contextlib.asynccontextmanager
    async def use(self, execution_id: str, key: str, fresh: Any) -> AsyncIterator[Any]:
        """The running toolset for ``key`` (``fresh``, entered now, if none runs yet). A call that
        raises retires it, so the next one starts over."""
        slot = (execution_id, key)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            held = self._held.get(slot)
            if held is None:
                held = _Held(fresh)
                await held.open()
                self._held[slot] = held
            held.users += 1
        failed = False
        try:
            yield held.toolset
        except BaseException:
            failed = True
            raise
        finally:
            held.users -= 1
            if failed:
                self._retire(slot, held)
            if held.retired:
                if not held.users:
                    await held.close()
            else:
                held.idle_after(self.idle, lambda: self._expire(slot, held))

    def _retire(self, slot: tuple[str, str], held: _Held) -> None:
        """No new call gets ``held``; it closes when its last call is done."""
        held.retired = True
        if self._held.get(slot) is held:
            del self._held[slot]
            self._locks.pop(slot, None)

    def _expire(self, slot: tuple[str, str], held: _Held) -> None:
        if held.users or held.retired:
            return
        self._retire(slot, held)
        task = asyncio.get_running_loop().create_task(held.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, execution_id: str) -> None:
        """Stop the toolsets of ``execution_id`` (it ended on this worker)."""
        for slot, held in [(s, h) for s, h in self._held.items() if s[0] == execution_id]:
            self._retire(slot, held)
            if not held.users:
                await held.close()

    async def close_all(self) -> None:
        for slot, held in list(self._held.items()):
            self._retire(slot, held)
            if not held.users:
                await held.close()
