"""``stigmer schedule list|describe|pause|resume|trigger|backfill|delete|run-due`` and
``stigmer scheduler`` (Lite: fires due schedules in the foreground)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import Output, OutputOption, echo, echo_err, emit_json, emit_yaml, print_table

if TYPE_CHECKING:
    from stigmer.sdk import AsyncStigmer, Fired, ScheduleInfo

__all__ = ["schedule_app", "scheduler_app", "summary"]

schedule_app = typer.Typer(
    add_completion=False,
    help="List, pause, resume, trigger and backfill schedules; run-due fires what is due (Lite).",
    no_args_is_help=True,
)
scheduler_app = typer.Typer(add_completion=False)

NameArg = Annotated[str, typer.Argument(help="Schedule name.", show_default=False)]


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def when_text(spec: Any) -> str:
    if spec.cron:
        return f"cron {spec.cron!r}" + (f" {spec.time_zone}" if spec.time_zone else "")
    if spec.after:
        return f"{spec.after} after each run"
    return f"every {spec.every}"


def summary(schedule: Any) -> str:
    """One line for tables: when, what, and the next fire (or paused)."""
    from stigmer.core import InvalidArgument, Timetable

    spec = schedule.spec
    target = f"{spec.target.kind.lower()}/{spec.target.name or spec.target.id}"
    if spec.HasField("enabled") and not spec.enabled:
        nxt = "paused"
    else:
        try:
            upcoming = Timetable.of(spec).next_slots(datetime.now(UTC), 1)
            nxt = "next " + _stamp(upcoming[0]) if upcoming else "next after the last run ends"
        except InvalidArgument:
            nxt = "invalid"
    return f"{when_text(spec)} -> {target}, {nxt}"


def _info_dict(info: ScheduleInfo) -> dict[str, Any]:
    from stigmer.core import message_to_manifest, phase_name

    schedule = info.schedule
    return {
        "name": schedule.metadata.name,
        "enabled": info.enabled,
        "schedule": message_to_manifest(schedule),
        "nextFires": [_stamp(s) for s in info.next_fires],
        "lastRuns": [
            {**run, "phase": phase_name(run["phase"]) if run["phase"] else None} for run in info.last_runs
        ],
    }


async def _info(client: AsyncStigmer, name: str) -> ScheduleInfo:
    from stigmer.core import NotFound

    try:
        return await client.schedule_info(name)
    except NotFound:
        raise CliError(f"no schedule {name!r}; list them with `stigmer schedule list`") from None


@schedule_app.command("list")
def list_schedules(output: OutputOption = Output.table) -> None:
    """List schedules with their next fire time."""

    async def go() -> list[Any]:
        async with connect() as client:
            return list(await client.list("Schedule"))

    from stigmer.core import unwrap

    schedules = [unwrap(s) for s in run_async(go())]
    if output is Output.table:
        rows = [[s.metadata.name, summary(s), str(s.status.fire_count)] for s in schedules]  # type: ignore[attr-defined]
        print_table(["NAME", "SCHEDULE", "FIRED"], rows, empty="no schedules")
        return
    from stigmer.core import message_to_manifest

    docs = [message_to_manifest(s) for s in schedules]
    if output is Output.json:
        emit_json(docs)
    else:
        emit_yaml(docs)


@schedule_app.command("describe")
def describe(name: NameArg, output: OutputOption = Output.table) -> None:
    """Show a schedule: when it fires, its next fire times and its last runs."""

    async def go() -> ScheduleInfo:
        async with connect() as client:
            return await _info(client, name)

    info = run_async(go())
    data = _info_dict(info)
    if output is Output.json:
        emit_json(data)
        return
    if output is Output.yaml:
        emit_yaml([data])
        return
    spec = info.schedule.spec
    echo(f"Name:      {data['name']}")
    echo(f"When:      {when_text(spec)}")
    echo(f"Target:    {spec.target.kind}/{spec.target.name or spec.target.id}")
    echo(f"Enabled:   {'yes' if info.enabled else 'no (paused)'}")
    echo(f"Overlap:   {spec.overlap or 'skip'}")
    echo(f"Next:      {', '.join(data['nextFires']) or '-'}")
    echo("Last runs:")
    if not data["lastRuns"]:
        echo("  (none)")
    for run in data["lastRuns"]:
        echo(
            f"  {run['slot']}  {run['outcome']:<8}  {run['executionId'] or '-'}  {(run['phase'] or '').lower()}"
        )


def _toggle(name: str, enabled: bool) -> None:
    from stigmer.core import NotFound

    async def go() -> Any:
        async with connect() as client:
            try:
                return await (client.resume_schedule(name) if enabled else client.pause_schedule(name))
            except NotFound:
                raise CliError(f"no schedule {name!r}; list them with `stigmer schedule list`") from None

    run_async(go())
    echo(f"schedule/{name} {'resumed' if enabled else 'paused'}")


@schedule_app.command("pause")
def pause(name: NameArg) -> None:
    """Stop a schedule from firing (spec.enabled: false)."""
    _toggle(name, False)


@schedule_app.command("resume")
def resume(name: NameArg) -> None:
    """Let a paused schedule fire again (missed slots are not fired: backfill them)."""
    _toggle(name, True)


def _print_fires(fires: list[Fired], output: Output) -> None:
    if output is not Output.table:
        data = [
            {
                "schedule": f.schedule,
                "slot": _stamp(f.slot),
                "outcome": f.outcome,
                "executionId": f.execution_id,
            }
            for f in fires
        ]
        if output is Output.json:
            emit_json(data)
        else:
            emit_yaml(data)
        return
    for f in fires:
        echo(f"{f.schedule} {_stamp(f.slot)} {f.outcome} {f.execution_id}".rstrip())


@schedule_app.command("trigger")
def trigger(name: NameArg, output: OutputOption = Output.table) -> None:
    """Start one run of a schedule's target now (even while paused); in a local context it runs here."""
    from stigmer.core import NotFound

    async def go() -> int:
        from stigmer.cli.output._live import report

        async with connect() as client:
            try:
                handle = await client.trigger_schedule(name)
            except NotFound:
                raise CliError(f"no schedule {name!r}; list them with `stigmer schedule list`") from None
            if output is Output.table:
                echo_err(f"{handle.kind} {handle.id} started by schedule/{name}")
            ex = await handle.wait() if client.local else handle.execution
            return report(ex, output)

    raise typer.Exit(run_async(go()))


