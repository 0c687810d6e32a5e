"""One agent execution driven to SUCCEEDED / FAILED / CANCELLED, or to WAITING_APPROVAL and back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from stigmer.core import (
    CAPABILITY_RUN,
    Backend,
    InvalidArgument,
    Redactor,
    Unavailable,
    default_redactor,
    has_capability,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent._build import AgentBuild, Builder
from stigmer.runner.agent._checkpoint import (
    PendingCall,
    RunState,
    dump_messages,
    load_messages,
    read_decisions,
    session_history,
)
from stigmer.runner.agent._events import Ev, EventSink, RunStopped, clip, jsonable
from stigmer.runner.agent._problems import problem_from_exception

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import AgentStreamEvent

__all__ = ["AgentRun", "runner_identity"]

log = logging.getLogger(__name__)

_TERMINAL = {execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED, execution_pb2.PHASE_CANCELLED}


def runner_identity() -> str:
    return f"agent-runner@{socket.gethostname()}:{os.getpid()}"


class AgentRun:
    """State of one ``execute`` call."""

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
        self.cancel_poll = cancel_poll
        self.execution = execution
        self.id = execution.metadata.id
        self.environ = environ
        self.redactor = Redactor()
        self.state = RunState.parse(execution.status.checkpoint)
        self.sink = EventSink(
            backend,
            self.id,
            last_sequence=execution.status.last_sequence,
            redactor=self.redactor,
            runner=runner_identity(),
            flush_interval=flush_interval,
            flush_chars=flush_chars,
        )
        self.model_label = ""
        self.endpoint = ""
        self._assistant_text: list[str] = []
        self._saved_messages = 0

    # -- entry -----------------------------------------------------------------------------------
    async def execute(self) -> execution_pb2.Execution:
        try:
            return await self._execute()
        except RunStopped as stopped:
            return stopped.execution
        except Exception as exc:
            log.debug("agent execution %s failed", self.id, exc_info=True)
            error = problem_from_exception(exc, model=self.model_label, endpoint=self.endpoint)
            try:
                return await self.sink.update(phase=execution_pb2.PHASE_FAILED, error=error)
            except RunStopped as stopped:
                return stopped.execution

    async def _execute(self) -> execution_pb2.Execution:
        running = self.execution.status.phase == execution_pb2.PHASE_RUNNING
        resuming = running and bool(self.state.pending)
        if resuming:
            decisions = await read_decisions(self.backend, self.execution, self.state)
            self.state.decisions.update(decisions)
        elif running and self.state.inflight:
            # A runner was stopped mid-run: continue after the last tool results it saved.
            await self.sink.emit("log", text="continuing after the last completed tool calls")
        else:
            self.state = RunState()
            prompt = self._prompt()
            await self.sink.update(
                phase=execution_pb2.PHASE_RUNNING,
                events=[Ev("message.user", text=prompt)],
            )

        context = await self.backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=self.id)
        )
        secrets = dict(context.secrets)
        self.redactor.register(*secrets.values())
        default_redactor().register(*secrets.values())
        variables = {**dict(context.variables), **dict(self.execution.spec.env)}

        if resuming and self.state.undecided():
            return await self._request_approval(self.state.undecided()[0], messages=None, usage=None)

        ref = self.execution.spec.target
        agent_ref = meta_pb2.ResourceRef(kind=ref.kind or "Agent", name=ref.name, id=ref.id)
        agent_resource = (await self.backend.get(svc.GetRequest(ref=agent_ref))).agent
        self._check_env(agent_resource.spec, variables, secrets)

        async with AsyncExitStack() as stack:
            builder = Builder(
                self.backend,
                sink=self.sink,
                redactor=self.redactor,
                secrets=secrets,
                variables=variables,
                environ=self.environ,
                run_model=self.execution.spec.model if self.execution.spec.HasField("model") else None,
                allow_run=has_capability(context.config, CAPABILITY_RUN),
            )
            build = await builder.build(agent_resource.spec, name=agent_resource.metadata.name or ref.name)
            stack.push_async_callback(build.model.aclose)
            default_redactor().register(build.model.api_key)
            self.model_label = build.model.choice.label
            self.endpoint = build.model.choice.base_url
            for server, toolset in build.toolsets:
                try:
                    await stack.enter_async_context(toolset)
                except Exception as exc:
                    raise _mcp_start_error(server, exc) from exc
            return await self._run_until_cancelled(build)

    async def _run_until_cancelled(self, build: AgentBuild) -> execution_pb2.Execution:
        """Run the model loop; stop it (MCP servers included) as soon as the execution is cancelled."""
        run = asyncio.ensure_future(self._run(build))
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
                current = await self.backend.get_execution(svc.GetExecutionRequest(id=self.id))
            except Exception:  # a transient backend problem must not stop the run
                log.debug("checking %s for cancellation failed", self.id, exc_info=True)
                continue
            if current.status.phase in _TERMINAL:
                return current

    def _prompt(self) -> str:
        spec = self.execution.spec
        if spec.message:
            return spec.message
        if spec.HasField("input"):
            data = json_format.MessageToDict(spec.input)
            return data if isinstance(data, str) else json.dumps(data)
        raise InvalidArgument(
            "the execution has no message: pass the user message to the run", ["spec.message"]
        )

    def _check_env(self, spec: Any, variables: Mapping[str, str], secrets: Mapping[str, str]) -> None:
        missing = [
            req.name
            for req in spec.env
            if req.required and not req.default and req.name not in variables and req.name not in secrets
        ]
        if missing:
            raise InvalidArgument(
                f"the agent requires {', '.join(missing)}: set {'them' if len(missing) > 1 else 'it'} "
                "in an environment the agent uses or with --env on the run",
                ["spec.env"],
            )

    # -- the model loop --------------------------------------------------------------------------
    async def _run(self, build: AgentBuild) -> execution_pb2.Execution:
        from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied

        spec = self.execution.spec
        deferred: DeferredToolResults | None = None
        if self.state.pending:
            history = load_messages(self.state.messages)
            approvals: dict[str, Any] = {}
            for call in self.state.pending:
                decision = self.state.decisions[call.id]
                if decision.approved:
                    approvals[call.id] = ToolApproved()
                else:
                    reason = f": {decision.reason}" if decision.reason else ""
                    approvals[call.id] = ToolDenied(f"The user refused this tool call{reason}")
            deferred = DeferredToolResults(approvals=approvals)
            prompt: str | None = None
        elif self.state.inflight:
            history = load_messages(self.state.messages)
            prompt = None
        else:
            history = (
                load_messages(await session_history(self.backend, spec.session_id, self.id))
                if spec.session_id
                else []
            )
            prompt = self._prompt()

        result = await build.agent.run(
            prompt,
            message_history=history or None,
            deferred_tool_results=deferred,
            event_stream_handler=self._handler,
        )
        self.state.pending, self.state.decisions, self.state.requested = [], {}, ""
        run_usage = result.usage
        usage = execution_pb2.Usage(
            input_tokens=run_usage.input_tokens or 0,
            output_tokens=run_usage.output_tokens or 0,
            requests=run_usage.requests or 0,
            tool_calls=run_usage.tool_calls or 0,
        )
        output = result.output
        if isinstance(output, DeferredToolRequests):
            messages = dump_messages(result.all_messages())
            if output.calls:
                names = ", ".join(c.tool_name for c in output.calls)
                raise InvalidArgument(f"tools {names} asked to be run externally, which agents cannot do")
            for part in output.approvals:
                self.state.pending.append(
                    PendingCall(
                        id=part.tool_call_id,
                        tool=part.tool_name,
                        args=jsonable(part.args_as_dict()),
                        server=build.approval.get(part.tool_name, ""),
                    )
                )
            return await self._request_approval(self.state.pending[0], messages=messages, usage=usage)
        text = str(output)
        # The conversation is kept for the next turn of a session; a one-shot run's events say it
        # all (and skipping the dump saves its first-use cost on every CLI run).
        final = RunState(messages=dump_messages(result.all_messages()) if spec.session_id else [])
        checkpoint = final.dump(self.redactor)
        return await self.sink.update(
            phase=execution_pb2.PHASE_SUCCEEDED,
            events=[self._usage_event(usage)],
            output=text,
            usage=usage,
            checkpoint=checkpoint,
        )

    def _usage_event(self, usage: execution_pb2.Usage) -> Ev:
        return Ev("usage", data=json_format.MessageToDict(usage, preserving_proto_field_name=True))

    async def _request_approval(
        self, call: PendingCall, *, messages: list[Any] | None, usage: execution_pb2.Usage | None
    ) -> execution_pb2.Execution:
        if messages is not None:
            self.state.messages = messages
        events = [] if usage is None else [self._usage_event(usage)]
        scrubbed_args = self.redactor.scrub(call.args)
        events.append(
            Ev(
                "approval.requested",
                subject=call.id,
                text=f"{call.tool} needs approval",
                data={"tool": call.tool, "server": call.server, "args": scrubbed_args},
            )
        )
        request = execution_pb2.ApprovalRequest(id=call.id, tool=call.tool, server=call.server)
        request.arguments.update(jsonable(scrubbed_args) if isinstance(scrubbed_args, dict) else {})
        request.requested_at.GetCurrentTime()
        self.state.requested = call.id
        # Decisions are approval.resolved events written after this point.
        self.state.sequence = self.sink.sequence
        return await self.sink.update(
            phase=execution_pb2.PHASE_WAITING_APPROVAL,
            events=events,
            usage=usage,
            pending_approval=request,
            checkpoint=self.state.dump(self.redactor),
        )

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

        await self._save_progress(ctx)
        event: AgentStreamEvent
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                await self.sink.delta(event.part.content)
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                await self.sink.delta(event.delta.content_delta)
            elif isinstance(event, PartEndEvent) and isinstance(event.part, TextPart):
                self._assistant_text.append(event.part.content)
            elif isinstance(event, FunctionToolCallEvent):
                await self._flush_assistant()
                call_id = event.part.tool_call_id
                if call_id in self.state.reported_calls:
                    continue
                self.state.reported_calls.append(call_id)
                await self.sink.emit(
                    "tool.call",
                    subject=call_id,
                    data={"tool": event.part.tool_name, "args": event.part.args_as_dict()},
                )
            elif isinstance(event, FunctionToolResultEvent):
                await self._flush_assistant()
                await self.sink.emit(
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
        state = RunState(
            messages=dump_messages(messages), reported_calls=list(self.state.reported_calls), inflight=True
        )
        await self.sink.update(checkpoint=state.dump(self.redactor))

    async def _flush_assistant(self) -> None:
        if self._assistant_text:
            text = "".join(self._assistant_text)
            self._assistant_text = []
            await self.sink.emit("message.assistant", text=text)


def _mcp_start_error(server: str, exc: BaseException) -> Unavailable:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        detail = "; ".join(str(e) or type(e).__name__ for e in exc.exceptions)
    return Unavailable(f"MCP server {server} failed to start: {detail}")
