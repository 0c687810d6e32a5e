"""The activity of an agent execution on Temporal: one run of :class:`AgentRunner` per call.

The run reports through the Backend as in Lite mode, saves its conversation after every tool
result, and resumes from that checkpoint when Temporal retries the activity on another worker
(a worker was lost). Secrets are fetched inside the activity with ``GetExecutionContext``; the
workflow only ever sees the execution id and the resulting phase.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from stigmer.core import Backend
from stigmer.proto.v1 import execution_pb2
from temporalio import activity

from ._runner import AgentRunner

__all__ = ["AgentActivities"]


class AgentActivities:
    def __init__(self, backend: Backend, runner: AgentRunner | None = None) -> None:
        self.backend = backend
        self.runner = runner if runner is not None else AgentRunner()

    @activity.defn(name="stigmer.agent.run")
    async def run(self, execution_id: str) -> str:
        """Run (or resume) the agent execution; the phase it ended in (e.g. WAITING_APPROVAL)."""

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(2.0)

        heart = asyncio.create_task(beat())
        try:
            finished = await self.runner.execute(self.backend, execution_id)
        finally:
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
        return execution_pb2.Phase.Name(finished.status.phase)

    def all(self) -> list[Any]:
        return [self.run]
