"""Assembling a pydantic-ai ``Agent`` from an Agent spec: model, instructions, skills, MCP
toolsets and sub-agents (each exposed to its parent as a tool)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.core import Backend, InvalidArgument, Redactor
from stigmer.proto.v1 import agent_pb2, meta_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.runner.agent._context import ContextKeeper
from stigmer.runner.agent._events import EventSink, clip
from stigmer.runner.agent._limits import CURRENT_METER
from stigmer.runner.agent._loading import collector_paused
from stigmer.runner.agent._memory import AgentMemory
from stigmer.runner.agent._models import BuiltModel, ModelChoice, build_model, choose_model
from stigmer.runner.agent._skills import load_skills, skill_toolset, skills_prompt
from stigmer.runner.agent.mcp import build_mcp_toolsets, load_mcp_client
from stigmer.runner.agent.tools import TodoState, ToolEnvironment, build_builtin_toolsets
from stigmer.runner.agent.workspace import Workspace

if TYPE_CHECKING:
    from pydantic_ai import Agent, RunContext
    from pydantic_ai.messages import AgentStreamEvent
    from pydantic_ai.toolsets import AbstractToolset

__all__ = ["AgentBuild", "Builder", "workspace_prompt"]


def workspace_prompt(workspace: Workspace | None, note: str = "") -> str:
    """The system-prompt section about the workspace the built-in tools work in."""
    if workspace is None:
        return ""
    text = (
        "# Workspace\nYour file and shell tools work in a workspace folder; give paths relative "
        "to it. Its files are kept for the next turn of this conversation."
    )
    return f"{text}\n{note}" if note else text


@dataclass
class AgentBuild:
    """A built agent and what the runner needs to know about it."""

    agent: Agent[None, Any]
    model: BuiltModel
    approval: dict[str, str] = field(default_factory=dict)
    toolsets: list[tuple[str, AbstractToolset[Any]]] = field(default_factory=list)
    context: ContextKeeper | None = None  # the agent's `context` (long conversations)
    # Every toolset the agent has, by a key stable across builds of the same spec
    # (``mcp:<server>``, ``skills``, ``sub-agents``): a tool call made elsewhere names its toolset.
    by_key: dict[str, AbstractToolset[Any]] = field(default_factory=dict)
    instructions: str = ""


#: Answers that do not match a run's output schema the model may correct before the run fails.
OUTPUT_RETRIES = 3


def structured_output(schema: Mapping[str, Any]) -> tuple[Any, Callable[..., Any]]:
    """pydantic-ai's output type for a JSON Schema, and the output validator to register with it.

    The model answers through a tool whose arguments are the output; the validator checks them
    against the schema (JSON Schema 2020-12) and sends what is wrong back to the model to correct
    (pydantic-ai's output retries). A schema that is not an object is offered as
    ``{"result": …}`` and the validator hands on the value without its wrapper.
    """
    from jsonschema import Draft202012Validator
    from pydantic_ai import DeferredToolRequests, ModelRetry, StructuredDict

    given = dict(schema)
    wrapped = given.get("type") != "object"
    offered = (
        {"type": "object", "properties": {"result": given}, "required": ["result"]} if wrapped else given
    )
    checker: Any = Draft202012Validator(given)

    async def check(output: Any) -> Any:  # async: pydantic-ai would run a plain function in a
        # thread, which Temporal workflow code (where the loop runs on the full stack) cannot use
        if isinstance(output, DeferredToolRequests):
            return output
        value = output.get("result") if wrapped and isinstance(output, dict) else output
        problems = sorted(checker.iter_errors(value), key=lambda e: list(e.absolute_path))
        if problems:
            said = "; ".join(f"{_pointer(e.absolute_path)}: {e.message}" for e in problems[:5])
            raise ModelRetry(f"The answer does not match the required output schema: {said}")
        return value

    kind = StructuredDict(offered, description="The run's answer, as its schema asks.")
    return kind, check


def _pointer(path: Any) -> str:
    return "/".join(str(p) for p in path) or "(the answer)"


def _tool_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name).strip("_") or "sub_agent"
    return cleaned[:64]


class Builder:
    """Builds agents for one execution, with its context (secrets, variables) in memory."""

    def __init__(
        self,
        backend: Backend,
        *,
        sink: EventSink,
        redactor: Redactor,
        secrets: Mapping[str, str],
        variables: Mapping[str, str],
        environ: Mapping[str, str],
        run_model: agent_pb2.ModelConfig | None,
        allow_run: bool = False,
        execution_id: str = "",
        log_dir: Path | None = None,
        output_schema: Mapping[str, Any] | None = None,
        session_id: str = "",
        message: str | None = None,
        tools: ToolEnvironment | None = None,
        workspace_note: str = "",
    ) -> None:
        self.backend = backend
        self.output_schema = output_schema  # the top agent's structured output (None: text)
        self.closers: list[Callable[[], Any]] = []  # extra model clients to close with the run
        self.session_id = session_id
        self.message = message  # the run's message: memories relevant to it are recalled (None: not)
        # What the built-in tools work with (the workspace, the plan, the capabilities).
        self.tools = tools or ToolEnvironment(workspace=None, todos=TodoState(), environ=environ)
        self.workspace_note = workspace_note
        self.execution_id = execution_id
        self.log_dir = log_dir  # where stdio MCP servers' standard error goes
        self.allow_run = allow_run  # the execution's `run` capability: stdio MCP servers
        self.sink = sink
        self.redactor = redactor
        self.secrets = secrets
        self.variables = variables
        self.environ = environ
        self.run_model = run_model

    def lookup(self, name: str) -> str | None:
        """A setting or key: the execution's secrets, then its variables, then the process environment."""
        return self.secrets.get(name) or self.variables.get(name) or self.environ.get(name) or None

    def _model_environ(self) -> dict[str, str]:
        keys = ("STIGMER_LLM_PROVIDER", "STIGMER_LLM_MODEL", "STIGMER_LLM_BASE_URL", "OLLAMA_BASE_URL")
        return {k: v for k in keys if (v := self.variables.get(k) or self.environ.get(k))}

    def choose(
        self, agent_model: agent_pb2.ModelConfig | None, *, parent: ModelChoice | None = None
    ) -> ModelChoice:
        if parent is not None and (agent_model is None or not (agent_model.name or agent_model.provider)):
            return parent
        run_model = self.run_model if parent is None else None
        return choose_model(agent_model, run_model, self._model_environ())

    async def build(
        self,
        spec: agent_pb2.AgentSpec | agent_pb2.SubAgent,
        *,
        name: str,
        parent_model: ModelChoice | None = None,
        approvals: bool = True,
        depth: int = 0,
        tools: ToolEnvironment | None = None,
    ) -> AgentBuild:
        """Build the agent for ``spec`` (an Agent spec or an inline sub-agent); its built-in tools
        work with ``tools`` (default: the execution's)."""
        tool_env = tools or self.tools
        agent_model = spec.model if spec.HasField("model") else None
        choice = self.choose(agent_model, parent=parent_model)
        with collector_paused():  # the libraries of the run, loaded now (synchronously)
            import pydantic_ai
            from pydantic_ai import Agent, DeferredToolRequests

            built = build_model(choice, self.lookup)
            if spec.mcp_servers:
                load_mcp_client()
        # Stigmer owns the run's output: no first-run banner on the user's terminal (pydantic-ai's
        # documented switch for a platform that hands runs to a framework of its own).
        pydantic_ai.BANNER_ENABLED = False
        self.redactor.register(built.api_key)

        skills = await load_skills(self.backend, list(spec.skills))
        builtin = build_builtin_toolsets(list(spec.tools), tool_env, approvals=approvals)
        note = workspace_prompt(tool_env.workspace, self.workspace_note) if builtin.toolsets else ""
        instructions = "\n\n".join(p for p in (spec.instructions.strip(), skills_prompt(skills), note) if p)
        mcp = await build_mcp_toolsets(
            self.backend,
            list(spec.mcp_servers),
            secrets=self.secrets,
            variables=self.variables,
            redactor=self.redactor,
            approvals=approvals,
            allow_run=self.allow_run,
            log_dir=self.log_dir,
            execution_id=self.execution_id,
        )
        by_key: dict[str, AbstractToolset[Any]] = {f"mcp:{server}": t for server, t in mcp.toolsets}
        by_key.update(builtin.toolsets)
        files = skill_toolset(skills)
        if files is not None:
            by_key["skills"] = files
        if isinstance(spec, agent_pb2.AgentSpec) and spec.sub_agents:
            if depth >= 3:
                raise InvalidArgument(
                    f"agent {name}: sub-agents nest deeper than 3 levels", ["spec.subAgents"]
                )
            by_key["sub-agents"] = await self._sub_agent_tools(spec.sub_agents, choice, depth)
        if isinstance(spec, agent_pb2.AgentSpec) and spec.HasField("memory") and depth == 0:
            memory = AgentMemory.of(
                self.backend,
                spec.memory,
                agent=name,
                variables=self.variables,
                redactor=self.redactor,
                session_id=self.session_id,
                execution_id=self.execution_id,
            )
            if memory is not None:
                by_key["memory"] = memory.toolset()
                if self.message:
                    recalled = await memory.prompt(self.message)
                    instructions = "\n\n".join(p for p in (instructions, recalled) if p)
        toolsets = list(by_key.values())
        answer: Any = str
        check = None
        if depth == 0 and self.output_schema is not None:
            answer, check = structured_output(self.output_schema)
        output_type: Any = [answer, DeferredToolRequests] if approvals else answer
        from ._telemetry import instrumentation

        traced = instrumentation()  # None when traces are off
        agent: Agent[None, Any] = Agent(
            built.model,
            name=_tool_name(name),
            instructions=instructions or None,
            toolsets=toolsets,
            output_type=output_type,
            model_settings=built.settings or None,
            retries={"output": OUTPUT_RETRIES} if check is not None else None,
        )
        if traced is not None:  # pydantic-ai's own spans: the run, each model request and tool call
            agent.instrument = traced
        if check is not None:
            agent.output_validator(check)
        context = None
        if isinstance(spec, agent_pb2.AgentSpec) and spec.HasField("context"):
            context = ContextKeeper.of(spec.context)
            if context is not None and spec.context.HasField("summary_model"):
                summary = build_model(self.choose(spec.context.summary_model), self.lookup)
                self.redactor.register(summary.api_key)
                context.summary_model = summary.model
                self.closers.append(summary.aclose)
        return AgentBuild(
            agent=agent,
            model=built,
            approval={**mcp.approval, **builtin.approval},
            toolsets=mcp.toolsets,
            by_key=by_key,
            instructions=instructions,
            context=context,
        )

    async def _sub_agent_tools(
        self, subs: Sequence[agent_pb2.SubAgent], parent: ModelChoice, depth: int
    ) -> AbstractToolset[Any]:
        from pydantic_ai.toolsets import FunctionToolset

        toolset: FunctionToolset[Any] = FunctionToolset()
        seen: set[str] = set()
        for index, sub in enumerate(subs):
            spec: agent_pb2.AgentSpec | agent_pb2.SubAgent = sub
            name = sub.name or sub.agent
            if not name:
                raise InvalidArgument(
                    f"spec.subAgents[{index}]: a sub-agent needs a name", ["spec.subAgents"]
                )
            description = sub.description
            if sub.agent:
                ref = meta_pb2.ResourceRef(kind="Agent", name=sub.agent)
                resource = (await self.backend.get(svc.GetRequest(ref=ref))).agent
                spec = resource.spec
                description = description or resource.spec.description
            tool = _tool_name(name)
            if tool in seen:
                raise InvalidArgument(
                    f"spec.subAgents[{index}]: duplicate sub-agent name {name}", ["spec.subAgents"]
                )
            seen.add(tool)
            toolset.add_function(
                self._sub_agent_function(name, spec, parent, depth, own_workspace=sub.own_workspace),
                name=tool,
                description=(description or f"Delegate a task to the sub-agent {name}.")
                + " Pass the complete task; the sub-agent answers with its result.",
                takes_ctx=True,
            )
        return toolset

    def _sub_agent_function(
        self,
        name: str,
        spec: agent_pb2.AgentSpec | agent_pb2.SubAgent,
        parent: ModelChoice,
        depth: int,
        *,
        own_workspace: bool = False,
    ) -> Callable[..., Any]:
        builder = self
        sink = self.sink

        async def run_sub_agent(ctx: RunContext[Any], task: str) -> str:
            """Run the sub-agent on a task.

            Args:
                task: What the sub-agent should do, with everything it needs to know.
            """
            call_id = ctx.tool_call_id or ""
            await sink.emit("agent.started", subject=call_id, data={"agent": name, "task": task})
            child = await builder.build(
                spec,
                name=name,
                parent_model=parent,
                approvals=False,
                depth=depth + 1,
                tools=builder.sub_agent_tools(name, own_workspace),
            )
            async with AsyncExitStack() as stack:
                stack.push_async_callback(child.model.aclose)
                for _server, toolset in child.toolsets:
                    await stack.enter_async_context(toolset)
                meter = CURRENT_METER.get()  # the parent's turn prices and records its requests
                result = await child.agent.run(
                    task,
                    usage=ctx.usage,
                    event_stream_handler=builder.child_handler(name),
                    capabilities=[meter.capability()] if meter is not None else None,
                )
            output = str(result.output)
            await sink.emit("agent.completed", subject=call_id, data={"agent": name, "output": output})
            return output

        # pydantic-ai reads the signature at run time; RunContext is imported lazily, so give the
        # annotations as objects rather than strings.
        from pydantic_ai import RunContext as _RunContext

        run_sub_agent.__annotations__ = {"ctx": _RunContext[Any], "task": str, "return": str}
        return run_sub_agent

    def sub_agent_tools(self, name: str, own_workspace: bool) -> ToolEnvironment:
        """The parent's workspace, or (``ownWorkspace``) a folder of the sub-agent's own next to it."""
        env = self.tools
        if not own_workspace or env.workspace is None:
            return env
        parent = env.workspace
        folder = parent.root.with_name(f"{parent.root.name}.{_tool_name(name)}")
        own = Workspace(folder, max_files=parent.max_files, max_bytes=parent.max_bytes)
        return replace(env, workspace=own, todos=TodoState())

    def child_handler(self, agent_name: str) -> Callable[[RunContext[Any], Any], Any]:
        """Report a sub-agent's tool calls and results (its text goes to ``agent.completed``)."""
        from pydantic_ai.messages import FunctionToolCallEvent, FunctionToolResultEvent

        sink = self.sink

        async def handler(ctx: RunContext[Any], events: Any) -> None:
            event: AgentStreamEvent
            async for event in events:
                if isinstance(event, FunctionToolCallEvent):
                    await sink.emit(
                        "tool.call",
                        subject=event.part.tool_call_id,
                        data={
                            "tool": event.part.tool_name,
                            "args": event.part.args_as_dict(),
                            "agent": agent_name,
                        },
                    )
                elif isinstance(event, FunctionToolResultEvent):
                    await sink.emit(
                        "tool.result",
                        subject=event.part.tool_call_id,
                        data={
                            "tool": event.part.tool_name,
                            "result": clip(event.part.content),
                            "agent": agent_name,
                        },
                    )

        return handler
