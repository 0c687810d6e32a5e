"""``StigmerAgent``: one agent execution as a Temporal workflow (id = execution id).

The workflow runs the agent loop (``.._loop``, the same loop as a Lite run) with ``TemporalHost``
(``_host``): the pydantic-ai loop runs here, with a model and a toolset that stand in for the real
ones (``_remote``): each model request is a ``stigmer.agent.model`` activity and each tool call a
``stigmer.agent.tool`` activity, so the history records every response and every tool result. A
worker that dies mid-run is replaced by one that replays the history — finished requests and tool
calls come back from it and are not made again — and continues with the step that was in flight
(retried once the heartbeat times out).

``stigmer.agent.start`` lists what the loop needs (prompt, session history, instructions, tool
definitions; for a retry, the conversation through the old run's last completed turn and the calls
it paused on, asked for again: the failed turn starts over, patch ``stigmer.agent.retry-from-turn``);
``.finish`` / ``.fail`` write the end. When a tool needs approval the workflow
writes WAITING_APPROVAL (``stigmer.agent.approval``), waits for the ``stigmer.approval`` signal the
server sends on ``SubmitApproval``, reads the decision (``stigmer.agent.decision``) and continues
the loop with it. Streamed text reaches the Backend from the model activity; the history holds
only each request's final response. Nothing in the workflow's inputs, results or history holds a
secret: activities fetch them just in time and scrub what they return.

The workflow is not sandboxed: its code is the deterministic agent loop (pydantic-ai) over JSON
that comes from activities; it does no I/O and reads no clock or randomness that decides a step.
Workflows started by earlier versions (no ``per-activity`` patch marker in their history) keep
running the whole agent in one ``stigmer.agent.run`` activity. The workflow's and activities'
names, and the order of the commands it issues, are what recorded histories replay by: a change to
either goes behind ``workflow.patched`` (``tests/histories`` holds histories to replay).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from stigmer.temporal._failure import FAILED_PATCH, run_failed
from temporalio import workflow
from temporalio.common import RetryPolicy

from .._loop import run_agent_loop
from ._host import BEAT, TemporalHost

__all__ = ["AGENT_WORKFLOW", "APPROVAL_SIGNAL", "PER_ACTIVITY_PATCH", "StigmerAgent"]

AGENT_WORKFLOW = "stigmer.agent"
APPROVAL_SIGNAL = "stigmer.approval"
PER_ACTIVITY_PATCH = "stigmer.agent.per-activity"


@workflow.defn(name=AGENT_WORKFLOW, sandboxed=False)
class StigmerAgent:
    def __init__(self) -> None:
        self._host = TemporalHost()

    @workflow.signal(name=APPROVAL_SIGNAL)
    def approval(self, _payload: Any = None) -> None:
        self._host.answers += 1

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        self._host.execution_id = str(args["executionId"])
        if not workflow.patched(PER_ACTIVITY_PATCH):
            return await self._single_activity()
        # The loop runs pydantic-ai, whose anyio cancel scopes would spin on a Temporal
        # cancellation delivered into them (the activity await absorbs it, anyio delivers it
        # again, and the workflow never yields). So the loop runs in its own task, shielded; a
        # cancellation of the workflow cancels the activity it awaits, which the loop sees as an
        # ordinary exception (it stops the loop).
        loop = asyncio.create_task(run_agent_loop(self._host))
        try:
            result = await asyncio.shield(loop)
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is None:
                raise  # not a cancellation of the workflow (e.g. evicted from the worker's cache)
        else:
            # A failed run (FAILED already written to the Backend) fails the workflow too.
            if result.get("phase") == "PHASE_FAILED" and workflow.patched(FAILED_PATCH):
                run_failed(self._host.execution_id, self._host.problem)
            return result
        self._host.cancel()
        await loop
        # Cancelled through the Backend (already CANCELLED there), or as the child workflow of a
        # cancelled workflow (`call: agent`): then the execution is marked CANCELLED here.
        await self._host.act("stigmer.agent.cancel", summary="cancelled")
        raise asyncio.CancelledError

    # -- workflows of earlier versions -----------------------------------------------------------
    async def _single_activity(self) -> dict[str, Any]:
        host = self._host
        while True:
            seen = host.answers
            phase = await workflow.execute_activity(
                "stigmer.agent.run",
                host.execution_id,
                start_to_close_timeout=datetime.timedelta(hours=2),
                heartbeat_timeout=BEAT,
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=datetime.timedelta(seconds=1)),
            )
            if phase != "PHASE_WAITING_APPROVAL":
                return {"phase": phase}
            await workflow.wait_condition(lambda: host.answers > seen)  # noqa: B023
