"""``stigmer server`` and ``stigmer token create|list|revoke`` (thin wrappers over stigmer-server)."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._errors import CliError

if TYPE_CHECKING:
    from stigmer.server import IssuedToken, TokenInfo, TokenStore

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

__all__ = ["server_app", "token_app"]

server_app = typer.Typer(add_completion=False)
token_app = typer.Typer(
    add_completion=False, help="Manage API tokens of a stigmer server.", no_args_is_help=True
)

DEFAULT_LISTEN = "127.0.0.1:7234"
DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database",
        help="Database URL (default: $STIGMER_DATABASE_URL, else the store in $STIGMER_HOME).",
        show_default=False,
    ),
]


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _configure_logging(level: LogLevel) -> None:
    """Stigmer's own log lines (one per call at DEBUG) to stderr; other libraries' warnings only.

    Libraries' INFO lines stay off: an HTTP client logs the URLs it requests, which can carry a
    value (the server logs references, never values).
    """
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    ours = logging.getLogger("stigmer")
    ours.setLevel(level.value.upper())
    ours.addHandler(handler)
    ours.propagate = False
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)


class Role(enum.StrEnum):
    user = "user"
    runner = "runner"
    admin = "admin"


def _database(database: str) -> tuple[str | None, Path]:
    from stigmer.cli._config import load_settings

    settings = load_settings()
    return (database or settings.database_url or None), settings.home


@server_app.command("server")
def server(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")] = DEFAULT_LISTEN,
    database: DatabaseOption = "",
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate for TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key for TLS.")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback address without TLS (not recommended).")
    ] = False,
    allow_run: Annotated[
        bool,
        typer.Option(
            "--allow-run",
            help="Let executions start local processes (run: shell|script, stdio MCP servers) as the "
            "server's OS user; off by default.",
        ),
    ] = False,
    allow_private_network: Annotated[
        bool,
        typer.Option(
            "--allow-private-network",
            help="Let agents' fetch tool reach loopback and private addresses; off by default.",
        ),
    ] = False,
    temporal: Annotated[
        str,
        typer.Option(
            "--temporal",
            help="Temporal HOST:PORT: executions become Temporal workflows (default: $STIGMER_TEMPORAL_ADDRESS).",
            show_default=False,
        ),
    ] = "",
    temporal_namespace: Annotated[
        str,
        typer.Option(
            "--temporal-namespace",
            "--namespace",
            help="Temporal namespace, NAME.ACCOUNT on Temporal Cloud (default: $STIGMER_TEMPORAL_NAMESPACE, else default).",
            show_default=False,
        ),
    ] = "",
    temporal_tls: Annotated[
        bool,
        typer.Option(
            "--temporal-tls",
            help="Reach Temporal over TLS with the system's roots (implied by the options below and an API key).",
        ),
    ] = False,
    temporal_tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--temporal-tls-ca", help="PEM CA bundle to verify the Temporal server with.", show_default=False
        ),
    ] = None,
    temporal_tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--temporal-tls-cert", help="PEM client certificate for mutual TLS.", show_default=False
        ),
    ] = None,
    temporal_tls_key: Annotated[
        Path | None,
        typer.Option(
            "--temporal-tls-key", help="PEM private key of --temporal-tls-cert.", show_default=False
        ),
    ] = None,
    temporal_tls_server_name: Annotated[
        str,
        typer.Option(
            "--temporal-tls-server-name",
            help="The name to expect in the Temporal server's certificate (and SNI).",
            show_default=False,
        ),
    ] = "",
    temporal_api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--temporal-api-key-file",
            help="File holding a Temporal API key (or set $STIGMER_TEMPORAL_API_KEY); implies TLS.",
            show_default=False,
        ),
    ] = None,
    http_listen: Annotated[
        str,
        typer.Option(
            "--http-listen",
            metavar="HOST:PORT",
            help="Also serve HTTP here: /metrics (Prometheus), /healthz, webhooks (POST /hooks/NAME) and CloudEvents (POST /events), with the same TLS as gRPC.",
            show_default=False,
        ),
    ] = "",
    metrics_public: Annotated[
        bool,
        typer.Option("--metrics-public", help="Serve /metrics without a token (default: any valid token)."),
    ] = False,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            help="debug (also one line per call: method, status, duration, token id), info, warning or error.",
            case_sensitive=False,
        ),
    ] = LogLevel.info,
    agent_max_requests: Annotated[
        int | None,
        typer.Option(
            "--agent-max-requests", min=1, help="Ceiling: model requests per agent run.", show_default=False
        ),
    ] = None,
    agent_max_tool_calls: Annotated[
        int | None,
        typer.Option(
            "--agent-max-tool-calls", min=1, help="Ceiling: tool calls per agent run.", show_default=False
        ),
    ] = None,
    agent_max_tokens: Annotated[
        int | None,
        typer.Option(
            "--agent-max-tokens",
            min=1,
            help="Ceiling: input + output tokens per agent run.",
            show_default=False,
        ),
    ] = None,
    agent_max_cost: Annotated[
        float | None,
        typer.Option(
            "--agent-max-cost",
            min=0.0,
            metavar="USD",
            help="Ceiling: cost per agent run, in US dollars (a run's own limits can only be lower).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the local store over gRPC until Ctrl-C or SIGTERM.

    Several servers may share one PostgreSQL database, each with its own STIGMER_HOME and the same
    master key; without --temporal each holds a lease on the runs it executes and takes over those
    of a server that is gone (STIGMER_SERVER_LEASE_SECONDS, default 30). See docs/scale-out.md."""
    if (tls_cert is None) != (tls_key is None):
        raise CliError("give both --tls-cert and --tls-key, or neither")
    from stigmer.core import InvalidArgument
    from stigmer.server import TemporalConnection

    try:
        connection = TemporalConnection.optional(
            temporal or None,
            namespace=temporal_namespace or None,
            tls=temporal_tls,
            tls_ca=temporal_tls_ca,
            tls_cert=temporal_tls_cert,
            tls_key=temporal_tls_key,
            tls_server_name=temporal_tls_server_name or None,
            api_key_file=temporal_api_key_file,
        )
    except InvalidArgument as err:
        raise CliError(str(err), exit_code=2) from None
    from stigmer.server import run_server  # imported when the command runs: `--help` stays fast

    database_url, home = _database(database)
    _configure_logging(log_level)
    kwargs: dict[str, Any] = {
        "listen": listen,
        "database_url": database_url,
        "home": home,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "insecure": insecure,
        "allow_run": allow_run,
        "agent_limits": {
            name: value
            for name, value in (
                ("max_requests", agent_max_requests),
                ("max_tool_calls", agent_max_tool_calls),
                ("max_tokens", agent_max_tokens),
                ("max_cost_usd", agent_max_cost),
            )
            if value is not None
        },
        "allow_private_network": allow_private_network,
        "temporal": connection,
        "on_ready": lambda address: echo_err(f"stigmer server listening on {address} (Ctrl-C stops it)"),
        "http_listen": http_listen or None,
        "metrics_public": metrics_public,
        "on_http_ready": lambda url: echo_err(f"stigmer server HTTP on {url} (/metrics, /healthz)"),
    }
    if allow_run:
        echo_err(
            "--allow-run: executions may start local processes (run: shell|script, stdio MCP servers) "
            "as this OS user"
        )
    from stigmer.core import redact_logging

    redact_logging()  # what this process logs masks the secrets it handles
    with contextlib.suppress(KeyboardInterrupt):
        run_server(**kwargs)
    echo_err("stigmer server stopped")


