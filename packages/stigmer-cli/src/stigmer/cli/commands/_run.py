"""``stigmer run``, ``stigmer agent execute`` and ``stigmer workflow run``; Ctrl-C detaches."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_agent, complete_runnable, complete_workflow
from stigmer.cli.commands._params import parse_env, parse_input, parse_secret_file, read_secret_value
from stigmer.cli.output._format import Output, OutputOption, echo, echo_err
from stigmer.cli.output._live import approval_hint, follow, interrupted_hint, report
from stigmer.cli.output._render import continue_hint

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2
    from stigmer.sdk import AsyncExecution, AsyncStigmer

__all__ = [
    "Started",
    "Stopped",
    "agent_app",
    "detach_on_interrupt",
    "exit_following",
    "follow_here",
    "run_app",
    "spawn_background",
    "stopped_hint",
    "workflow_app",
]

CREATE_HINT = "`stigmer apply -f FILE` creates one"

run_app = typer.Typer(add_completion=False)
agent_app = typer.Typer(add_completion=False, help="Execute agents.", no_args_is_help=True)
workflow_app = typer.Typer(add_completion=False, help="Run workflows.", no_args_is_help=True)

InputOption = Annotated[
    str | None,
    typer.Option("--input", "-i", help="Input as JSON, or @file.json / @file.yaml.", show_default=False),
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Run-time variable K=V (repeatable).", show_default=False),
]
SecretOption = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="Secret name whose value is asked for (hidden) and given to this run only (repeatable).",
        show_default=False,
    ),
]
SecretFileOption = Annotated[
    Path | None,
    typer.Option("--secret-file", help="File of KEY=VALUE secret lines for this run.", show_default=False),
]
EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file", help="File of KEY=VALUE run-time variable lines (like --env).", show_default=False
    ),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="Agents: the model of this run, NAME or PROVIDER:NAME (e.g. gpt-4o-mini, anthropic:claude-sonnet-4-5); "
        "what it leaves out comes from the agent's model.",
        show_default=False,
    ),
]
AutoApproveOption = Annotated[
    bool,
    typer.Option("--auto-approve", help="Approve every tool call that asks for approval, without asking."),
]
JsonEventsOption = Annotated[
    bool,
    typer.Option("--json", help="Print every event as one JSON line (NDJSON), then the result as one line."),
]
DetachOption = Annotated[
    bool, typer.Option("--detach/--follow", "-d", help="Print only the execution id and return at once.")
]
AttachOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--attach",
        "-a",
        help="Agents: put this file into the agent's workspace (attachments/NAME) and tell it (repeatable).",
        show_default=False,
    ),
]
SessionOption = Annotated[
    str,
    typer.Option(
        "--session",
        help="Agents: continue the session with this name (started on first use) or id (ses_...); "
        "without it, the run starts a new session.",
        show_default=False,
    ),
]


MaxRequestsOption = Annotated[
    int | None,
    typer.Option(
        "--max-requests", min=1, help="Agents: model requests this run may make.", show_default=False
    ),
]
MaxToolCallsOption = Annotated[
    int | None,
    typer.Option("--max-tool-calls", min=1, help="Agents: tool calls this run may make.", show_default=False),
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens", min=1, help="Agents: input + output tokens this run may use.", show_default=False
    ),
]
MaxCostOption = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        min=0.0,
        metavar="USD",
        help="Agents: what this run may cost, in US dollars.",
        show_default=False,
    ),
]
OutputSchemaOption = Annotated[
    Path | None,
    typer.Option(
        "--output-schema",
        help="Agents: a JSON Schema file (JSON or YAML); the run's output is a JSON value valid against it.",
        show_default=False,
    ),
]


@dataclass
class RunRequest:
    """What the user asked to run."""

    kind: str  # Workflow or Agent ("": the backend finds which, as it creates the run)
    name: str
    input: Any = None
    has_input: bool = False
    message: str = ""
    session_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    auto_approve: bool = False
    events_json: bool = False  # --json: every event as one JSON line (NDJSON), then the result
    limits: dict[str, float] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    model: str = ""  # --model: NAME or PROVIDER:NAME
    attachments: list[Path] = field(default_factory=list)


@dataclass
class Started:
    """Filled in as soon as the execution exists (for the Ctrl-C message)."""

    execution_id: str = ""
    local: bool = True
    context: str = ""
    stopped: bool = False  # a second Ctrl-C stopped it here
    runs_here: bool = True  # False: Ctrl-C came while this process ran nothing of it


def _either_kind(req: RunRequest) -> bool:
    """Whether the request suits a workflow and an agent alike (an input, no agent options)."""
    agent_only = req.message or req.session_id or req.limits or req.model or req.attachments
    return req.has_input and not agent_only and req.output_schema is None


async def _check(client: AsyncStigmer, req: RunRequest, *, found: bool = False) -> None:
    """The request names an existing target (unless ``found`` already, or left to the backend)
    and suits its kind (said in command-line terms)."""
    if req.kind and not found and not await client.exists(req.kind, req.name):
        raise await client.not_found([req.kind], req.name, create_hint=CREATE_HINT)
    if req.kind == "Agent" and not req.message and not req.has_input:
        raise CliError(f'an agent run needs a message: `stigmer agent execute {req.name} "your message"`')
    if req.kind == "Workflow" and req.message:
        raise CliError("--message is for agents; give a workflow its input with --input JSON")
    if req.kind == "Workflow" and req.session_id:
        raise CliError("--session is for agents")
    if req.kind == "Workflow" and req.model:
        raise CliError("--model is for agents (a workflow's call: agent uses its agent's model)")
    if req.kind == "Workflow" and (req.limits or req.output_schema is not None):
        raise CliError(
            "--max-requests, --max-tool-calls, --max-tokens, --max-cost and --output-schema are for agents"
        )
    if req.kind == "Workflow" and req.attachments:
        raise CliError("--attach is for agents")
    for path in req.attachments:
        if not path.is_file():
            raise CliError(f"--attach {path}: no such file")


async def start(
    client: AsyncStigmer,
    req: RunRequest,
    output: Output,
    detach: bool,
    started: Started,
    *,
    found: bool = False,
) -> execution_pb2.Execution:
    """Create and (unless detached) follow an execution; in a local context it runs here."""
    await _check(client, req, found=found)
    handle = await client.run(
        req.name,
        kind=req.kind or None,
        input=_input_value(req.input) if req.has_input else None,
        message=req.message or None,
        env=req.env,
        secrets=req.secrets,
        session=req.session_id or None,
        start=not detach,
        limits=req.limits or None,
        output_schema=req.output_schema,
        model=req.model or None,
        attachments=list(req.attachments),
    )
    started.execution_id = handle.id
    started.local = client.local
    started.context = client.context
    if detach:
        if client.local:
            spawn_background(handle.id, client.context)
        return handle.execution
    if output is Output.table:
        echo_err(f"{handle.kind} {handle.id} started")
    options: dict[str, Any] = {"approve_all": req.auto_approve}
    if req.events_json:
        options["observe"] = _print_event
    if handle.in_process:
        return await follow_here(handle, output, started, **options)
    return await follow(handle, output, **options)


def _print_event(ev: execution_pb2.ExecutionEvent) -> None:
    """``--json``: one event as one line of JSON (the shape of ``execution logs -o json``)."""
    import json

    from stigmer.cli.output._view import event_to_dict

    sys.stdout.write(json.dumps(event_to_dict(ev), ensure_ascii=False) + "\n")
    sys.stdout.flush()


class Stopped(Exception):
    """A second Ctrl-C stopped the run in this process where it was."""


async def follow_here(
    handle: AsyncExecution, output: Output, started: Started, **options: Any
) -> execution_pb2.Execution:
    """Follow a run that runs in this process (Lite). The first Ctrl-C hands it over at its next
    step boundary — the step in flight finishes here, a ``wait`` at once (its deadline is saved) —
    and ``KeyboardInterrupt`` then says so to the caller (which starts the background process);
    a second Ctrl-C stops it where it is (:class:`Stopped`)."""
    import asyncio
    import signal

    from stigmer.core import is_terminal

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    steps = StepsInFlight()

    def interrupted() -> None:
        if not handle.handed_over and handle.hand_over():
            echo_err("\n" + detaching_hint(steps.describe(handle.kind)))
            return
        if handle.handed_over:
            started.stopped = True  # the second Ctrl-C: stop now
        else:
            started.runs_here = False  # nothing runs here (a prompt; a run going on elsewhere)
        if main is not None:
            main.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here: Ctrl-C as before
        return await follow(handle, output, **options)
    observe = options.pop("observe", None)

    def seen(ev: execution_pb2.ExecutionEvent) -> None:
        steps.event(ev)
        if observe is not None:
            observe(ev)

    try:
        ex = await follow(handle, output, observe=seen, **options)
    except asyncio.CancelledError:
        if started.stopped:
            raise Stopped() from None
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if handle.handed_over and not is_terminal(ex.status.phase):
        raise KeyboardInterrupt  # handed over at a step boundary: the caller detaches
    if handle.handed_over:
        echo_err("(the run ended before it was handed over: nothing goes on in the background)")
    return ex


def detaching_hint(step: str) -> str:
    return f"detaching: letting {step} finish, then the run continues in the background (Ctrl-C again to stop it now)"


def stopped_hint(execution_id: str) -> str:
    return (
        f"stopped; execution {execution_id} stays RUNNING with its progress saved (the step that was "
        f"under way runs again on resume): `stigmer execution resume {execution_id}` continues it, "
        f"`stigmer execution cancel {execution_id}` ends it"
    )


class StepsInFlight:
    """The steps a run has under way, from its events (for the Ctrl-C message)."""

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}
        self.tools: dict[str, str] = {}

    def event(self, ev: execution_pb2.ExecutionEvent) -> None:
        if ev.type == "task.started":
            self.tasks[ev.subject] = ev.subject.rstrip("/").rsplit("/", 1)[-1] or ev.subject
        elif ev.type in ("task.completed", "task.failed"):
            self.tasks.pop(ev.subject, None)
        elif ev.type == "tool.call":
            tool = ev.data.struct_value.fields.get("tool")
            self.tools[ev.subject] = tool.string_value if tool is not None else ev.subject
        elif ev.type == "tool.result":
            self.tools.pop(ev.subject, None)

    def describe(self, kind: str) -> str:
        if kind == "AgentExecution":
            if self.tools:
                return "tool call " + ", ".join(sorted(set(self.tools.values())))
            return "the model request in flight (and the tool calls it asks for)"
        if self.tasks:
            name = list(self.tasks.values())[-1]
            return f"task {name} (a wait hands over at once: it keeps its deadline)"
        return "the step in flight"


def _input_value(data: Any) -> Any:
    """``--input`` as a ``google.protobuf.Value`` (so ``--input null`` is a JSON null, not no input)."""
    from google.protobuf import json_format, struct_pb2

    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


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


def detach_on_interrupt(started: Started) -> None:
    """After Ctrl-C: hand a Lite run over to a background process and say how to re-attach.

    In a cloud context the server goes on running the execution; nothing is needed but the hint.
    """
    ex_id = started.execution_id
    if not ex_id:
        return

    async def phase() -> str:
        from stigmer.core import phase_name

        async with connect() as client:
            ex = await client.get_execution(ex_id)
            return phase_name(ex.status.phase)

    try:
        current = run_async(phase())
    except Exception:  # the hint without the phase
        current = ""
    from stigmer.core import is_terminal

    if current and is_terminal(current):
        echo_err(f"\nexecution {ex_id} already ended ({current}): `stigmer execution get {ex_id}`")
    elif current == "WAITING_APPROVAL":
        echo_err("\n" + approval_hint(ex_id))  # nothing was answered
    elif started.local and started.runs_here:
        spawn_background(ex_id, started.context)
        echo_err("\n" + interrupted_hint(ex_id, local=True))
    else:
        echo_err("\n" + interrupted_hint(ex_id, local=False))


def _exit_code(ex: execution_pb2.Execution) -> int:
    from stigmer.core import phase_name

    return 0 if phase_name(ex.status.phase) in ("SUCCEEDED", "WAITING_APPROVAL", "PENDING", "RUNNING") else 1


@dataclass
class Habits:
    """Options upstream Stigmer's users type (docs/migrating-from-upstream.md)."""

    env_file: Path | None = None
    model: str = ""
    auto_approve: bool = False
    json: bool = False


