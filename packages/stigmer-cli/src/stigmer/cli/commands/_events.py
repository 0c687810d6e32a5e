"""``stigmer event send``: publish a CloudEvent (what ``POST /events`` does on a server)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import Output, OutputOption, echo, emit_json, emit_yaml

__all__ = ["event_app"]

event_app = typer.Typer(
    add_completion=False,
    help="Publish CloudEvents: waiting `listen` tasks hear them, `schedule.on` workflows start.",
    no_args_is_help=True,
)


@event_app.callback()
def _group() -> None:
    """Publish CloudEvents: waiting `listen` tasks hear them, `schedule.on` workflows start."""


@event_app.command("send")
def send(
    event_type: Annotated[
        str, typer.Option("--type", help="Event type, for example com.acme.order.paid.", show_default=False)
    ],
    source: Annotated[
        str,
        typer.Option("--source", help="Event source, for example https://shop.example.", show_default=False),
    ],
    data: Annotated[str, typer.Option("--data", help="Event data: inline JSON or @file.json.")] = "",
    subject: Annotated[
        str, typer.Option("--subject", help="Event subject, for example an order number.")
    ] = "",
    event_id: Annotated[str, typer.Option("--id", help="Event id (default: a new UUID).")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Publish a CloudEvent. In a local context the runs it starts (`schedule.on`) run here, as
    `stigmer run` runs them; against a server, the server runs them."""
    from stigmer.cli.commands._params import parse_input

    if not event_type.strip() or not source.strip():
        raise CliError("give the event's --type and --source", 2)
    payload = parse_input(data, "--data") if data else None

    async def go() -> tuple[dict[str, Any], int]:
        from stigmer.cli.output._view import execution_to_dict
        from stigmer.core import phase_name

        async with connect() as client:
            published = await client.publish_event(event_type, source, payload, subject=subject, id=event_id)
            runs = []
            code = 0
            for handle in published.started:
                ex = await handle.wait() if client.local else handle.execution
                if phase_name(ex.status.phase) in ("FAILED", "CANCELLED"):
                    code = 1
                runs.append(execution_to_dict(ex))
            return {"id": published.id, "delivered": list(published.delivered), "started": runs}, code

    result, code = run_async(go())
    if output is Output.json:
        emit_json(result)
    elif output is Output.yaml:
        emit_yaml([result])
    else:
        echo(
            f"event {result['id']} ({event_type}) delivered to {len(result['delivered'])} execution(s), "
            f"started {len(result['started'])} run(s)"
        )
        for run in result["delivered"]:
            echo(f"  delivered to {run}")
        for run in result["started"]:
            echo(f"  started {run['id']} {run['phase']}")
    raise typer.Exit(code)