def _parse_time(text: str, option: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a time; write it like 2026-12-01T09:00:00Z", 2) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@schedule_app.command("backfill")
def backfill(
    name: NameArg,
    start: Annotated[
        str, typer.Option("--from", help="First time (RFC 3339; UTC if no offset).", show_default=False)
    ],
    end: Annotated[
        str, typer.Option("--to", help="End time, exclusive (default: now).", show_default=False)
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """Fire every slot of a schedule in [--from, --to) that did not fire yet (whatever its overlap policy)."""
    from stigmer.core import NotFound

    since = _parse_time(start, "--from")
    until = _parse_time(end, "--to") if end else datetime.now(UTC)

    async def go() -> list[Fired]:
        async with connect() as client:
            try:
                return await client.backfill_schedule(name, since, until)
            except NotFound:
                raise CliError(f"no schedule {name!r}; list them with `stigmer schedule list`") from None

    fires = run_async(go())
    _print_fires(fires, output)
    if output is Output.table and not fires:
        echo_err("no slots in that range")


@schedule_app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a schedule (its runs stay)."""
    from stigmer.core import NotFound

    async def go() -> None:
        async with connect() as client:
            try:
                await client.delete("Schedule", name)
            except NotFound:
                raise CliError(f"no schedule {name!r}; list them with `stigmer schedule list`") from None

    run_async(go())
    echo(f"schedule/{name} deleted")


@schedule_app.command("run-due")
def run_due(
    name: Annotated[str, typer.Option("--name", help="Only this schedule.", show_default=False)] = "",
    now: Annotated[
        str,
        typer.Option(
            "--now", help="Act as if it were this time (RFC 3339), for testing.", show_default=False
        ),
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """Fire every schedule slot due now that did not fire yet, and run the runs here (local context;
    for the system's cron: `* * * * * stigmer schedule run-due`)."""
    when = _parse_time(now, "--now") if now else None

    async def go() -> list[Fired]:
        async with connect() as client:
            return await client.run_due(now=when, name=name)

    fires = [f for f in run_async(go()) if f.outcome != "already"]
    _print_fires(fires, output)


@scheduler_app.command("scheduler")
def scheduler(
    tick: Annotated[
        float, typer.Option("--tick", help="Seconds between looks at the schedules.", min=0.05)
    ] = 1.0,
) -> None:
    """Fire schedules as they fall due, in the foreground, running each run here (local context); Ctrl-C stops."""
    import asyncio

    def fired(f: Fired) -> None:
        echo_err(f"{_stamp(datetime.now(UTC))} schedule/{f.schedule} slot {_stamp(f.slot)}: {f.execution_id}")

    async def go() -> None:
        async with connect() as client:
            if not client.local:
                raise CliError("the scheduler runs schedules in a local context; a server fires its own")
            echo_err("scheduler running; Ctrl-C stops it")
            await client.run_scheduler(asyncio.Event(), tick=tick, on_fire=fired)

    try:
        run_async(go())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
