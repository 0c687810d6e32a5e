"""``stigmer session export``: an agent session's workspace written out to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import echo, echo_err

__all__ = ["session_app"]

session_app = typer.Typer(
    add_completion=False, help="Agent sessions: their workspaces.", no_args_is_help=True
)


@session_app.command("export")
def export(
    session: Annotated[str, typer.Argument(help="Session id (ses_...) or name.")],
    out: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Folder to write the files into (created if missing).")
    ],
) -> None:
    """Write the files of SESSION's workspace, as its latest turn left them, into a folder."""
    from stigmer.core import NotFound

    if out.exists() and not out.is_dir():
        raise CliError(f"-o {out}: not a folder")

    async def go() -> tuple[str, ...]:
        async with connect() as client:
            try:
                return await client.export_session(session, out)
            except NotFound as exc:
                raise CliError(exc.message) from None

    written = run_async(go())
    for path in written:
        echo(str(out / path))
    echo_err(f"{len(written)} file(s) written to {out}")


@session_app.callback()
def _session_group() -> None:
    """Agent sessions: their workspaces."""
