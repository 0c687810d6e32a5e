"""Starting executions and seeing them through: find the target, create, run (Lite) or watch, report."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.cli._backend import Session, load_runner_plugin
from stigmer.cli._errors import CliError
from stigmer.cli._follow import Follow, approval_hint, interactive_terminal
from stigmer.cli._kinds import suggest
from stigmer.cli._output import Output, echo, echo_err, emit_json, emit_yaml
from stigmer.cli._render import Renderer
from stigmer.cli._view import execution_to_dict, phase_name

if TYPE_CHECKING:
    from stigmer.core import Backend, Runner
    from stigmer.proto.v1 import execution_pb2

__all__ = [
    "RunRequest",
    "Started",
    "approval_hint",
    "detach_on_interrupt",
    "drive",
    "interrupted_hint",
    "not_found",
    "report",
    "spawn_background",
    "start",
]

_RUNNER_OF = {
    "Workflow": "workflow",
    "Agent": "agent",
    "WorkflowExecution": "workflow",
    "AgentExecution": "agent",
}


@dataclass
class RunRequest:
    """What the user asked to run."""

    kind: str  # Workflow or Agent
    name: str
    input: Any = None
    has_input: bool = False
    message: str = ""
    session_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


async def not_found(backend: Backend, kinds: list[str], name: str) -> CliError:
    """An error for a missing name, suggesting the closest existing one of those kinds."""
    from stigmer.core import resource_names

    candidates: list[str] = []
    for kind in kinds:
        candidates.extend(await resource_names(backend, kind))
    what = " or ".join(k.lower() for k in kinds)
    hint = suggest(name, candidates)
    if not hint and not candidates:
        hint = f"; there is no {what} yet: `stigmer apply -f FILE` creates one"
    return CliError(f"no {what} named '{name}'{hint}")


async def create(session: Session, req: RunRequest) -> execution_pb2.Execution:
    """Create the execution (PENDING) through the backend."""
    from google.protobuf import json_format, struct_pb2
    from stigmer.core import resource_exists
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2

    if not await resource_exists(session.backend, req.kind, req.name):
        raise await not_found(session.backend, [req.kind], req.name)
    if req.kind == "Agent" and not req.message and not req.has_input:
        raise CliError(f'an agent run needs a message: `stigmer agent execute {req.name} "your message"`')
    if req.kind == "Workflow" and req.message:
        raise CliError("--message is for agents; give a workflow its input with --input JSON")
    if req.kind == "Workflow" and req.session_id:
        raise CliError("--session is for agents")
    spec = execution_pb2.ExecutionSpec(
        target=meta_pb2.ResourceRef(kind=req.kind, name=req.name),
        message=req.message,
        session_id=await session_for(session.backend, req.name, req.session_id) if req.session_id else "",
        env=req.env,
    )
    if req.has_input:
        value = struct_pb2.Value()
        json_format.ParseDict(req.input, value)
        spec.input.CopyFrom(value)
    return await session.backend.create_execution(
        svc.CreateExecutionRequest(spec=spec, runtime_secrets=req.secrets)
    )


async def session_for(backend: Backend, agent: str, name_or_id: str) -> str:
    """The id of a Session of ``agent``: given as an id (``ses_...``), or by name (created on first use)."""
    from stigmer.core import NotFound, unwrap
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2, resource_pb2, session_pb2

    if name_or_id.startswith("ses_"):
        return name_or_id
    try:
        found = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Session", name=name_or_id)))
    except NotFound:
        created = session_pb2.Session(
            api_version="stigmer.ai/v1",
            kind="Session",
            metadata=meta_pb2.Metadata(name=name_or_id),
            spec=session_pb2.SessionSpec(agent=meta_pb2.ResourceRef(kind="Agent", name=agent)),
        )
        response = await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(session=created)))
        found = response.resource
    existing: session_pb2.Session = unwrap(found)  # type: ignore[assignment]
    if existing.spec.agent.name and existing.spec.agent.name != agent:
        raise CliError(
            f"session '{name_or_id}' belongs to agent '{existing.spec.agent.name}', not '{agent}'; "
            "pick another session name"
        )
    return existing.metadata.id


def runner_for(session: Session, kind: str) -> Runner | None:
    """The in-process runner in a local context (None in a cloud context: the server runs it)."""
    if not session.local:
        return None
    return load_runner_plugin(_RUNNER_OF[kind])


async def drive(
    session: Session,
    execution_id: str,
    output: Output,
    *,
    runner: Runner | None,
    stop_on_approval: bool = True,
    after_sequence: int = 0,
) -> execution_pb2.Execution:
    """Follow an execution (running it in-process when ``runner`` is given) until it ends or waits."""
    renderer = Renderer() if output is Output.table else None
    follow = Follow(
        backend=session.backend,
        execution_id=execution_id,
        runner=runner,
        renderer=renderer,
        interactive=interactive_terminal(),
        stop_on_approval=stop_on_approval,
        after_sequence=after_sequence,
    )
    return await follow.run()


@dataclass
class Started:
    """Filled in as soon as the execution exists (for the Ctrl-C message)."""

    execution_id: str = ""
    local: bool = True
    context: str = ""


async def start(
    session: Session, req: RunRequest, output: Output, detach: bool, started: Started | None = None
) -> execution_pb2.Execution:
    """Create and (unless detached) follow an execution; Lite mode runs it here."""
    runner = None if detach else runner_for(session, req.kind)
    if detach and session.local:
        load_runner_plugin(_RUNNER_OF[req.kind])  # fail before creating anything
    ex = await create(session, req)
    if started is not None:
        started.execution_id = ex.metadata.id
        started.local = session.local
        started.context = session.context.name
    if detach:
        if session.local:
            spawn_background(ex.metadata.id, session.context.name)
        return ex
    if output is Output.table:
        echo_err(f"{ex.kind} {ex.metadata.id} started")
    return await drive(session, ex.metadata.id, output, runner=runner)


def spawn_background(execution_id: str, context: str) -> None:
    """Lite ``--detach``: a detached ``stigmer execution resume`` process runs the execution."""
    from stigmer.cli._config import load_settings
    from stigmer.core import open_private, private_dir

    settings = load_settings()
    logs = private_dir(settings.home / "logs")
    env = dict(os.environ, STIGMER_CONTEXT=context)
    with open_private(logs / f"{execution_id}.log") as log:
        subprocess.Popen(
            [sys.executable, "-m", "stigmer.cli", "execution", "resume", execution_id, "-o", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=env,
        )


def report(ex: execution_pb2.Execution, output: Output, *, streamed: bool = True) -> int:
    """Print the end of a run (summary or one JSON/YAML object); returns the exit code."""
    phase = phase_name(ex.status.phase)
    data = execution_to_dict(ex)
    code = 0 if phase in ("SUCCEEDED", "WAITING_APPROVAL", "PENDING", "RUNNING") else 1
    if output is Output.json:
        emit_json(data)
        return code
    if output is Output.yaml:
        emit_yaml([data])
        return code
    ex_id = ex.metadata.id
    if phase == "SUCCEEDED":
        out = data["output"]
        if out is not None:
            if isinstance(out, str):
                if not streamed:
                    echo(out)
            else:
                import json

                echo(json.dumps(out, indent=2, ensure_ascii=False))
        echo_err(f"{ex.kind} {ex_id} succeeded{_duration(ex)}")
    elif phase == "FAILED":
        err = data["error"] or {}
        detail = ": ".join(x for x in (err.get("title"), err.get("detail")) if x) or "no error details"
        where = f" at {err['instance']}" if err.get("instance") else ""
        echo_err(f"error: {ex.kind} {ex_id} failed{where}: {detail}")
    elif phase == "CANCELLED":
        echo_err(f"{ex.kind} {ex_id} was cancelled")
    elif phase == "WAITING_APPROVAL":
        pass  # the follower already said how to answer
    else:
        echo_err(f"{ex.kind} {ex_id} is {phase}: follow it with `stigmer execution logs -f {ex_id}`")
    return code


def interrupted_hint(execution_id: str, local: bool) -> str:
    """What Ctrl-C did: detached (the run goes on) and how to re-attach."""
    where = " in a background process" if local else ""
    return (
        f"detached; execution {execution_id} goes on{where}: "
        f"re-attach with `stigmer execution logs -f {execution_id}` "
        f"(stop it with `stigmer execution cancel {execution_id}`)"
    )


def detach_on_interrupt(started: Started) -> None:
    """After Ctrl-C: hand a Lite run over to a background process and say how to re-attach.

    In a cloud context the server goes on running the execution; nothing is needed but the hint.
    """
    ex_id = started.execution_id
    if not ex_id:
        return
    if not started.local:
        echo_err("\n" + interrupted_hint(ex_id, local=False))
        return

    async def phase() -> str:
        from stigmer.cli._backend import open_session
        from stigmer.proto.v1 import backend_service_pb2 as svc

        async with open_session() as session:
            ex = await session.backend.get_execution(svc.GetExecutionRequest(id=ex_id))
            return phase_name(ex.status.phase)

    import asyncio

    current = asyncio.run(phase())
    if current in ("SUCCEEDED", "FAILED", "CANCELLED"):
        echo_err(f"\nexecution {ex_id} already ended ({current}): `stigmer execution get {ex_id}`")
    elif current == "WAITING_APPROVAL":
        echo_err("\n" + approval_hint(ex_id))
    else:
        spawn_background(ex_id, started.context)
        echo_err("\n" + interrupted_hint(ex_id, local=True))


def _duration(ex: execution_pb2.Execution) -> str:
    start, end = ex.status.started_at, ex.status.finished_at
    if not start.seconds or not end.seconds:
        return ""
    seconds = (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9
    return f" in {seconds:.2f}s"
