"""``stigmer execution list|get|logs|cancel|approve|reject|resume|send-event``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_execution, complete_pending_execution
from stigmer.cli.commands._run import Started, detach_on_interrupt
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
from stigmer.cli.output._render import Renderer
from stigmer.cli.output._view import event_to_dict, execution_to_dict

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2
    from stigmer.sdk import AsyncStigmer

__all__ = ["execution_app", "list_executions", "print_executions"]

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
    client: AsyncStigmer, *, kind: str = "", target: str = "", phase: str = "", limit: int = 50
) -> list[execution_pb2.Execution]:
    from stigmer.core import PHASE_NAMES

    if target:
        target_kind, _, target_name = target.rpartition("/")
        target_kind = _target_kind(target_kind)
        target = f"{target_kind}/{target_name}" if target_kind else target_name
    if phase:
        value = phase.upper().removeprefix("PHASE_")
        phases = [name for number, name in sorted(PHASE_NAMES.items()) if number]
        if value not in phases:
            raise CliError(f"unknown phase '{phase}' (phases: {', '.join(phases)})")
    page = await client.list_executions(kind=kind, target=target, phase=phase, limit=limit)
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


def print_executions(executions: list[execution_pb2.Execution], output: Output) -> None:
    """An execution list in the chosen format (JSON: an array of execution objects)."""
    from stigmer.core import phase_name

    if output is Output.json:
        emit_json([execution_to_dict(ex) for ex in executions])
        return
    if output is Output.yaml:
        emit_yaml([execution_to_dict(ex) for ex in executions])
        return
    rows = [
        [
            ex.metadata.id,
            ex.kind.removesuffix("Execution").lower(),
            ex.spec.target.name or ex.spec.target.id,
            phase_name(ex.status.phase),
            age(ex.metadata.created_at),
        ]
        for ex in executions
    ]
    print_table(["ID", "KIND", "TARGET", "PHASE", "AGE"], rows, empty="no executions")


@execution_app.command("list")
def list_(
    target: Annotated[
        str, typer.Option("--target", "-t", help="Only runs of NAME (or agent/NAME, workflow/NAME).")
    ] = "",
    phase: Annotated[str, typer.Option("--phase", help="Only executions in this phase.")] = "",
    kind: Annotated[str, typer.Option("--kind", help="agent or workflow.")] = "",
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.", min=1, max=1000)] = 50,
    output: OutputOption = Output.table,
) -> None:
    """List executions, newest first."""
    exec_kind = ""
    if kind:
        resolved = _target_kind(kind)
        exec_kind = f"{resolved}Execution"

    async def go() -> list[execution_pb2.Execution]:
        async with connect() as client:
            return await list_executions(client, kind=exec_kind, target=target, phase=phase, limit=limit)

    print_executions(run_async(go()), output)


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
        rows.append(["usage", ", ".join(f"{k}={v}" for k, v in usage.items())])
    print_table(["FIELD", "VALUE"], rows)
    if data["tasks"]:
        echo()
        print_table(
            ["TASK", "PATH", "PHASE", "ATTEMPTS"],
            [[t["name"], t["path"], t["phase"], str(t["attempts"])] for t in data["tasks"]],
        )


@execution_app.command("logs")
def logs(
    execution_id: IdArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the execution ends.")
    ] = False,
    after: Annotated[int, typer.Option("--after", help="Only events after this sequence number.", min=0)] = 0,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="table: rendered; json: one event object per line.")
    ] = Output.table,
) -> None:
    """Print an execution's events; with -f, stream new ones live until it ends."""

    async def go() -> None:
        async with connect() as client:
            ex = await _get(client, execution_id)
            renderer = Renderer()
            if follow_:
                if output is Output.table:
                    # watch only (the run goes on where it runs); approvals are explained, not asked
                    handle = await client.execution(execution_id, in_process=False)
                    await follow(handle, output, stop_on_approval=False, after_sequence=after, ask=False)
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
            ex = await follow(handle, output, start=approved is None, after_sequence=ex.status.last_sequence)
            return report(ex, output)

    try:
        code = run_async(go())
    except KeyboardInterrupt:
        detach_on_interrupt(started)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


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


@execution_app.command("send-event")
def send_event(
    execution_id: IdArg,
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type, for example com.acme.order.paid.")
    ],
    data: Annotated[str, typer.Option("--data", help="Event data as JSON.")] = "",
    text: Annotated[str, typer.Option("--text", help="Event text.")] = "",
    subject: Annotated[str, typer.Option("--subject", help="Event subject.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Send an event to an execution (for workflows that `listen` for it)."""
    from stigmer.cli.commands._params import parse_input

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
