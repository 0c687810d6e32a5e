"""``Scheduler``: fires the due slots of the Schedules in a local store, again and again, and hands
each execution it creates to ``start`` (a server's dispatcher, or Lite's in-process runner).

Each slot fires once however many schedulers share the database (see ``tables._schedules``); the
clock is injected so tests never wait for wall-clock minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stigmer.backend.local._backend import LocalBackend
    from stigmer.backend.local.tables._schedules import Fire
    from stigmer.proto.v1 import execution_pb2

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """``run_once`` fires what is due now; ``run`` does it every ``tick`` seconds until ``stop``."""

    def __init__(
        self,
        backend: LocalBackend,
        start: Callable[[execution_pb2.Execution], Awaitable[Any] | Any] | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        tick: float = 1.0,
        only: Callable[[Any], bool] | None = None,
    ) -> None:
        self.backend = backend
        self.start = start
        self.clock = clock
        self.tick = tick
        self.only = only  # the schedules it fires (others are fired elsewhere: Temporal)

    async def run_once(self, name: str = "") -> list[Fire]:
        fires = await self.backend.fire_due(self.clock(), name, only=self.only)
        for fire in fires:
            if fire.outcome != "already":
                log.info("schedule %s: slot %s %s", fire.schedule, fire.slot.isoformat(), fire.outcome)
            if fire.execution is not None and self.start is not None:
                started = self.start(fire.execution)
                if inspect.isawaitable(started):
                    await started
        return fires

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a bad tick (database briefly away) must not end the scheduler
                log.warning("the scheduler could not fire due schedules", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)
