"""One agent execution as a runner sees it, and every write a run makes to it.

``OpenExecution`` holds the execution, its event sink and redactor, and (once loaded) its context:
secrets, variables and whether it may start local processes. Both hosts use it: the Lite host for
a whole run in this process, each Temporal activity for its one step. The status writes of a run
live here once: RUNNING with the user's message, WAITING_APPROVAL with the approval request and
checkpoint, SUCCEEDED with output and usage, FAILED with a problem, CANCELLED.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from stigmer.core import (
    CAPABILITY_PRIVATE_NETWORK,
    CAPABILITY_RUN,
    Backend,
    InvalidArgument,
    Limits,
    Redactor,
    StigmerError,
    Unavailable,
    default_redactor,
    has_capability,
    is_terminal,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent._build import AgentBuild, Builder
from stigmer.runner.agent._checkpoint import Checkpoint
from stigmer.runner.agent._events import Ev, EventSink, RunStopped, jsonable
from stigmer.runner.agent._limits import Limits as RunLimits
from stigmer.runner.agent._loop import PendingCall
from stigmer.runner.agent.mcp import McpServerFailed, mcp_log_dir
from stigmer.runner.agent.tools import TodoState, ToolEnvironment
from stigmer.runner.agent.workspace import ATTACHMENTS, RunWorkspace, needs_workspace

if TYPE_CHECKING:
    from pydantic_ai.usage import RunUsage

__all__ = ["OpenExecution", "mcp_start_error", "runner_identity", "usage_message"]


def runner_identity() -> str:
    return f"agent-runner@{socket.gethostname()}:{os.getpid()}"


class OpenExecution:
    """An agent execution fetched from the Backend, with what a run needs to work on it."""

    def __init__(
        self,
        backend: Backend,
        execution: execution_pb2.Execution,
        *,
        environ: Mapping[str, str],
        flush_interval: float,
        flush_chars: int,
    ) -> None:
        self.backend = backend
        self.execution = execution
        self.id = execution.metadata.id
        self.environ = environ
        self.redactor = Redactor()
        self.sink = EventSink(
            backend,
            self.id,
            last_sequence=execution.status.last_sequence,
            redactor=self.redactor,
            runner=runner_identity(),
            flush_interval=flush_interval,
            flush_chars=flush_chars,
        )
        self.secrets: dict[str, str] = {}
        self.variables: dict[str, str] = dict(execution.spec.env)
        self.allow_run = False  # without the context, nothing that starts a process is built
        self.allow_private_network = False
        self.has_context = False
        self.workspace: RunWorkspace | None = None  # once opened (agents with built-in tools or a seed)
        self.todos = TodoState.of(execution.status.todos, self._publish_todos)
        self._limits: Limits | None = None
        self.model_label = ""  # of the model last built, for problem descriptions
        self.endpoint = ""

    @classmethod
    async def fetch(
        cls,
        backend: Backend,
        execution_id: str,
        *,
        environ: Mapping[str, str],
        flush_interval: float = 0.1,
        flush_chars: int = 200,
    ) -> OpenExecution:
        """The agent execution with this id; ``RunStopped`` if it has ended."""
        execution = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if execution.kind and execution.kind != "AgentExecution":
            raise InvalidArgument(
                f"execution {execution_id} is a {execution.kind}; the agent runner runs AgentExecutions"
            )
        if is_terminal(execution.status.phase):
            raise RunStopped(execution)
        return cls(
            backend, execution, environ=environ, flush_interval=flush_interval, flush_chars=flush_chars
        )

    @property
    def limits(self) -> Limits:
        """This process's limits (``agent_requests``: model requests in one turn), read once."""
        if self._limits is None:
            self._limits = Limits.load(self.environ)
        return self._limits

    # -- what the run reads ----------------------------------------------------------------------
    def prompt(self) -> str:
        spec = self.execution.spec
        if spec.message:
            return spec.message
        if spec.HasField("input"):
            data = json_format.MessageToDict(spec.input)
            return data if isinstance(data, str) else json.dumps(data)
        raise InvalidArgument(
            "the execution has no message: pass the user message to the run", ["spec.message"]
        )

    async def load_context(self) -> None:
        """Read the execution's context (available once it runs): secrets, variables, capabilities."""
        context = await self.backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=self.id)
        )
        self.secrets = dict(context.secrets)
        self.redactor.register(*self.secrets.values())
        default_redactor().register(*self.secrets.values())
        self.variables = {**dict(context.variables), **dict(self.execution.spec.env)}
        self.allow_run = has_capability(context.config, CAPABILITY_RUN)
        self.allow_private_network = has_capability(context.config, CAPABILITY_PRIVATE_NETWORK)
        self.has_context = True

    async def agent(self) -> Any:
        """The Agent resource the execution runs; its required variables are checked against the
        context, if loaded."""
        ref = self.execution.spec.target
        agent_ref = meta_pb2.ResourceRef(kind=ref.kind or "Agent", name=ref.name, id=ref.id)
        agent = (await self.backend.get(svc.GetRequest(ref=agent_ref))).agent
        if self.has_context:
            self._check_env(agent.spec)
        return agent

    def _check_env(self, spec: Any) -> None:
        missing = [
            req.name
            for req in spec.env
            if req.required
            and not req.default
            and req.name not in self.variables
            and req.name not in self.secrets
        ]
        if missing:
            raise InvalidArgument(
                f"the agent requires {', '.join(missing)}: set {'them' if len(missing) > 1 else 'it'} "
                "in an environment the agent uses or with --env on the run",
                ["spec.env"],
            )

    def run_limits(self, agent: Any) -> RunLimits:
        """The run's limits: the lowest of its agent's and its own (a server's ceiling is in its own)."""
        spec = self.execution.spec
        return RunLimits.combine(
            agent.spec.limits if agent.spec.HasField("limits") else None,
            spec.limits if spec.HasField("limits") else None,
        )

    def price(self, agent: Any) -> tuple[float, float] | None:
        """The model's own price (USD per million input, output tokens): the run's model's, else
        the agent's; None when neither gives one (the price table is used)."""
        for model in (self.execution.spec.model, agent.spec.model):
            if model.HasField("price"):
                return (model.price.input_per_million, model.price.output_per_million)
        return None

    def output_schema(self, agent: Any) -> dict[str, Any] | None:
        """The JSON Schema of the run's output: the run's own, else the agent's; None for text."""
        for holder in (self.execution.spec, agent.spec):
            if holder.HasField("output_schema"):
                return json_format.MessageToDict(holder.output_schema)
        return None

    # -- the workspace and the plan --------------------------------------------------------------
    async def open_workspace(self, spec: Any, *, new_turn: bool) -> RunWorkspace | None:
        """Open the execution's workspace (when its agent has one): a new turn's is seeded."""
        if not needs_workspace(spec, self.execution):
            return None
        workspace = RunWorkspace(
            self.backend, self.execution, spec, environ=self.environ, allow_run=self.allow_run
        )
        await workspace.open(new_turn=new_turn)
        self.workspace = workspace
        return workspace

    async def save_workspace(self) -> execution_pb2.WorkspaceState | None:
        """Save the workspace as an artifact (if the run has one); the state to record."""
        if self.workspace is None:
            return None
        return await self.workspace.save()

    def workspace_note(self) -> str:
        names = [a.name for a in self.execution.spec.attachments]
        if not names:
            return ""
        listing = ", ".join(f"{ATTACHMENTS}/{name}" for name in names)
        return f"The user attached files; they are in the workspace: {listing}."

    async def _publish_todos(self, items: list[execution_pb2.TodoItem]) -> None:
        data = {"items": [{"id": i.id, "content": i.content, "status": i.status} for i in items]}
        done = sum(1 for i in items if i.status == "completed")
        await self.sink.update(
            events=[Ev("todos", text=f"plan: {done}/{len(items)} done", data=data)],
            todos=execution_pb2.TodoList(items=items),
        )

    def builder(self, output_schema: dict[str, Any] | None = None, *, recall: bool = False) -> Builder:
        """A builder for this execution's agents; with ``recall``, memories relevant to the run's
        message go into the instructions (when the agent has memory)."""
        spec = self.execution.spec
        tools = ToolEnvironment(
            workspace=self.workspace.workspace if self.workspace is not None else None,
            todos=self.todos,
            allow_run=self.allow_run,
            allow_private_network=self.allow_private_network,
            environ=self.environ,
        )
        return Builder(
            self.backend,
            sink=self.sink,
            redactor=self.redactor,
            secrets=self.secrets,
            variables=self.variables,
            environ=self.environ,
            run_model=spec.model if spec.HasField("model") else None,
            allow_run=self.allow_run,
            execution_id=self.id,
            log_dir=mcp_log_dir(self.environ),
            output_schema=output_schema,
            session_id=spec.session_id,
            message=self._message() if recall else None,
            tools=tools,
            workspace_note=self.workspace_note(),
        )

    def _message(self) -> str | None:
        try:
            return self.prompt()
        except InvalidArgument:
            return None

    async def build(self, agent: Any, stack: AsyncExitStack, *, recall: bool = True) -> AgentBuild:
        """The pydantic-ai agent of ``agent`` (a resource), its model closed with ``stack``;
        ``recall=False`` skips reading the memories relevant to the message (a tool call's build)."""
        name = agent.metadata.name or self.execution.spec.target.name
        builder = self.builder(self.output_schema(agent), recall=recall)
        build = await builder.build(agent.spec, name=name)
        stack.push_async_callback(build.model.aclose)
        for close in builder.closers:
            stack.push_async_callback(close)
        default_redactor().register(build.model.api_key)
        self.model_label = build.model.choice.label
        self.endpoint = build.model.choice.base_url
        return build

    # -- what the run writes ---------------------------------------------------------------------
    async def mark_running(self, prompt: str) -> execution_pb2.Execution:
        return await self.sink.update(
            phase=execution_pb2.PHASE_RUNNING, events=[Ev("message.user", text=prompt)]
        )

    def usage_event(self, usage: execution_pb2.Usage) -> Ev:
        return Ev("usage", data=json_format.MessageToDict(usage, preserving_proto_field_name=True))

    async def request_approval(
        self,
        call: PendingCall,
        checkpoint: Checkpoint,
        usage: execution_pb2.Usage | None,
        workspace: execution_pb2.WorkspaceState | None = None,
    ) -> execution_pb2.Execution:
        """WAITING_APPROVAL for ``call``; ``checkpoint.sequence`` is set to the event sequence the
        decisions follow."""
        events = [] if usage is None else [self.usage_event(usage)]
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
        checkpoint.requested = call.id
        # Decisions are approval.resolved events written after this point.
        checkpoint.sequence = self.sink.sequence
        return await self.sink.update(
            phase=execution_pb2.PHASE_WAITING_APPROVAL,
            events=events,
            usage=usage,
            pending_approval=request,
            checkpoint=checkpoint.dump(self.redactor),
            workspace=workspace,
        )

    async def succeed(
        self,
        output: Any,
        usage: execution_pb2.Usage,
        messages: list[Any],
        workspace: execution_pb2.WorkspaceState | None = None,
    ) -> execution_pb2.Execution:
        """SUCCEEDED with the output and usage; in a session, the conversation (JSON) for the next turn."""
        return await self.sink.update(
            phase=execution_pb2.PHASE_SUCCEEDED,
            events=[self.usage_event(usage)],
            output=output,
            usage=usage,
            checkpoint=Checkpoint(messages=messages if self.execution.spec.session_id else []).dump(
                self.redactor
            ),
            workspace=workspace,
        )

    async def fail(
        self,
        error: execution_pb2.ExecutionError,
        workspace: execution_pb2.WorkspaceState | None = None,
        usage: execution_pb2.Usage | None = None,
    ) -> execution_pb2.Execution:
        """FAILED with ``error``, the workspace as the run left it and the usage the run spent since
        it last reported."""
        events = [] if usage is None else [self.usage_event(usage)]
        return await self.sink.update(
            phase=execution_pb2.PHASE_FAILED, error=error, events=events, usage=usage, workspace=workspace
        )

    async def cancel(self) -> execution_pb2.Execution:
        return await self.sink.update(phase=execution_pb2.PHASE_CANCELLED)


def usage_message(usage: RunUsage | Mapping[str, Any] | None) -> execution_pb2.Usage | None:
    """pydantic-ai's usage (or its JSON) as ``stigmer.v1.Usage``; None for none."""
    if not usage:
        return None
    if isinstance(usage, Mapping):
        return json_format.ParseDict(dict(usage), execution_pb2.Usage(), ignore_unknown_fields=True)
    return execution_pb2.Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        requests=usage.requests or 0,
        tool_calls=usage.tool_calls or 0,
    )


def mcp_start_error(server: str, exc: BaseException) -> StigmerError:
    if isinstance(exc, McpServerFailed):  # it names the server's last error line, command, folder
        return exc
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        detail = "; ".join(str(e) or type(e).__name__ for e in exc.exceptions)
    return Unavailable(f"MCP server {server} failed to start: {detail}")
