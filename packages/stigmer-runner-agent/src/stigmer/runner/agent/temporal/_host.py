"""The Temporal host of the agent loop: workflow code, every effect an activity.

``TemporalHost`` is what the ``stigmer.agent`` workflow hands the loop (``.._loop``): ``begin`` is
the ``stigmer.agent.start`` activity (it marks the execution RUNNING and lists what the loop needs:
prompt, session history, instructions, model and tool definitions); a turn runs pydantic-ai here,
with the model and toolset of ``_remote`` whose requests and calls are ``stigmer.agent.model`` and
``stigmer.agent.tool`` activities; ``decide`` writes WAITING_APPROVAL (``stigmer.agent.approval``),
waits for the ``stigmer.approval`` signal and reads the decision (``stigmer.agent.decision``);
``finish`` / ``fail`` are ``stigmer.agent.finish`` / ``.fail``.

An activity that finds the execution ended elsewhere, or a cancellation of the workflow, stops the
loop (``Stop``) with the phase it has. Nothing here does I/O or reads a clock: it is replayed.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from .._limits import Limits, Spent, turn_limits
from .._loop import Decision, Pause, PendingCall, Start, Stop, Turn

if TYPE_CHECKING:
    from pydantic_ai import Agent, DeferredToolResults
    from pydantic_ai.agent import AgentRunResult
    from pydantic_ai.messages import ModelMessage

__all__ = ["RETRY_PATCH", "STOPPED", "TemporalHost"]

RETRY_PATCH = "stigmer.agent.retry-from-turn"  # a retry's plan continues after the last completed turn
STOPPED = "RunStopped"  # ApplicationError type: the execution ended elsewhere (details: its phase)
SHORT = datetime.timedelta(minutes=5)
BEAT = datetime.timedelta(seconds=10)
# Model requests: transient failures (5xx, timeouts, a lost worker) are retried.
_MODEL_RETRY = RetryPolicy(
    initial_interval=datetime.timedelta(seconds=1),
    maximum_interval=datetime.timedelta(seconds=30),
    maximum_attempts=5,
)
# Tool calls: only a lost worker's call (heartbeat timeout) is made again; a tool that raised is not.
_TOOL_RETRY = RetryPolicy(initial_interval=datetime.timedelta(seconds=1), maximum_attempts=3)
_STEP_RETRY = RetryPolicy(initial_interval=datetime.timedelta(seconds=1), maximum_attempts=5)

Result = dict[str, Any]  # {"phase": "PHASE_..."}, the workflow's result


class _Stopped(Stop):
    """The execution ended elsewhere (an activity found it so)."""

    def __init__(self, phase: str) -> None:
        super().__init__({"phase": phase})


class _Cancelled(Stop):
    """The workflow was cancelled: raised where the loop waits, as a plain exception."""

    def __init__(self) -> None:
        super().__init__({"phase": "PHASE_CANCELLED"})


class TemporalHost:
    """The loop's host in one ``stigmer.agent`` workflow run."""

    def __init__(self) -> None:
        self.execution_id = ""
        self.answers = 0  # approval signals received
        self._seen = 0
        self._cancelling = False
        self._in_flight: set[Any] = set()  # handles of the activities the loop awaits
        self._agent: Agent[None, Any] | None = None
        self._approval: dict[str, str] = {}
        self.problem: dict[str, Any] | None = None  # the error written with FAILED
        self._context: Any = None  # the agent's ContextKeeper, if it has a `context`
        self._request_limit: int | None = None  # None: pydantic-ai's (histories before the limit)

    def cancel(self) -> None:
        """The workflow is cancelled: cancel the activities in flight; the loop stops where it waits."""
        self._cancelling = True
        for handle in list(self._in_flight):
            handle.cancel()

    # -- activities ------------------------------------------------------------------------------
    async def act(
        self,
        name: str,
        *args: Any,
        timeout: datetime.timedelta = SHORT,
        retry: RetryPolicy = _STEP_RETRY,
        summary: str | None = None,
    ) -> Any:
        if self._cancelling and name != "stigmer.agent.cancel":
            raise _Cancelled
        handle = workflow.start_activity(
            name,
            args=[self.execution_id, *args],
            start_to_close_timeout=timeout,
            heartbeat_timeout=BEAT,
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
            if isinstance(cause, ApplicationError) and cause.type == STOPPED:
                raise _Stopped(str(cause.details[0]) if cause.details else "PHASE_CANCELLED") from None
            raise
        finally:
            self._in_flight.discard(handle)

    async def _model(self, request: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self.act(
            "stigmer.agent.model",
            request,
            timeout=datetime.timedelta(minutes=30),
            retry=_MODEL_RETRY,
            summary="model request",
        )
        return answer

    async def _tool(self, call: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.act(
            "stigmer.agent.tool",
            call,
            timeout=datetime.timedelta(hours=2),
            retry=_TOOL_RETRY,
            summary=f"tool {call.get('name', '')}",
        )
        return result

    # -- the host --------------------------------------------------------------------------------
    async def begin(self) -> Start:
        from pydantic_ai import Agent, DeferredToolRequests

        from ._remote import ActivityModel, ActivityToolset, load_messages

        plan: dict[str, Any] = await self.act("stigmer.agent.start", summary="start")
        approval: dict[str, str] = dict(plan.get("approval") or {})
        toolset: Any = ActivityToolset(list(plan.get("tools") or []), self._tool)
        if approval:
            toolset = toolset.approval_required(lambda ctx, tool, args: tool.name in approval)
        model = ActivityModel(str(plan["model"]["name"]), str(plan["model"]["system"]), self._model)
        self._approval = approval
        answer: Any = str
        check = None
        retries: int | None = None
        if plan.get("outputSchema") is not None:
            from .._build import OUTPUT_RETRIES, structured_output

            answer, check = structured_output(dict(plan["outputSchema"]))
            retries = OUTPUT_RETRIES
        limit = plan.get("requestLimit")
        self._request_limit = int(limit) if limit else None
        self._agent = Agent(
            model,
            name=str(plan.get("agent") or "agent"),
            instructions=str(plan.get("instructions") or "") or None,
            toolsets=[toolset],
            output_type=[answer, DeferredToolRequests],
            retries={"output": retries} if retries else None,
        )
        if check is not None:
            self._agent.output_validator(check)
        if plan.get("context"):
            from .._context import ContextKeeper

            self._context = ContextKeeper.of(dict(plan["context"]))
        price = plan.get("price")
        start = Start(
            prompt=str(plan["prompt"]),
            history=load_messages(list(plan.get("history") or [])),
            limits=Limits.combine(plan.get("limits")),
            spent=Spent.of(plan.get("spent")),
            price=(float(price[0]), float(price[1])) if price else None,
        )
        resume = plan.get("resume")
        # A retry of a failed or cancelled run (only its plans have ``resume``): it continues
        # after the old run's last completed turn, whose conversation it keeps; the calls that
        # turn paused on are asked for again.
        if resume is not None and workflow.patched(RETRY_PATCH):
            start.prompt = None
            start.history = load_messages(list(resume.get("messages") or []))
            start.pending = [PendingCall(**dict(c)) for c in resume.get("pending") or []]
        return start

    async def turn(
        self,
        prompt: str | None,
        history: list[ModelMessage],
        deferred: DeferredToolResults | None,
        control: Turn,
    ) -> AgentRunResult[Any]:
        from pydantic_ai import Agent

        assert self._agent is not None, "begin() builds the agent"
        with Agent.using_sleep(workflow.sleep):
            return await self._agent.run(
                prompt,
                message_history=history or None,
                deferred_tool_results=deferred,
                usage=control.usage,
                usage_limits=turn_limits(control.limits, self._request_limit),
                capabilities=[
                    *control.capabilities,
                    *([self._context.capability()] if self._context is not None else []),
                ],
            )

    def server_of(self, tool: str) -> str:
        return self._approval.get(tool, "")

    async def decide(self, pause: Pause) -> Decision:
        """WAITING_APPROVAL for the call (an activity), then the signal, then the decision."""
        from ._remote import dump_messages

        call = pause.call
        self._seen = self.answers
        sequence: int = await self.act(
            "stigmer.agent.approval",
            {
                "call": call.__dict__,
                "pending": [c.__dict__ for c in pause.pending],
                "usage": pause.usage,
                "messages": dump_messages(pause.messages),
            },
            summary=f"approval of {call.tool}",
        )
        while True:
            await workflow.wait_condition(lambda: self.answers > self._seen or self._cancelling)
            if self._cancelling:
                raise _Cancelled
            self._seen = self.answers
            decision: dict[str, Any] | None = await self.act(
                "stigmer.agent.decision",
                {"callId": call.id, "tool": call.tool, "sequence": sequence},
                summary="decision",
            )
            if decision is not None:
                return Decision(approved=bool(decision["approved"]), reason=str(decision.get("reason") or ""))

    async def finish(self, output: Any, usage: dict[str, Any], messages: list[ModelMessage]) -> Result:
        from ._remote import dump_messages

        phase: str = await self.act(
            "stigmer.agent.finish",
            {"output": output, "usage": usage, "messages": dump_messages(messages)},
            summary="finish",
        )
        return {"phase": phase}

    async def fail(self, error: Exception, usage: dict[str, Any] | None = None) -> Result:
        """Write FAILED with the problem an activity reported (or the loop's own error)."""
        cause = error.cause if isinstance(error, ActivityError) else None
        if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
            problem: dict[str, Any] = dict(cause.details[0])
        else:
            from google.protobuf import json_format

            from .._problems import problem_from_exception

            problem = json_format.MessageToDict(problem_from_exception(cause if cause is not None else error))
        self.problem = problem
        args = (problem, usage) if usage else (problem,)
        phase: str = await self.act("stigmer.agent.fail", *args, summary="fail")
        return {"phase": phase}
