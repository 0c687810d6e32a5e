"""The steps of one agent execution, each run on its own: what the Temporal activities do.

On Temporal the agent loop runs in the workflow (see ``_workflow``) and every side
effect is one of these steps, called with the execution id and plain JSON data:

- ``start``: mark the execution RUNNING, and return what the loop needs — the prompt, the
  session's earlier conversation, the instructions (skills included), the model's name and the
  tool definitions of every toolset (MCP servers are started to list them, and this worker keeps
  them running for the execution's later tool calls: ``mcp.McpPool``); for a retry, where it
  continues (``resume``: the conversation through the old run's last completed turn and the
  calls that turn paused on, to be asked for again);
- ``model_request``: one request to the model, its text streamed to the Backend as
  ``text.delta`` / ``message.assistant`` events; the final response is returned;
- ``call_tool``: one tool call (an MCP tool, a skill file read, or a whole sub-agent run);
- ``request_approval`` / ``decision``: pause for a human, read the answer;
- ``finish`` / ``fail``: the terminal status.

Each step fetches the execution, its context (secrets) and the Agent definition from the Backend
just in time and keeps secrets in memory only; everything a step returns is scrubbed of secret
values first (so a tool that echoes a secret hands ``***`` to the loop and to the model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from stigmer.core import Backend, InvalidArgument, default_redactor, is_terminal
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

from .._build import AgentBuild
from .._checkpoint import Checkpoint, dump_messages, load_messages, read_decisions, session_history
from .._events import RunStopped, clip, jsonable
from .._execution import OpenExecution, mcp_start_error, usage_message
from .._limits import Spent
from .._loop import PendingCall, usage_dict
from ..mcp import McpPool
from ..tools._build import MUTATING
from ..workspace import workspaces_dir

if TYPE_CHECKING:
    from pydantic_ai import RunContext

__all__ = ["AgentSteps", "ModelStepError"]


class ModelStepError(Exception):
    """A model request failed; carries which model and endpoint, for the problem description."""

    def __init__(self, error: Exception, *, model: str, endpoint: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.model = model
        self.endpoint = endpoint


class AgentSteps:
    """Runs single steps of agent executions through a ``Backend``."""

    def __init__(
        self,
        backend: Backend,
        *,
        environ: Mapping[str, str],
        flush_interval: float = 0.1,
        flush_chars: int = 200,
    ) -> None:
        self.backend = backend
        self.environ = environ
        self.flush_interval = flush_interval
        self.flush_chars = flush_chars
        self.mcp = McpPool()  # MCP servers kept running between an execution's tool calls

    async def _open(self, execution_id: str, *, context: bool = True, flush: bool = True) -> OpenExecution:
        """The execution (``RunStopped`` if it ended), with its context unless ``context`` is False."""
        run = await OpenExecution.fetch(
            self.backend,
            execution_id,
            environ=self.environ,
            flush_interval=self.flush_interval if flush else 0,
            flush_chars=self.flush_chars if flush else 1,
        )
        if context:
            await run.load_context()
        return run

    async def _enter(
        self, execution_id: str, key: str, fresh: Any, build: AgentBuild, stack: AsyncExitStack
    ) -> Any:
        """``fresh`` entered for this step; an MCP server's is the one this worker keeps running
        for the execution (started now if none is)."""
        servers = {f"mcp:{server}": server for server, _ in build.toolsets}
        try:
            if key in servers:
                return await stack.enter_async_context(self.mcp.use(execution_id, key, fresh))
            return await stack.enter_async_context(fresh)
        except Exception as exc:
            if key in servers:
                raise mcp_start_error(servers[key], exc) from exc
            raise

    def _discard(self, execution_id: str) -> None:
        """Remove this worker's copy of the execution's workspace (its files are saved already)."""
        import shutil

        folder = workspaces_dir(self.environ) / execution_id
        shutil.rmtree(folder, ignore_errors=True)
        folder.with_name(f"{execution_id}.saved").unlink(missing_ok=True)

    # -- steps -----------------------------------------------------------------------------------
    async def start(self, execution_id: str) -> dict[str, Any]:
        """Mark the execution RUNNING; the prompt, history, instructions, model and tools of its loop."""
        from pydantic import TypeAdapter
        from pydantic_ai.tools import ToolDefinition

        run = await self._open(execution_id, context=False)
        prompt = run.prompt()
        spec = run.execution.spec
        resume = self._resume(run.execution)
        if run.execution.status.phase != execution_pb2.PHASE_RUNNING:
            if resume is None:
                await run.mark_running(prompt)
            else:
                # This run's own checkpoint: a retry of this retry continues from the same place.
                kept = Checkpoint(
                    messages=list(resume["messages"]),
                    pending=[PendingCall(**p) for p in resume["pending"]],
                    inflight=not resume["pending"],
                )
                await run.sink.update(phase=execution_pb2.PHASE_RUNNING, checkpoint=kept.dump(run.redactor))
                await run.sink.emit(
                    "log",
                    text=f"continuing {spec.resumed_from} after its last completed turn "
                    "(the turn that failed starts over; its approvals are asked again)",
                )
        await run.load_context()  # available once the execution runs
        history = await session_history(self.backend, spec.session_id, run.id) if spec.session_id else []
        tools: list[dict[str, Any]] = []
        definition = TypeAdapter(ToolDefinition)
        agent = await run.agent()
        # The workspace is seeded here and saved at once: any worker's tool call restores it.
        if await run.open_workspace(agent.spec, new_turn=resume is None) is not None:
            await run.sink.update(workspace=await run.save_workspace())
        async with AsyncExitStack() as stack:
            build = await run.build(agent, stack)
            ctx = _run_context(build)
            for key, fresh in build.by_key.items():
                toolset = await self._enter(execution_id, key, fresh, build, stack)
                for tool in (await toolset.get_tools(ctx)).values():
                    tools.append(
                        {
                            "toolset": key,
                            "definition": definition.dump_python(tool.tool_def, mode="json"),
                            "maxRetries": tool.max_retries,
                        }
                    )
            plan = {
                "prompt": prompt,
                "history": history,
                "instructions": build.instructions,
                "agent": build.agent.name or "agent",
                "model": {"name": build.model.choice.name, "system": build.model.choice.provider},
                "label": build.model.choice.label,
                "endpoint": build.model.choice.base_url,
                "tools": tools,
                "approval": dict(build.approval),
                "limits": run.run_limits(agent).to_dict(),
                "price": run.price(agent),
                # The run's sums only (its per-request entries would only weigh on the history).
                "spent": dataclasses.asdict(Spent.of(run.execution.status.usage)),
                "outputSchema": run.output_schema(agent),
                "context": build.context.to_dict() if build.context is not None else None,
                "requestLimit": run.limits.agent_requests,
            }
            if resume is not None:
                plan["resume"] = resume
        scrubbed: dict[str, Any] = run.redactor.scrub(plan)
        return scrubbed

    @staticmethod
    def _resume(execution: execution_pb2.Execution) -> dict[str, Any] | None:
        """Where a retry (``stigmer execution retry``: ``resumedFrom``, the old run's checkpoint
        copied) continues: the conversation through the old run's last completed turn and the
        calls that turn ended on (paused for approval), or a conversation saved mid-run (Lite).
        The calls are asked for again: the turn starts over, so they would run again, and a
        decision given on the old run (perhaps by someone else) approved one run of them only.
        ``None``: the run starts from its prompt (a run that failed in its first turn starts
        over, after the session's earlier turns)."""
        if not execution.spec.resumed_from:
            return None
        state = Checkpoint.parse(execution.status.checkpoint)
        if not state.messages or not (state.pending or state.inflight):
            return None
        return {"messages": state.messages, "pending": [p.__dict__ for p in state.pending]}

    async def model_request(self, execution_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one model request (streaming its text to the Backend); the response, scrubbed."""
        from pydantic import TypeAdapter
        from pydantic_ai.messages import (
            PartDeltaEvent,
            PartStartEvent,
            TextPart,
            TextPartDelta,
        )
        from pydantic_ai.models import ModelRequestParameters

        from .._models import build_model

        run = await self._open(execution_id)
        spec = (await run.agent()).spec
        builder = run.builder()
        choice = builder.choose(spec.model if spec.HasField("model") else None)
        run.model_label, run.endpoint = choice.label, choice.base_url
        built = build_model(choice, builder.lookup)
        run.redactor.register(built.api_key)
        default_redactor().register(built.api_key)
        messages = await _with_images(
            self.backend, run.execution, load_messages(list(request.get("messages") or []))
        )
        parameters = TypeAdapter(ModelRequestParameters).validate_python(request.get("parameters") or {})
        settings: Any = {**built.settings, **dict(request.get("settings") or {})} or None
        from .._telemetry import instrumented

        try:
            async with instrumented(built.model).request_stream(messages, settings, parameters) as stream:
                async for event in stream:
                    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                        await run.sink.delta(event.part.content)
                    elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                        await run.sink.delta(event.delta.content_delta)
                response = stream.get()
        except RunStopped:
            raise
        except Exception as exc:
            raise ModelStepError(exc, model=choice.label, endpoint=choice.base_url) from exc
        finally:
            await built.aclose()
        text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
        if text:
            await run.sink.emit("message.assistant", text=text)
        else:
            await run.sink.flush()
        scrubbed: dict[str, Any] = run.redactor.scrub(dump_messages([response])[0])
        return scrubbed

    async def call_tool(
        self, execution_id: str, call: Mapping[str, Any], *, report_call: bool = True
    ) -> dict[str, Any]:
        """Call one tool; ``{"return": value, "usage": ...}`` or ``{"retry": message}``, scrubbed.

        ``report_call=False`` (a retried attempt) skips the ``tool.call`` event already written.
        """
        from pydantic_ai import ModelRetry

        run = await self._open(execution_id)
        agent = await run.agent()
        key, name = str(call["toolset"]), str(call["name"])
        call_id = str(call.get("callId") or "")
        args = dict(call.get("args") or {})
        if report_call:
            await run.sink.emit("tool.call", subject=call_id, data={"tool": name, "args": args})
        # This worker's copy of the workspace, restored from the last save if another worker
        # changed it since (or this one never had it, or a call died here half-way).
        await run.open_workspace(agent.spec, new_turn=False)
        changes = (key.startswith("builtin:") and name in MUTATING) or key == "sub-agents"
        if changes and run.workspace is not None:
            run.workspace.changing()
        async with AsyncExitStack() as stack:
            build = await run.build(agent, stack, recall=False)
            fresh = build.by_key.get(key)
            if fresh is None:
                raise InvalidArgument(f"the agent has no toolset {key} (was its definition changed?)")
            toolset = await self._enter(execution_id, key, fresh, build, stack)
            ctx = _run_context(build, call_id=call_id, tool_name=name)
            tool = (await toolset.get_tools(ctx)).get(name)
            if tool is None:
                raise InvalidArgument(f"tool {name} is no longer offered by {key}")
            from .._telemetry import tool_span

            try:
                with tool_span(name, call_id):
                    value = await toolset.call_tool(name, args, ctx, tool)
            except ModelRetry as retry:
                await run.sink.emit(
                    "tool.result", subject=call_id, data={"tool": name, "result": clip(retry.message)}
                )
                return {"retry": run.redactor.scrub(retry.message)}
        if changes and run.workspace is not None:
            # Saved after each call that may change files, so the workspace survives this worker.
            await run.sink.update(workspace=await run.save_workspace())
        await run.sink.emit("tool.result", subject=call_id, data={"tool": name, "result": clip(value)})
        result = {"return": jsonable(value), "usage": usage_dict(ctx.usage)}
        scrubbed: dict[str, Any] = run.redactor.scrub(result)
        return scrubbed

    async def request_approval(self, execution_id: str, pause: Mapping[str, Any]) -> int:
        """Set WAITING_APPROVAL for one call; the event sequence after which decisions arrive."""
        run = await self._open(execution_id, context=False)
        current = PendingCall(**dict(pause["call"]))
        checkpoint = Checkpoint(
            messages=list(pause.get("messages") or []),
            pending=[PendingCall(**c) for c in pause.get("pending") or []] or [current],
        )
        await run.request_approval(current, checkpoint, usage_message(pause.get("usage")))
        return checkpoint.sequence

    async def decision(self, execution_id: str, wait: Mapping[str, Any]) -> dict[str, Any] | None:
        """The human's decision on a call, once one was recorded after ``sequence``; else ``None``."""
        execution = await self.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if is_terminal(execution.status.phase):
            raise RunStopped(execution)
        call_id = str(wait["callId"])
        checkpoint = Checkpoint(
            pending=[PendingCall(id=call_id, tool=str(wait.get("tool") or ""), args={})],
            requested=call_id,
            sequence=int(wait["sequence"]),
        )
        found = (await read_decisions(self.backend, execution, checkpoint)).get(call_id)
        if found is None:
            return None
        return {"approved": found.approved, "reason": found.reason}

    async def finish(self, execution_id: str, result: Mapping[str, Any]) -> str:
        """Write SUCCEEDED with the output, usage and (in a session) the conversation."""
        await self.mcp.close(execution_id)
        self._discard(execution_id)
        run = await self._open(execution_id, context=False)
        usage = usage_message(result.get("usage")) or execution_pb2.Usage()
        output = result.get("output")
        output = "" if output is None else output
        done = await run.succeed(output, usage, list(result.get("messages") or []))
        return execution_pb2.Phase.Name(done.status.phase)

    async def fail(
        self, execution_id: str, problem: Mapping[str, Any], usage: Mapping[str, Any] | None = None
    ) -> str:
        """Write FAILED with ``problem`` (an ``ExecutionError`` as JSON) and the usage not reported yet."""
        await self.mcp.close(execution_id)
        self._discard(execution_id)
        run = await self._open(execution_id, context=False, flush=False)
        error = json_format.ParseDict(
            dict(problem), execution_pb2.ExecutionError(), ignore_unknown_fields=True
        )
        done = await run.fail(error, usage=usage_message(usage))
        return execution_pb2.Phase.Name(done.status.phase)

    async def cancel(self, execution_id: str) -> str:
        """Write CANCELLED unless the execution already ended (cancelled through the Backend, say);
        the phase it has."""
        await self.mcp.close(execution_id)
        self._discard(execution_id)
        try:
            run = await self._open(execution_id, context=False, flush=False)
        except RunStopped as stopped:
            return execution_pb2.Phase.Name(stopped.execution.status.phase)
        done = await run.cancel()
        return execution_pb2.Phase.Name(done.status.phase)


def _run_context(build: AgentBuild, *, call_id: str = "", tool_name: str = "") -> RunContext[Any]:
    from pydantic_ai import RunContext
    from pydantic_ai.usage import RunUsage

    return RunContext(
        deps=None,
        model=build.model.model,
        usage=RunUsage(),
        tool_call_id=call_id or None,
        tool_name=tool_name or None,
        tool_call_approved=True,  # the loop asked (and got) any approval before calling
    )


async def _with_images(backend: Any, execution: execution_pb2.Execution, messages: list[Any]) -> list[Any]:
    """``messages`` with the run's image attachments added to its prompt, for this request only.

    On Temporal the conversation travels through the workflow's history as text: the images are
    read from their artifacts here, in the activity, and go to the model with the first user
    prompt of this run (the one that is the execution's message) on every request, as in Lite.
    """
    wanted = [a for a in execution.spec.attachments if a.media_type.startswith("image/")]
    if not wanted or not execution.spec.message:
        return messages
    from dataclasses import replace

    from pydantic_ai import BinaryContent
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    out = list(messages)
    for index, message in enumerate(out):
        if not isinstance(message, ModelRequest):
            continue
        for p, part in enumerate(message.parts):
            if isinstance(part, UserPromptPart) and part.content == execution.spec.message:
                images = []
                for attachment in wanted:
                    blob = await backend.get_artifact(svc.GetArtifactRequest(key=attachment.artifact))
                    images.append(BinaryContent(data=blob.content, media_type=attachment.media_type))
                parts = list(message.parts)
                parts[p] = replace(part, content=[part.content, *images])
                out[index] = replace(message, parts=parts)
                return out
    return messages