def _request(
    kind: str,
    name: str,
    input: str | None,
    message: str,
    session: str,
    env: list[str] | None,
    secret: list[str] | None,
    secret_file: Path | None,
    habits: Habits | None = None,
    attach: list[Path] | None = None,
) -> RunRequest:
    habits = habits or Habits()
    secrets: dict[str, str] = parse_secret_file(secret_file) if secret_file else {}
    for key in secret or []:
        secrets[key] = read_secret_value(key)
    variables = parse_secret_file(habits.env_file, "--env-file") if habits.env_file else {}
    variables.update(parse_env(env or []))
    req = RunRequest(
        kind=kind,
        name=name,
        message=message,
        session_id=session,
        env=variables,
        secrets=secrets,
        auto_approve=habits.auto_approve,
        events_json=habits.json,
        model=habits.model,
        attachments=list(attach or []),
    )
    if input is not None:
        req.input = parse_input(input)
        req.has_input = True
    return req


def _agent_controls(
    req: RunRequest,
    max_requests: int | None,
    max_tool_calls: int | None,
    max_tokens: int | None,
    max_cost: float | None,
    output_schema: Path | None,
) -> RunRequest:
    """Add the agent run's limits and output schema (the ``--max-*`` and ``--output-schema`` flags)."""
    given = {
        "max_requests": max_requests,
        "max_tool_calls": max_tool_calls,
        "max_tokens": max_tokens,
        "max_cost_usd": max_cost,
    }
    req.limits = {k: v for k, v in given.items() if v is not None}
    if output_schema is not None:
        schema = parse_input(f"@{output_schema}", "--output-schema")
        if not isinstance(schema, dict):
            raise CliError(
                f"--output-schema {output_schema}: a JSON Schema is an object, not {type(schema).__name__}"
            )
        req.output_schema = schema
    return req


