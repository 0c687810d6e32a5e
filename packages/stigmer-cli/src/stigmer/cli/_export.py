"""``stigmer export``: resources back to manifests (the logic lives in the SDK)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from stigmer.cli._backend import open_session, run_async
from stigmer.cli._errors import CliError
from stigmer.cli._kinds import resolve_kind
from stigmer.cli._sdk import sdk_plugin

__all__ = ["export_app"]

export_app = typer.Typer(add_completion=False)


@export_app.command("export")
def export(
    kind: Annotated[str | None, typer.Argument(help="Kind to export (agent, workflow, ...).")] = None,
    name: Annotated[str | None, typer.Argument(help="Name of one resource.", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every resource of the current context.")] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write one file per resource, skills and SECRETS.md here."),
    ] = None,
) -> None:
    """Write resources as manifests (no status, no ids; secrets by name only), to stdout or -o DIR."""
    if all_ == (kind is not None):
        raise CliError("say what to export: `stigmer export KIND [NAME]` or `stigmer export --all -o DIR`")
    resolved = resolve_kind(kind, allow_executions=False) if kind is not None else None
    export_for_cli = sdk_plugin("export", "stigmer export")

    async def go() -> str:
        async with open_session() as session:
            text: str = await export_for_cli(session.backend, kind=resolved, name=name, directory=output_dir)
            return text

    sys.stdout.write(run_async(go()))
