"""``stigmer execution list|get|logs|cancel|approve|reject|resume|rerun|retry|send-event``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_execution, complete_pending_execution
from stigmer.cli.commands._run import (
    SecretFileOption,
    SecretOption,
    Started,
    exit_following,
    follow_here,
)
from stigmer.cli.output._format import (
    Output,
    OutputOption,
    age,
    echo,
    echo_err,
    emit_json,
    emit_yaml,
    print_table,
)
from stigmer.cli.output._live import follow, report
from stigmer.cli.output._render import Renderer, continue_hint
from stigmer.cli.output._view import event_to_dict, execution_to_dict

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2
    from stigmer.sdk import AsyncStigmer

__all__ = ["duration", "execution_app", "list_executions", "parse_when", "print_executions"]

execution_app = typer.Typer(
    add_completion=False, help="List, follow, approve and cancel executions.", no_args_is_help=True
)

IdArg = Annotated[
    str, typer.Argument(help="Execution id (aex_... or wex_...).", autocompletion=complete_execution)
]
PendingIdArg = Annotated[
    str,
    typer.Argument(
        help="Execution id (aex_... or wex_...) waiting for an approval.",
        autocompletion=complete_pending_execution,
    ),
]


async def _get(client: AsyncStigmer, execution_id: str) -> execution_pb2.Execution:
    from stigmer.core import NotFound

    try:
        return await client.get_execution(execution_id)
    except NotFound:
        raise CliError(
            f"no execution with id '{execution_id}'; list them with `stigmer execution list`"
        ) from None


async def list_executions(
    client: AsyncStigmer,
    *,
    kind: str = "",
    target: str = "",
    phase: str | Sequence[str] = "",
    limit: int = 50,
    labels: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[execution_pb2.Execution]:
    from stigmer.core import PHASE_NAMES

    if target:
        target_kind, _, target_name = target.rpartition("/")
        target_kind = _target_kind(target_kind)
        target = f"{target_kind}/{target_name}" if target_kind else target_name
    phases = ([phase] if phase else []) if isinstance(phase, str) else list(phase)
    for one in phases:
        value = one.upper().removeprefix("PHASE_")
        known = [name for number, name in sorted(PHASE_NAMES.items()) if number]
        if value not in known:
            raise CliError(f"unknown phase '{one}' (phases: {', '.join(known)})")
    page = await client.list_executions(
        kind=kind,
        target=target,
        phase=phases[0] if len(phases) == 1 else phases,
        limit=limit,
        labels=",".join(labels) or None,
        since=since,
        until=until,
    )
    return list(page.executions)


def _target_kind(text: str) -> str:
    if not text:
        return ""
    from stigmer.cli.commands._params import kind_argument
    from stigmer.core import RUNNABLE_KINDS

    kind = kind_argument(text)
    if kind not in RUNNABLE_KINDS:
        raise CliError("--target takes NAME, agent/NAME or workflow/NAME")
    return kind


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``--since`` / ``--until``: a duration back from now (``90s``, ``15m``, ``1h``, ``2d``,
    ``1w``, or several: ``1h30m``) or an ISO 8601 date or time (UTC unless it says otherwise)."""
    import re

    value = text.strip()
    now = now or datetime.now(UTC)
    if re.fullmatch(r"(\d+[smhdw])+", value):
        seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", value))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} reaches back too far") from None
    try:
        when = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 15m, 1h, 2d, 1w) nor an ISO time "
            "(2026-12-05 or 2026-12-05T10:00:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _when_option(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def duration(ex: execution_pb2.Execution, now: datetime | None = None) -> str:
    """How long it ran (``1.2s``, ``3m4s``, ``2h5m``); a running one: so far; ``-`` if it never ran."""
    start, end = ex.status.started_at, ex.status.finished_at
    if not start.seconds and not start.nanos:
        return "-"
    if end.seconds or end.nanos:
        seconds = (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9
    else:
        seconds = ((now or datetime.now(UTC)) - start.ToDatetime(tzinfo=UTC)).total_seconds()
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s"
    return f"{whole // 3600}h{whole % 3600 // 60}m"


def _error_title(ex: execution_pb2.Execution, limit: int = 40) -> str:
    title = ex.status.error.title if ex.status.HasField("error") else ""
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


_HEADERS = ["ID", "KIND", "TARGET", "PHASE", "AGE", "DURATION", "ERROR"]


def _row(ex: execution_pb2.Execution) -> list[str]:
    from stigmer.core import phase_name

    return [
        ex.metadata.id,
        ex.kind.removesuffix("Execution").lower(),
        ex.spec.target.name or ex.spec.target.id,
        phase_name(ex.status.phase),
        age(ex.metadata.created_at),
        duration(ex),
        _error_title(ex) or "-",
    ]


def print_executions(executions: list[execution_pb2.Execution], output: Output) -> None:
    """An execution list in the chosen format (JSON: an array of execution objects)."""
    if output is Output.json:
        emit_json([execution_to_dict(ex) for ex in executions])
        return
    if output is Output.yaml:
        emit_yaml([execution_to_dict(ex) for ex in executions])
        return
    print_table(_HEADERS, [_row(ex) for ex in executions], empty="no executions")


WATCH_INTERVAL = 1.0  # seconds between two looks in --watch


@execution_app.command("list")
def list_(
    target: Annotated[
        str, typer.Option("--target", "-t", help="Only runs of NAME (or agent/NAME, workflow/NAME).")
    ] = "",
    phase: Annotated[
        list[str] | None,
        typer.Option(
            "--phase", help="Only executions in this phase (repeatable: any of them).", show_default=False
        ),
    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="agent or workflow.")] = "",
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            help="Only executions with this label: k=v, k!=v, k or !k (repeatable: all of them).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Created at or after: a duration back (1h, 2d) or an ISO time.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Created before: a duration back (30m) or an ISO time.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.", min=1, max=1000)] = 50,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Keep watching: redraw on a terminal, else print new and changed rows; Ctrl-C ends.",
        ),
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """List executions, newest first."""
    exec_kind = ""
    if kind:
        resolved = _target_kind(kind)
        exec_kind = f"{resolved}Execution"
    after, before = _when_option(since, "--since"), _when_option(until, "--until")

    async def look(client: AsyncStigmer) -> list[execution_pb2.Execution]:
        return await list_executions(
            client,
            kind=exec_kind,
            target=target,
            phase=phase or (),
            limit=limit,
            labels=label or (),
            since=after,
            until=before,
        )

    async def go() -> list[execution_pb2.Execution]:
        async with connect() as client:
            return await look(client)

    if not watch:
        print_executions(run_async(go()), output)
        return

    async def keep_watching() -> None:
        async with connect() as client:
            await _watch(lambda: look(client), output)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends: exit 0
        run_async(keep_watching())