def exit_following(run: Coroutine[Any, Any, int], started: Started) -> NoReturn:
    """Run ``run`` (start and follow an execution; its exit code) and exit with its code; a
    Ctrl-C detaches (or, a second time, stops the run here) and exits 130."""
    try:
        code = run_async(run)
    except Stopped:
        echo_err("\n" + stopped_hint(started.execution_id))
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        detach_on_interrupt(started)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _execute(req: RunRequest, output: Output, detach: bool, *, find: bool = False) -> None:
    started = Started()
    if req.events_json:  # the events are the output: no table rendering around them
        output = Output.json

    async def go() -> int:
        async with connect() as client:
            choose = (
                f"say which: `stigmer workflow run {req.name}` or `stigmer agent execute {req.name} MESSAGE`"
            )
            if find and not client.local and _either_kind(req):
                # Against a server: created in one call, the server finding the workflow or agent.
                from stigmer.core import RUNNABLE_KINDS, InvalidArgument, NotFound

                req.kind = ""
                try:
                    ex = await start(client, req, output, detach, started)
                except NotFound:
                    if started.execution_id:
                        raise
                    raise await client.not_found(
                        list(RUNNABLE_KINDS), req.name, create_hint=CREATE_HINT
                    ) from None
                except InvalidArgument as exc:
                    if started.execution_id or "kind" not in exc.field_paths:
                        raise
                    raise InvalidArgument(
                        f"'{req.name}' names both a workflow and an agent; {choose}"
                    ) from None
            else:
                if find:
                    req.kind = await client.find_target(req.name, choose_hint=choose, create_hint=CREATE_HINT)
                ex = await start(client, req, output, detach, started, found=find)
            if detach:
                if output is Output.table:
                    echo(ex.metadata.id)
                    return 0
                return report(ex, output)
            if req.events_json:  # the last line: the result, as `run -o json` gives it (one line)
                import json

                from stigmer.cli.output._view import execution_to_dict

                echo(json.dumps(execution_to_dict(ex), ensure_ascii=False))
                return _exit_code(ex)
            code = report(ex, output, streamed=True)
            if output is Output.table and (hint := continue_hint(ex)):
                echo_err(hint)
            return code

    exit_following(go(), started)


