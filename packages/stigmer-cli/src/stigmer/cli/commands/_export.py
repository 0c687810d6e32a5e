"""``stigmer export``: resources back to manifests (the SDK's ``export``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_delete_kind, complete_name_of_kind
from stigmer.cli.commands._params import kind_argument

__all__ = ["export_app"]

export_app = typer.Typer(add_completion=False)


@export_app.command("export")
def export(
    kind: Annotated[
        str | None,
        typer.Argument(help="Kind to export (agent, workflow, ...).", autocompletion=complete_delete_kind),
    ] = None,
    name: Annotated[
        str | None,
        typer.Argument(
            help="Name of one resource.", show_default=False, autocompletion=complete_name_of_kind
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every resource of the current context.")] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write one file per resource, skills and SECRETS.md here."),
    ] = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="stigmer (this project's manifests) or upstream (upstream Stigmer's agentic.stigmer.ai/v1, "
            "where a mapping exists).",
        ),
    ] = "stigmer",
) -> None:
    """Write resources as manifests (no status, no ids; secrets by name only), to stdout or -o DIR."""
    if all_ == (kind is not None):
        raise CliError("say what to export: `stigmer export KIND [NAME]` or `stigmer export --all -o DIR`")
    resolved = kind_argument(kind, executions=False) if kind is not None else None
    if format_ not in ("stigmer", "upstream"):
        raise CliError(f"unknown --format {format_!r}; use stigmer or upstream")

    async def go() -> str:
        from stigmer.sdk._export import SECRETS_FILE

        async with connect() as client:
            result = await client.export(output_dir, kind=resolved, name=name, format=format_)
        if output_dir is None:
            return result.yaml
        count = len(result.manifests)
        text = f"exported {count} resource{'s' if count != 1 else ''} to {output_dir}\n"
        if result.secrets:
            text += (
                f"secrets to set before running (see {output_dir / SECRETS_FILE}): "
                f"{', '.join(result.secrets)}\n"
            )
        return text

    sys.stdout.write(run_async(go()))
