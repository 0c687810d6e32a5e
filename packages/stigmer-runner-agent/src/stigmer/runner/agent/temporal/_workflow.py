"""``StigmerAgent``: one agent execution as a Temporal workflow (id = execution id).

The workflow runs the pydantic-ai agent loop itself, with a model and a toolset that stand in for
the real ones (``_remote``): each model request is a ``stigmer.agent.model`` activity and
each tool call a ``stigmer.agent.tool`` activity, so the history records every response and every
tool result. A worker that dies mid-run is replaced by one that replays the history — finished
requests and tool calls come back from it and are not made again — and continues with the step
that was in flight (retried once the heartbeat times out).

``stigmer.agent.start`` lists what the loop needs (prompt, session history, instructions, tool
definitions); ``.finish`` / ``.fail`` write the end. When a tool needs approval the workflow
writes WAITING_APPROVAL (``stigmer.agent.approval``), waits for the ``stigmer.approval`` signal the
server sends on ``SubmitApproval``, reads the decision (``stigmer.agent.decision``) and continues
the loop with it. Streamed text reaches the Backend from the model activity; the history holds
only each request's final response. Nothing in the workflow's inputs, results or history holds a
secret: activities fetch them just in time and scrub what they return.

The workflow is not sandboxed: its code is the deterministic agent loop (pydantic-ai) over JSON
that comes from activities; it does no I/O and reads no clock or randomness that decides a step.
Workflows started by earlier versions (no ``per-activity`` patch marker in their history) keep
running the whole agent in one ``stigmer.agent.run`` activity.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

__all__ = ["AGENT_WORKFLOW", "APPROVAL_SIGNAL", "PER_ACTIVITY_PATCH", "StigmerAgent"]

AGENT_WORKFLOW = "stigmer.agent"
APPROVAL_SIGNAL = "stigmer.approval"
PER_ACTIVITY_PATCH = "stigmer.agent.per-activity"

_STOPPED = "RunStopped"
_SHORT = datetime.timedelta(minutes=5)
_BEAT = datetime.timedelta(seconds=10)
# Model requests: transient failures (5xx, timeouts, a lost worker) are retried.
_MODEL_RETRY = RetryPolicy(
    initial_interval=datetime.timedelta(seconds=1),
    maximum_interval=datetime.timedelta(seconds=30),
    maximum_attempts=5,
)
# Tool calls: only a lost worker's call (heartbeat timeout) is made again; a tool that raised is not.
_TOOL_RETRY = RetryPolicy(initial_interval=datetime.timedelta(seconds=1), maximum_attempts=3)
_STEP_RETRY = RetryPolicy(initial_interval=datetime.timedelta(seconds=1), maximum_attempts=5)


class _Stopped(Exception):
    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


class _Cancelled(Exception):
    """The workflow was cancelled: raised where the loop waits, as a plain exception."""


@workflow.defn(name=AGENT_WORKFLOW, sandboxed=False)
class StigmerAgent:
    def __init__(self) -> None:
        self._answers = 0
        self._seen = 0
        self._id = ""
        self._cancelling = False
        self._in_flight: set[Any] = set()  # handles of the activities the loop awaits

    @workflow.signal(name=APPROVAL_SIGNAL)
    def approval(self, _payload: Any = None) -> None:
        self._answers += 1

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        self._id = str(args["executionId"])
        if not workflow.patched(PER_ACTIVITY_PATCH):
            return await self._single_activity()
        # The loop runs pydantic-ai, whose anyio cancel scopes would spin on a Temporal
        # cancellation delivered into them (the activity await absorbs it, anyio delivers it
        # again, and the workflow never yields). So the loop runs in its own task, shielded; a
        # cancellation of the workflow cancels the activity it awaits, which the loop sees as an
        # ordinary exception (`_Cancelled`).
        loop = asyncio.create_task(self._guarded_loop())
        try:
            return await asyncio.shield(loop)
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is None:
                raise  # not a cancellation of the workflow (e.g. evicted from the worker's cache)
        self._cancelling = True
        for handle in list(self._in_flight):
            handle.cancel()
        await loop
        # Cancelled through the Backend (already CANCELLED there), or as the child workflow of a
        # cancelled workflow (`call: agent`): then the execution is marked CANCELLED here.
        await self._act("stigmer.agent.cancel", summary="cancelled")
        raise asyncio.CancelledError

    async def _guarded_loop(self) -> dict[str, Any]:
        try:
            return await self._loop()
        except _Stopped as stopped:
            return {"phase": stopped.phase}
        except _Cancelled:
            return {"phase": "PHASE_CANCELLED"}

    # -- activities ------------------------------------------------------------------------------
    async def _act(
        self,
        name: str,
        *args: Any,
        timeout: datetime.timedelta = _SHORT,
        retry: RetryPolicy = _STEP_RETRY,
        summary: str | None = None,
    ) -> Any:
        if self._cancelling and name != "stigmer.agent.cancel":
            raise _Cancelled
        handle = workflow.start_activity(
            name,
            args=[self._id, *args],
            start_to_close_timeout=timeout,
            heartbeat_timeout=_BEAT,
            retry_policy=retry,
            summary=summary,
        )
        self._in_flight.add(handle)
        try:
            return await handle
        except asyncio.CancelledError:
            if self._cancelling:
                raise _Cancelled from None
            raise
        except ActivityError as exc:
            if self._cancelling and is_cancelled_exception(exc):
                raise _Cancelled from None  # the workflow is cancelled, not the step failed
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == _STOPPED:
                raise _Stopped(str(cause.details[0]) if cause.details else "PHASE_CANCELLED") from None
            raise
        finally:
            self._in_flight.discard(handle)

    async def _model(self, request: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._act(
            "stigmer.agent.model",
            request,
            timeout=datetime.timedelta(minutes=30),
            retry=_MODEL_RETRY,
            summary="model request",
        )
        return answer

    async def _tool(self, call: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._act(
            "stigmer.agent.tool",
            call,
            timeout=datetime.timedelta(hours=2),
            retry=_TOOL_RETRY,
            summary=f"tool {call.get('name', '')}",
        )
        return result

    # -- the loop --------------------------------------------------------------------------------
    async def _loop(self) -> dict[str, Any]:
        from pydantic_ai import (
            Agent,
            DeferredToolRequests,
            DeferredToolResults,
            ToolApproved,
            ToolDenied,
        )
        from pydantic_ai.usage import RunUsage

        from ._remote import ActivityModel, ActivityToolset, dump_messages, load_messages

        try:
            plan: dict[str, Any] = await self._act("stigmer.agent.start", summary="start")
        except ActivityError as exc:
            return await self._failed(exc)
        approval: dict[str, str] = dict(plan.get("approval") or {})
        toolset: Any = ActivityToolset(list(plan.get("tools") or []), self._tool)
        if approval:
            toolset = toolset.approval_required(lambda ctx, tool, args: tool.name in approval)
        model = ActivityModel(str(plan["model"]["name"]), str(plan["model"]["system"]), self._model)
        agent: Agent[None, Any] = Agent(
            model,
            name=str(plan.get("agent") or "agent"),
            instructions=str(plan.get("instructions") or "") or None,
            toolsets=[toolset],
            output_type=[str, DeferredToolRequests],
        )
        prompt: str | None = str(plan["prompt"])
        history = load_messages(list(plan.get("history") or []))
        deferred: DeferredToolResults | None = None
        total = RunUsage()
        try:
            while True:
                with Agent.using_sleep(workflow.sleep):
                    result = await agent.run(
                        prompt, message_history=history or None, deferred_tool_results=deferred
                    )
                total.incr(result.usage)
                usage = {
                    "input_tokens": total.input_tokens or 0,
                    "output_tokens": total.output_tokens or 0,
                    "requests": total.requests or 0,
                    "tool_calls": total.tool_calls or 0,
                }
                output = result.output
                if not isinstance(output, DeferredToolRequests):
                    phase: str = await self._act(
                        "stigmer.agent.finish",
                        {
                            "output": str(output),
                            "usage": usage,
                            "messages": dump_messages(result.all_messages()),
                        },
                        summary="finish",
                    )
                    return {"phase": phase}
                if output.calls:
                    names = ", ".join(c.tool_name for c in output.calls)
                    raise ValueError(f"tools {names} asked to be run externally, which agents cannot do")
                messages = result.all_messages()
                pending: list[dict[str, Any]] = [
                    {
                        "id": part.tool_call_id,
                        "tool": part.tool_name,
                        "args": part.args_as_dict(),
                        "server": approval.get(part.tool_name, ""),
                    }
                    for part in output.approvals
                ]
                decisions: dict[str, Any] = {}
                for call in pending:
                    decision = await self._ask(call, pending, usage, dump_messages(messages))
                    if decision["approved"]:
                        decisions[call["id"]] = ToolApproved()
                    else:
                        reason = f": {decision['reason']}" if decision.get("reason") else ""
                        decisions[call["id"]] = ToolDenied(f"The user refused this tool call{reason}")
                prompt, history = None, messages
                deferred = DeferredToolResults(approvals=decisions)
        except ActivityError as exc:
            return await self._failed(exc)
        except (_Stopped, _Cancelled):
            raise
        except Exception as exc:  # the loop itself gave up (e.g. a tool's retries ran out)
            return await self._failed(exc)

    async def _ask(
        self, call: dict[str, Any], pending: list[dict[str, Any]], usage: dict[str, Any], messages: list[Any]
    ) -> dict[str, Any]:
        """Pause for a human's decision on ``call``: WAITING_APPROVAL, the signal, the decision."""
        self._seen = self._answers
        sequence: int = await self._act(
            "stigmer.agent.approval",
            {"call": call, "pending": pending, "usage": usage, "messages": messages},
            summary=f"approval of {call['tool']}",
        )
        while True:
            await workflow.wait_condition(lambda: self._answers > self._seen or self._cancelling)
            if self._cancelling:
                raise _Cancelled
            self._seen = self._answers
            decision: dict[str, Any] | None = await self._act(
                "stigmer.agent.decision",
                {"callId": call["id"], "tool": call["tool"], "sequence": sequence},
                summary="decision",
            )
            if decision is not None:
                return decision

    async def _failed(self, exc: BaseException) -> dict[str, Any]:
        """Write FAILED with the problem an activity reported (or the loop's own error)."""
        cause = exc.cause if isinstance(exc, ActivityError) else None
        if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
            problem: dict[str, Any] = dict(cause.details[0])
        else:
            from google.protobuf import json_format

            from .._problems import problem_from_exception

            error = cause if cause is not None else exc
            problem = json_format.MessageToDict(problem_from_exception(error))
        phase: str = await self._act("stigmer.agent.fail", problem, summary="fail")
        return {"phase": phase}

    # -- workflows of earlier versions -----------------------------------------------------------
    async def _single_activity(self) -> dict[str, Any]:
        while True:
            self._seen = self._answers
            phase = await workflow.execute_activity(
                "stigmer.agent.run",
                self._id,
                start_to_close_timeout=datetime.timedelta(hours=2),
                heartbeat_timeout=_BEAT,
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=datetime.timedelta(seconds=1)),
            )
            if phase != "PHASE_WAITING_APPROVAL":
                return {"phase": phase}
            await workflow.wait_condition(lambda: self._answers > self._seen)