async def _watch(look: Callable[[], Awaitable[list[execution_pb2.Execution]]], output: Output) -> None:
    """``execution list --watch``: on a terminal the table is redrawn in place; otherwise (and with
    ``-o json``) the rows are printed once, then each new or changed one as it comes."""
    import asyncio

    from stigmer.cli.output._format import is_tty

    redraw = output is Output.table and is_tty()
    seen: dict[str, tuple[int, str, str]] = {}
    widths: list[int] = []
    first = True
    while True:
        executions = await look()
        if redraw:
            echo("\033[H\033[2J", nl=False)
            print_executions(executions, output)
        else:
            fresh = []
            for ex in reversed(executions):  # oldest first: the order they happened in
                state = (int(ex.status.phase), ex.status.finished_at.ToJsonString(), _error_title(ex))
                if seen.get(ex.metadata.id) != state:
                    seen[ex.metadata.id] = state
                    fresh.append(ex)
            if output is Output.table:
                rows = [_row(ex) for ex in fresh]
                if first:
                    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADERS)]
                    echo(_line(_HEADERS, widths))
                for r in rows:
                    echo(_line(r, widths))
            else:
                for ex in fresh:
                    import json as _json

                    echo(_json.dumps(execution_to_dict(ex), ensure_ascii=False))
        first = False
        await asyncio.sleep(WATCH_INTERVAL)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


@execution_app.command("get")
def get(execution_id: IdArg, output: OutputOption = Output.table) -> None:
    """Show one execution (``-o json`` prints the same object as ``stigmer run -o json``)."""

    async def go() -> execution_pb2.Execution:
        async with connect() as client:
            return await _get(client, execution_id)

    ex = run_async(go())
    if output is not Output.table:
        report(ex, output)
        return
    _describe(ex)


