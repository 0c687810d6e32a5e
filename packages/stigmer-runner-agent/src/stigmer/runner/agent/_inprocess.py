"""The Lite host of the agent loop: one ``execute`` call runs the loop in this process.

The model and the toolsets are the real ones (MCP servers started for the run), their progress
streamed to the Backend as it happens: text deltas, tool calls and results, and — before each
model request that carries tool results — a checkpoint, so a runner stopped mid-run is continued
from there by the next ``execute`` instead of calling the tools again. A pause for approval writes
WAITING_APPROVAL with a checkpoint and ends the call; after ``SubmitApproval`` the next ``execute``
reads the decisions recorded since (``approval.resolved`` events) and continues. The run is
stopped as soon as the execution is cancelled through the Backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from stigmer.core import Backend, handover_requested, is_terminal
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent._build import AgentBuild
from stigmer.runner.agent._checkpoint import (
    Checkpoint,
    dump_messages,
    load_messages,
    read_decisions,
    session_history,
)
from stigmer.runner.agent._events import RunStopped, clip, jsonable
from stigmer.runner.agent._execution import OpenExecution, mcp_start_error, usage_message
from stigmer.runner.agent._limits import Spent
from stigmer.runner.agent._loop import Decision, Pause, PendingCall, Start, Stop, Turn, run_agent_loop
from stigmer.runner.agent._problems import problem_from_exception

if TYPE_CHECKING:
    from pydantic_ai import DeferredToolResults, RunContext
    from pydantic_ai.agent import AgentRunResult
    from pydantic_ai.messages import AgentStreamEvent, ModelMessage

__all__ = ["InProcessHost"]

log = logging.getLogger(__name__)

Result = execution_pb2.Execution


class InProcessHost:
    """Runs (or resumes) one agent execution in this process; ``execute`` returns it as it stands."""

    def __init__(
        self,
        backend: Backend,
        execution: execution_pb2.Execution,
        *,
        environ: Mapping[str, str],
        flush_interval: float,
        flush_chars: int,
        cancel_poll: float = 1.0,
    ) -> None:
        self.backend = backend
        self.run = OpenExecution(
            backend, execution, environ=environ, flush_interval=flush_interval, flush_chars=flush_chars
        )
        self.cancel_poll = cancel_poll
        self.state = Checkpoint.parse(execution.status.checkpoint)
        self._stack = AsyncExitStack()  # the model client and MCP servers of the run
        self._build: AgentBuild | None = None
        self._resource: Any = None  # the Agent resource, read by ``begin``
        self._assistant_text: list[str] = []
        self._saved_messages = 0

    async def execute(self) -> Result:
        try:
            async with self._stack:
                return await run_agent_loop(self)
        except RunStopped as stopped:
            return stopped.execution
        except Exception as exc:  # closing the model client or an MCP server failed
            return await self.fail(exc)

    # -- the host --------------------------------------------------------------------------------
    async def begin(self) -> Start:
        run, state = self.run, self.state
        running = run.execution.status.phase == execution_pb2.PHASE_RUNNING
        if running and state.pending:
            state.decisions.update(await read_decisions(self.backend, run.execution, state))
            start = Start(
                prompt=None,
                history=load_messages(state.messages),
                pending=state.pending,
                decisions=state.decisions,
            )
        elif running and state.inflight:
            # A runner was stopped mid-run: continue after the last tool results it saved.
            await run.sink.emit("log", text="continuing after the last completed tool calls")
            start = Start(prompt=None, history=load_messages(state.messages))
        else:
            self.state = Checkpoint()
            prompt = run.prompt()
            await run.mark_running(prompt)
            start = Start(prompt=prompt)
        await run.load_context()
        session = run.execution.spec.session_id
        if start.prompt is not None and session:
            start.history = load_messages(await session_history(self.backend, session, run.id))
        self._resource = await run.agent()
        start.limits = run.limits(self._resource)
        start.price = run.price(self._resource)
        start.spent = Spent.of(run.execution.status.usage)
        return start

    async def turn(
        self,
        prompt: str | None,
        history: list[ModelMessage],
        deferred: DeferredToolResults | None,
        control: Turn,
    ) -> AgentRunResult[Any]:
        build = await self._agent()
        return await self._until_cancelled(
            build.agent.run(
                prompt,
                message_history=history or None,
                deferred_tool_results=deferred,
                event_stream_handler=self._handler,
                usage=control.usage,
                usage_limits=control.limits,
                capabilities=[
                    _handover_capability(self),  # first: it saves the whole conversation
                    *control.capabilities,
                    *([build.context.capability()] if build.context is not None else []),
                ],
            )
        )

    def server_of(self, tool: str) -> str:
        return self._build.approval.get(tool, "") if self._build is not None else ""

    async def decide(self, pause: Pause) -> Decision:
        """Write WAITING_APPROVAL for the call and stop: the next ``execute`` reads the decision."""
        checkpoint = Checkpoint(
            messages=dump_messages(pause.messages),
            pending=[PendingCall(c.id, c.tool, jsonable(c.args), c.server) for c in pause.pending],
            decisions=pause.decisions,
            reported_calls=self.state.reported_calls,
        )
        call = next(c for c in checkpoint.pending if c.id == pause.call.id)
        raise Stop(await self.run.request_approval(call, checkpoint, usage_message(pause.usage)))

    async def finish(self, output: Any, usage: dict[str, Any], messages: list[ModelMessage]) -> Result:
        # The conversation is kept for the next turn of a session; a one-shot run's events say it
        # all (and skipping the dump saves its first-use cost on every CLI run).
        dumped = dump_messages(messages) if self.run.execution.spec.session_id else []
        return await self.run.succeed(output, usage_message(usage) or execution_pb2.Usage(), dumped)

    async def fail(self, error: Exception, usage: dict[str, Any] | None = None) -> Result:
        if isinstance(error, RunStopped):
            return error.execution
        log.debug("agent execution %s failed", self.run.id, exc_info=error)
        problem = problem_from_exception(error, model=self.run.model_label, endpoint=self.run.endpoint)
        try:
            return await self.run.fail(problem, usage_message(usage))
        except RunStopped as stopped:
            return stopped.execution

    # -- building the agent ----------------------------------------------------------------------
    async def _agent(self) -> AgentBuild:
        """The agent with its model and MCP servers, started on the first turn."""
        if self._build is None:
            build = await self.run.build(self._resource or await self.run.agent(), self._stack)
            for server, toolset in build.toolsets:
                try:
                    await self._stack.enter_async_context(toolset)
                except Exception as exc:
                    raise mcp_start_error(server, exc) from exc
            self._build = build
        return self._build

    # -- cancellation ----------------------------------------------------------------------------
    async def _until_cancelled(self, work: Coroutine[Any, Any, AgentRunResult[Any]]) -> AgentRunResult[Any]:
        """Run ``work``; stop it (MCP servers included) as soon as the execution is cancelled."""
        run = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(self._until_finished_elsewhere())
        try:
            await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (run, watch):
                if not task.done():
                    task.cancel()
            await asyncio.gather(run, watch, return_exceptions=True)
        if watch.done() and not watch.cancelled():
            raise RunStopped(watch.result())  # ended elsewhere (cancelled) while running
        return run.result()

    async def _until_finished_elsewhere(self) -> execution_pb2.Execution:
        """Poll the execution; return it once something else ended it (a cancel)."""
        while True:
            await asyncio.sleep(self.cancel_poll)
            try:
                current = await self.backend.get_execution(svc.GetExecutionRequest(id=self.run.id))
            except Exception:  # a transient backend problem must not stop the run
                log.debug("checking %s for cancellation failed", self.run.id, exc_info=True)
                continue
            if is_terminal(current.status.phase):
                return current

    # -- progress --------------------------------------------------------------------------------
    async def _handler(self, ctx: RunContext[Any], events: Any) -> None:
        from pydantic_ai.messages import (
            FunctionToolCallEvent,
            FunctionToolResultEvent,
            PartDeltaEvent,
            PartEndEvent,
            PartStartEvent,
            TextPart,
            TextPartDelta,
        )

        sink = self.run.sink
        await self._save_progress(ctx)
        event: AgentStreamEvent
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                await sink.delta(event.part.content)
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                await sink.delta(event.delta.content_delta)
            elif isinstance(event, PartEndEvent) and isinstance(event.part, TextPart):
                self._assistant_text.append(event.part.content)
            elif isinstance(event, FunctionToolCallEvent):
                await self._flush_assistant()
                call_id = event.part.tool_call_id
                if call_id in self.state.reported_calls:
                    continue
                self.state.reported_calls.append(call_id)
                await sink.emit(
                    "tool.call",
                    subject=call_id,
                    data={"tool": event.part.tool_name, "args": event.part.args_as_dict()},
                )
            elif isinstance(event, FunctionToolResultEvent):
                await self._flush_assistant()
                await sink.emit(
                    "tool.result",
                    subject=event.part.tool_call_id,
                    data={"tool": event.part.tool_name, "result": clip(event.part.content)},
                )
        await self._flush_assistant()

    async def _save_progress(self, ctx: RunContext[Any]) -> None:
        """Before a model request that carries tool results, save the conversation so far, so a
        run stopped from now on continues from here instead of calling the tools again."""
        from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart

        messages = list(ctx.messages)
        if (
            not messages
            or len(messages) == self._saved_messages
            or not isinstance(messages[-1], ModelRequest)
        ):
            return
        if not any(isinstance(part, ToolReturnPart | RetryPromptPart) for part in messages[-1].parts):
            return
        self._saved_messages = len(messages)
        state = Checkpoint(
            messages=dump_messages(messages), reported_calls=list(self.state.reported_calls), inflight=True
        )
        await self.run.sink.update(checkpoint=state.dump(self.run.redactor))

    async def hand_over_before(self, messages: list[ModelMessage]) -> None:
        """Before a model request: when this run is being handed over (Lite's Ctrl-C detach) and
        the request carries tool results, save the conversation and stop (RUNNING), so the process
        that resumes it sends this request — once — instead of this one. (The first request of a
        run is sent: the run has nothing to hand over yet but its prompt.)"""
        from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart

        if not handover_requested() or not messages or not isinstance(messages[-1], ModelRequest):
            return
        if not any(isinstance(part, ToolReturnPart | RetryPromptPart) for part in messages[-1].parts):
            return
        await self._flush_assistant()
        state = Checkpoint(
            messages=dump_messages(messages), reported_calls=list(self.state.reported_calls), inflight=True
        )
        await self.run.sink.update(checkpoint=state.dump(self.run.redactor))
        await self.run.sink.hand_over_if_requested()

    async def _flush_assistant(self) -> None:
        if self._assistant_text:
            text = "".join(self._assistant_text)
            self._assistant_text = []
            await self.run.sink.emit("message.assistant", text=text)


def _handover_capability(host: InProcessHost) -> Any:
    """A pydantic-ai capability that offers ``host`` a handover before every model request."""
    from pydantic_ai.capabilities import AbstractCapability

    class HandOverBeforeRequests(AbstractCapability[Any]):
        async def before_model_request(self, ctx: RunContext[Any], request_context: Any) -> Any:
            await host.hand_over_before(list(request_context.messages))
            return request_context

    return HandOverBeforeRequests()