def _store(database: str) -> TokenStore:
    from stigmer.server import TokenStore

    database_url, home = _database(database)
    return TokenStore(database_url=database_url, home=home)


def _close(store: TokenStore) -> None:
    store.close()


def _info(token: TokenInfo | IssuedToken, *, revoked: bool) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "createdAt": token.created_at.isoformat(),
        "revoked": revoked,
    }


@token_app.command("create")
def create(
    role: Annotated[Role, typer.Option("--role", help="user, runner or admin.", case_sensitive=False)],
    name: Annotated[str | None, typer.Option("--name", help="A name to recognise the token by.")] = None,
    database: DatabaseOption = "",
    output: OutputOption = Output.table,
) -> None:
    """Create an API token; the token itself is printed this once only."""
    store = _store(database)
    try:
        issued = store.create(role=role.value, name=name)
    finally:
        _close(store)
    data = {**_info(issued, revoked=False), "token": issued.token}
    if output is Output.json:
        emit_json(data)
    elif output is Output.yaml:
        emit_yaml([data])
    else:
        echo_err(
            f"created {role.value} token '{issued.name}' ({issued.id}); store it now, it is not shown again:"
        )
        echo(issued.token)


@token_app.command("list")
def list_(database: DatabaseOption = "", output: OutputOption = Output.table) -> None:
    """List tokens (never the secrets)."""
    store = _store(database)
    try:
        tokens = [_info(t, revoked=t.revoked) for t in store.list()]
    finally:
        _close(store)
    if output is Output.json:
        emit_json(tokens)
    elif output is Output.yaml:
        emit_yaml(tokens)
    else:
        from datetime import datetime

        rows = [
            [
                t["id"],
                t["name"],
                t["role"],
                age(datetime.fromisoformat(t["createdAt"])),
                "yes" if t["revoked"] else "",
            ]
            for t in tokens
        ]
        print_table(["ID", "NAME", "ROLE", "AGE", "REVOKED"], rows, empty="no tokens")


@token_app.command("revoke")
def revoke(
    id_or_name: Annotated[str, typer.Argument(metavar="ID_OR_NAME", help="Token id or name.")],
    database: DatabaseOption = "",
) -> None:
    """Revoke a token; requests using it are refused from now on."""
    store = _store(database)
    try:
        info = store.revoke(id_or_name)
    finally:
        _close(store)
    echo(f"token {getattr(info, 'name', '') or id_or_name} ({getattr(info, 'id', id_or_name)}) revoked")