def _describe(ex: execution_pb2.Execution) -> None:
    data = execution_to_dict(ex)
    rows = [
        ["id", data["id"]],
        ["kind", data["kind"]],
        [
            "target",
            f"{data['target']['kind'].lower()}/{data['target']['name']} (version {data['targetVersion']})",
        ],
        ["phase", data["phase"]],
        ["created", data["createdAt"] or "-"],
        ["started", data["startedAt"] or "-"],
        ["finished", data["finishedAt"] or "-"],
    ]
    if data["session"]:
        rows.append(["session", data["session"]])
    if data["message"]:
        rows.append(["message", data["message"]])
    if data["input"] is not None:
        rows.append(["input", json.dumps(data["input"], ensure_ascii=False)])
    if data["output"] is not None:
        rows.append(["output", json.dumps(data["output"], ensure_ascii=False)])
    if data["error"]:
        err = data["error"]
        rows.append(["error", ": ".join(x for x in (err["title"], err["detail"]) if x)])
    if data["pendingApproval"]:
        rows.append(["approval", f"{data['pendingApproval']['tool']} ({data['pendingApproval']['id']})"])
    usage = data["usage"]
    if any(usage.values()):
        rows.append(["usage", _usage_line(usage)])
    print_table(["FIELD", "VALUE"], rows)
    if usage["byRequest"]:
        echo()
        print_table(
            ["REQUEST", "MODEL", "INPUT TOKENS", "OUTPUT TOKENS", "COST"],
            [
                [str(i), r["model"], str(r["inputTokens"]), str(r["outputTokens"]), _cost(r)]
                for i, r in enumerate(usage["byRequest"], 1)
            ],
        )
    if data["tasks"]:
        echo()
        print_table(
            ["TASK", "PATH", "PHASE", "ATTEMPTS"],
            [[t["name"], t["path"], t["phase"], str(t["attempts"])] for t in data["tasks"]],
        )


@execution_app.command("files")
def files(
    execution_id: IdArg,
    path: Annotated[
        str | None,
        typer.Argument(help="A file of the workspace: print it (none: list the files).", show_default=False),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """List the files of an agent execution's workspace as it saved them, or print one (PATH)."""
    import sys

    from stigmer.core import FailedPrecondition

    async def go() -> dict[str, bytes]:
        async with connect() as client:
            await _get(client, execution_id)
            try:
                return await client.execution_files(execution_id)
            except FailedPrecondition as exc:
                raise CliError(exc.message) from None

    saved = run_async(go())
    wanted = (path or "").strip()
    while wanted.startswith("./"):
        wanted = wanted[2:]
    wanted = wanted.rstrip("/")
    if wanted and wanted != ".":
        if wanted not in saved:
            inside = sorted(p for p in saved if p.startswith(wanted + "/"))
            if not inside:
                raise CliError(
                    f"the workspace of {execution_id} has no file {path}; list them with "
                    f"`stigmer execution files {execution_id}`"
                )
            saved = {p: saved[p] for p in inside}
        else:
            sys.stdout.buffer.write(saved[wanted])
            sys.stdout.flush()
            return
    rows = [{"path": name, "size": len(content)} for name, content in sorted(saved.items())]
    if output is Output.json:
        emit_json(rows)
    elif output is Output.yaml:
        emit_yaml(rows)
    elif not rows:
        echo_err("the workspace is empty")
    else:
        print_table(["PATH", "SIZE"], [[name, str(len(content))] for name, content in sorted(saved.items())])


@execution_app.command("logs")
def logs(
    execution_id: IdArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the execution ends.")
    ] = False,
    after: Annotated[int, typer.Option("--after", help="Only events after this sequence number.", min=0)] = 0,
    timestamps: Annotated[
        bool,
        typer.Option(
            "--timestamps", help="Start each line with its event's time (RFC 3339, UTC, milliseconds)."
        ),
    ] = False,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="table: rendered; json: one event object per line.")
    ] = Output.table,
) -> None:
    """Print an execution's events; with -f, stream new ones live until it ends."""

    async def go() -> None:
        async with connect() as client:
            ex = await _get(client, execution_id)
            renderer = Renderer(timestamps=timestamps)
            if follow_:
                if output is Output.table:
                    # watch only (the run goes on where it runs); approvals are explained, not asked
                    handle = await client.execution(execution_id, in_process=False)
                    await follow(
                        handle,
                        output,
                        stop_on_approval=False,
                        after_sequence=after,
                        ask=False,
                        report_follows=False,
                        timestamps=timestamps,
                    )
                    return
                async for ev in client.watch(execution_id, after_sequence=after):
                    _print_event(ev, output, renderer)
                return
            # without -f: what is stored now, up to the latest sequence
            last = ex.status.last_sequence
            if last <= after:
                return
            stream = client.watch(execution_id, after_sequence=after)
            try:
                async for ev in stream:
                    _print_event(ev, output, renderer)
                    if ev.sequence >= last:
                        break
            finally:
                await stream.aclose()
            renderer.end_text()

    try:
        run_async(go())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _print_event(ev: execution_pb2.ExecutionEvent, output: Output, renderer: Renderer) -> None:
    if output is Output.table:
        renderer.event(ev)
    else:
        echo(json.dumps(event_to_dict(ev), ensure_ascii=False))