@run_app.command("run")
def run(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Name of a workflow or an agent (none: choose one of this project's).",
            show_default=False,
            autocompletion=complete_runnable,
        ),
    ] = None,
    rest: Annotated[
        list[str] | None,
        typer.Argument(
            help="After `workflow` or `agent`: the name (and an agent's message).",
            show_default=False,
            metavar="[NAME [MESSAGE]]",
        ),
    ] = None,
    input: InputOption = None,
    message: Annotated[str, typer.Option("--message", "-m", help="User message (agents).")] = "",
    session: SessionOption = "",
    attach: AttachOption = None,
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    max_requests: MaxRequestsOption = None,
    max_tool_calls: MaxToolCallsOption = None,
    max_tokens: MaxTokensOption = None,
    max_cost: MaxCostOption = None,
    output_schema: OutputSchemaOption = None,
    output: OutputOption = Output.table,
    env_file: EnvFileOption = None,
    model: ModelOption = "",
    auto_approve: AutoApproveOption = False,
    json_events: JsonEventsOption = False,
) -> None:
    """Run the workflow or agent called NAME and follow it live (exit 0 on success, 1 on failure).

    Without NAME in a project folder (`stigmer init`), choose one of its workflows and agents at
    a prompt. `run workflow NAME` and `run agent NAME [MESSAGE]` say which kind NAME is."""
    kind = ""
    if rest:
        if name not in ("workflow", "agent") or len(rest) > (2 if name == "agent" else 1):
            raise CliError(
                "too many arguments: `stigmer run NAME`, `stigmer run workflow NAME` or "
                "`stigmer run agent NAME [MESSAGE]`"
            )
        kind, name = ("Workflow" if name == "workflow" else "Agent"), rest[0]
        if len(rest) == 2:
            if message:
                raise CliError("give the message once: as MESSAGE or with --message")
            message = rest[1]
    if name is None:
        from stigmer.cli.commands._pick import choose_runnable

        kind, name, message = choose_runnable(message)
    habits = Habits(env_file, model, auto_approve, json_events)
    req = _request(kind, name, input, message, session, env, secret, secret_file, habits, attach)
    _agent_controls(req, max_requests, max_tool_calls, max_tokens, max_cost, output_schema)
    _execute(req, output, detach, find=not kind)


