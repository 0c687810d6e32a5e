"""``stigmer console``: the web console over the embedded (Lite) store, on 127.0.0.1 only.

It runs the same server as ``stigmer server`` (gRPC on a free loopback port, the HTTP listener on
``--port``), so runs started from the console execute exactly as the server runs them (a child
process per run, with a token scoped to it). One person owns a Lite store: the console logs in
with a one-time link for the store's admin token (printed, and opened in the browser with
``--open``); the admin token in ``$STIGMER_HOME/tokens/admin`` works on the login page too.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import echo_err

__all__ = ["DEFAULT_PORT", "console_app"]

console_app = typer.Typer(add_completion=False)
DEFAULT_PORT = 7236


@console_app.command("console")
def console(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0 = any free port).")
    ] = DEFAULT_PORT,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the console in the web browser.")
    ] = True,
    allow_run: Annotated[
        bool,
        typer.Option(
            "--allow-run",
            help="Let runs started here start local processes (run: shell|script, stdio MCP servers).",
        ),
    ] = False,
) -> None:
    """Serve the web console over the local store on 127.0.0.1 until Ctrl-C.

    A server context has its console on the server: `stigmer server --http-listen HOST:PORT`
    serves it at http://HOST:PORT/console/ (and `stigmer local start` at the address that
    `stigmer local status` lists)."""
    import secrets

    from stigmer.cli._config import load_settings
    from stigmer.cli.commands._server import LogLevel, _configure_logging

    settings = load_settings()
    ctx = settings.context
    if ctx.backend != "local":
        raise CliError(
            f"context '{ctx.name}' is a server ({ctx.endpoint}): its console is served by the server "
            "(`stigmer server --http-listen HOST:PORT`, then open http://HOST:PORT/console/); "
            "`stigmer console` serves the local store"
        )
    from stigmer.cli.local._files import port_in_use
    from stigmer.server import run_server  # imported when the command runs: start-up stays light

    if port and port_in_use("127.0.0.1", port):
        raise CliError(f"port {port} is already in use on 127.0.0.1; choose another with --port")
    code = secrets.token_urlsafe(24)

    def ready(url: str) -> None:
        link = f"{url}/console/login?code={code}"
        echo_err(f"stigmer console on {url}/console/ (Ctrl-C stops it)")
        echo_err(f"log in once with: {link}")
        if open_browser:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(link)

    _configure_logging(LogLevel.warning)
    from stigmer.core import redact_logging

    redact_logging()
    with contextlib.suppress(KeyboardInterrupt):
        run_server(
            "127.0.0.1:0",
            database_url=settings.effective_database_url(),
            home=settings.home,
            allow_run=allow_run,
            schedules=False,  # Lite fires schedules with `stigmer schedule run-due`
            http_listen=f"127.0.0.1:{port}",
            on_http_ready=ready,
            console_code=code,
        )
    echo_err("stigmer console stopped")