@execution_app.command("cancel")
def cancel(
    execution_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the cancellation.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Cancel an execution that has not finished."""

    async def go() -> execution_pb2.Execution:
        async with connect() as client:
            await _get(client, execution_id)
            return await client.cancel(execution_id, reason)

    ex = run_async(go())
    if output is not Output.table:
        report(ex, output)
        return
    from stigmer.core import phase_name

    echo(f"{ex.metadata.id} {phase_name(ex.status.phase).lower()}")


def _continue(execution_id: str, output: Output, action: str, approved: bool | None, reason: str) -> None:
    """Approve/reject/resume; in a local context the runner then continues here (Lite)."""
    started = Started(execution_id=execution_id)

    async def go() -> int:
        from stigmer.core import is_terminal, phase_name

        async with connect() as client:
            started.local = client.local
            started.context = client.context
            ex = await _get(client, execution_id)
            phase = phase_name(ex.status.phase)
            if is_terminal(phase):
                raise CliError(f"execution {execution_id} already finished ({phase}); nothing to {action}")
            if approved is not None:
                if phase != "WAITING_APPROVAL":
                    raise CliError(f"execution {execution_id} is {phase}, not waiting for an approval")
            elif not client.local:
                raise CliError(
                    "resume runs an execution in this process, which only a local context does; "
                    "the server resumes its executions itself"
                )
            elif phase == "WAITING_APPROVAL":
                raise CliError(
                    f"execution {execution_id} waits for an approval: "
                    f"`stigmer execution approve {execution_id}` or `reject`"
                )
            handle = await client.execution(execution_id)
            if approved is not None:
                # in a local context the run goes on here at once; the server goes on by itself
                ex = await (handle.approve(reason) if approved else handle.reject(reason))
                if output is Output.table:
                    echo_err(f"{execution_id} {'approved' if approved else 'rejected'}")
            start, after = approved is None, ex.status.last_sequence
            if client.local:  # it runs here: Ctrl-C hands it over at a step boundary
                ex = await follow_here(handle, output, started, start=start, after_sequence=after)
            else:
                ex = await follow(handle, output, start=start, after_sequence=after)
            code = report(ex, output)
            if output is Output.table and (hint := continue_hint(ex)):
                echo_err(hint)
            return code

    exit_following(go(), started)  # its started.execution_id is execution_id


ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (passed to the agent).")]


@execution_app.command("approve")
def approve(
    execution_id: PendingIdArg, reason: ReasonOption = "", output: OutputOption = Output.table
) -> None:
    """Approve the action an execution waits for, and continue it."""
    _continue(execution_id, output, "approve", True, reason)


@execution_app.command("reject")
def reject(
    execution_id: PendingIdArg, reason: ReasonOption = "", output: OutputOption = Output.table
) -> None:
    """Reject the action an execution waits for, and continue it."""
    _continue(execution_id, output, "reject", False, reason)


@execution_app.command("resume")
def resume(execution_id: IdArg, output: OutputOption = Output.table) -> None:
    """Run a pending or interrupted (killed) execution again from its last checkpoint (local context)."""
    _continue(execution_id, output, "resume", None, "")


DetachOption = Annotated[
    bool,
    typer.Option("--detach/--follow", "-d", help="Print only the new execution's id and return at once."),
]


def _again(
    execution_id: str,
    output: Output,
    detach: bool,
    retry: bool,
    secret: list[str] | None = None,
    secret_file: Path | None = None,
) -> None:
    """``rerun`` / ``retry``: a new execution linked to the old one, followed like ``stigmer run``."""
    from stigmer.cli.commands._params import parse_secret_file, read_secret_value
    from stigmer.cli.commands._run import spawn_background
    from stigmer.core import FailedPrecondition

    secrets: dict[str, str] = parse_secret_file(secret_file) if secret_file else {}
    for key in secret or []:
        secrets[key] = read_secret_value(key)
    started = Started()

    async def go() -> int:
        async with connect() as client:
            await _get(client, execution_id)
            try:
                again = client.retry if retry else client.rerun
                handle = await again(execution_id, secrets=secrets, start=not detach)
            except FailedPrecondition as exc:
                message = exc.message
                if "not kept after a run ends" in message:
                    verb = "retry" if retry else "rerun"
                    message += f"; `stigmer execution {verb} {execution_id} --secret NAME`"
                raise CliError(message) from None
            started.execution_id, started.local, started.context = handle.id, client.local, client.context
            if detach:
                if client.local:
                    spawn_background(handle.id, client.context)
                if output is Output.table:
                    echo(handle.id)
                    return 0
                return report(handle.execution, output)
            if output is Output.table:
                what = "continues" if retry else "runs again"
                echo_err(f"{handle.kind} {handle.id} started ({what} {execution_id})")
            if handle.in_process:
                ex = await follow_here(handle, output, started)
            else:
                ex = await follow(handle, output)
            code = report(ex, output, streamed=True)
            if output is Output.table and (hint := continue_hint(ex)):
                echo_err(hint)
            return code

    exit_following(go(), started)


@execution_app.command("rerun")
def rerun(
    execution_id: IdArg,
    detach: DetachOption = False,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Run an execution's target again from the start: same version, input, message and env
    (run-time secrets are not kept after a run ends: give them again with --secret)."""
    _again(execution_id, output, detach, False, secret, secret_file)


@execution_app.command("retry")
def retry(
    execution_id: IdArg,
    detach: DetachOption = False,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Continue a FAILED or CANCELLED run from its failed task (a new execution; done tasks are kept)."""
    _again(execution_id, output, detach, True, secret, secret_file)


@execution_app.command("pause")
def pause(execution_id: IdArg) -> None:
    """Not supported: says what to use instead."""
    raise CliError(
        f"executions cannot be paused here: `stigmer execution cancel {execution_id}` stops one for good; "
        "a Lite run stopped with Ctrl-C continues with `stigmer execution resume ID`; "
        "a workflow can wait for you with a listen task (`stigmer execution send-event`)"
    )


@execution_app.command("send-event")
def send_event(
    execution_id: IdArg,
    event_type: Annotated[
        str | None,
        typer.Argument(
            metavar="[TYPE]", help="Event type, for example com.acme.order.paid.", show_default=False
        ),
    ] = None,
    event_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="The signal id a converted upstream listen task waits for (the event type).",
            show_default=False,
        ),
    ] = "",
    data: Annotated[str, typer.Option("--data", help="Event data as JSON.")] = "",
    text: Annotated[str, typer.Option("--text", help="Event text.")] = "",
    subject: Annotated[str, typer.Option("--subject", help="Event subject.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Send an event to an execution (for workflows that `listen` for it)."""
    from stigmer.cli.commands._params import parse_input

    if event_type and event_id and event_type != event_id:
        raise CliError("give the event type once: as TYPE or with --id")
    event_type = event_type or event_id
    if not event_type:
        raise CliError("say which event: `stigmer execution send-event ID TYPE` (or --id SIGNAL)")

    payload = parse_input(data) if data else None

    async def go() -> execution_pb2.Execution:
        from stigmer.core import is_terminal

        async with connect() as client:
            ex = await _get(client, execution_id)
            if is_terminal(ex.status.phase):
                raise CliError(f"execution {execution_id} already finished; it takes no more events")
            return await client.send_event(execution_id, event_type, payload, text=text, subject=subject)

    ex = run_async(go())
    if output is not Output.table:
        report(ex, output)
        return
    echo(f"event {event_type} sent to {execution_id} (sequence {ex.status.last_sequence})")


def _cost(usage: dict[str, Any]) -> str:
    if usage["costUnknown"] and not usage["costUsd"]:
        return "unknown"
    return f"${usage['costUsd']:.6f}" + (" + unpriced" if usage["costUnknown"] else "")


def _usage_line(usage: dict[str, Any]) -> str:
    """``requests=2, toolCalls=1, inputTokens=22, outputTokens=14, cost=$0.000012``."""
    parts = [f"{k}={usage[k]}" for k in ("requests", "toolCalls", "inputTokens", "outputTokens")]
    if usage["costUsd"] or usage["costUnknown"]:
        parts.append(f"cost={_cost(usage)}")
    return ", ".join(parts)