@agent_app.command("execute")
def agent_execute(
    agent: Annotated[str, typer.Argument(help="Agent name.", autocompletion=complete_agent)],
    message: Annotated[str, typer.Argument(help="What to ask the agent.")],
    session: SessionOption = "",
    attach: AttachOption = None,
    input: InputOption = None,
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    max_requests: MaxRequestsOption = None,
    max_tool_calls: MaxToolCallsOption = None,
    max_tokens: MaxTokensOption = None,
    max_cost: MaxCostOption = None,
    output_schema: OutputSchemaOption = None,
    output: OutputOption = Output.table,
    env_file: EnvFileOption = None,
    model: ModelOption = "",
    auto_approve: AutoApproveOption = False,
    json_events: JsonEventsOption = False,
) -> None:
    """Send MESSAGE to AGENT and stream its answer, tool calls and approvals."""
    habits = Habits(env_file, model, auto_approve, json_events)
    req = _request("Agent", agent, input, message, session, env, secret, secret_file, habits, attach)
    _agent_controls(req, max_requests, max_tool_calls, max_tokens, max_cost, output_schema)
    _execute(req, output, detach)


@workflow_app.command("run")
def workflow_run(
    name: Annotated[str, typer.Argument(help="Workflow name.", autocompletion=complete_workflow)],
    input: InputOption = None,
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    output: OutputOption = Output.table,
    env_file: EnvFileOption = None,
    auto_approve: AutoApproveOption = False,
    json_events: JsonEventsOption = False,
) -> None:
    """Run the workflow NAME and show its tasks as they start and finish."""
    habits = Habits(env_file, "", auto_approve, json_events)
    req = _request("Workflow", name, input, "", "", env, secret, secret_file, habits)
    _execute(req, output, detach)


@agent_app.callback()
def _agent_group() -> None:
    """Execute agents."""


@workflow_app.callback()
def _workflow_group() -> None:
    """Run workflows."""
