"""``stigmer validate``: check manifests as ``apply`` and ``run`` would, without a backend."""

from __future__ import annotations

from typing import Annotated

import typer
from stigmer.cli.commands._apply import load_files
from stigmer.cli.output._format import Output, OutputOption, echo, emit_json, emit_yaml

__all__ = ["validate_app"]

validate_app = typer.Typer(add_completion=False)


@validate_app.command("validate")
def validate(
    filename: Annotated[
        list[str],
        typer.Option(
            "--filename",
            "-f",
            help="Manifest file, directory (recursive), Python file or - for stdin; repeatable.",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer needs a literal default
    output: OutputOption = Output.table,
) -> None:
    """Check manifests without storing them or connecting to a backend: each workflow's document
    (schema, semantic checks, jq syntax, secrets, functions, authentications) and the agents and
    workflows it names, which are looked up in the given manifests only. One line per problem;
    exit 0 when valid, 1 when not."""
    from stigmer.core import ManifestError
    from stigmer.sdk import validate as sdk_validate

    try:
        loaded = load_files(filename)
    except ManifestError as unreadable:
        if output is Output.table:
            raise
        found = {
            "file": unreadable.source,
            "line": unreadable.line,
            "path": unreadable.field_path,
            "message": unreadable.reason,
            "severity": "error",
            "kind": "",
            "name": "",
        }
        if output is Output.json:
            emit_json([found])
        else:
            emit_yaml([[found]])
        raise typer.Exit(1) from None
    problems = sdk_validate(*loaded)
    errors = [p for p in problems if not p.warning]
    if output is Output.json:
        emit_json([p.to_dict() for p in problems])
    elif output is Output.yaml:
        emit_yaml([[p.to_dict() for p in problems]])
    else:
        for problem in problems:
            echo(f"warning: {problem}" if problem.warning else str(problem))
        if not errors:
            sources = len({item.source for item in loaded})
            echo(
                f"valid: {len(loaded)} resource(s) in {sources} file(s); agents and workflows named "
                "were looked up in these files only (no backend)"
            )
    if errors:
        raise typer.Exit(1)
