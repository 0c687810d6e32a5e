"""``stigmer context list|use|show``, ``stigmer login`` and ``stigmer logout``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from stigmer.cli._config import (
    config_contexts,
    load_settings,
    read_credentials,
    write_config,
    write_credentials,
)
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_context
from stigmer.cli.output._format import Output, OutputOption, echo, emit_json, emit_yaml, print_table

__all__ = ["context_app", "login_app", "logout_app"]

context_app = typer.Typer(
    add_completion=False, help="List, show and select contexts (local or servers).", no_args_is_help=True
)
login_app = typer.Typer(add_completion=False)
logout_app = typer.Typer(add_completion=False)


def _context_dicts() -> tuple[str, list[dict[str, Any]]]:
    settings = load_settings()
    tokens = read_credentials(settings.home)
    items = []
    for name, ctx in settings.contexts.items():
        item: dict[str, Any] = {
            "name": name,
            "backend": ctx.backend,
            "current": name == settings.current_context,
        }
        if ctx.backend == "local":
            item["database"] = (
                settings.database_url or ctx.database_url or f"sqlite:///{settings.home / 'stigmer.db'}"
            )
        else:
            item["endpoint"] = ctx.endpoint
            item["loggedIn"] = name in tokens
        items.append(item)
    return settings.current_context, items


@context_app.command("list")
def list_(output: OutputOption = Output.table) -> None:
    """List contexts; the current one is marked with *."""
    _, items = _context_dicts()
    if output is Output.json:
        emit_json(items)
    elif output is Output.yaml:
        emit_yaml(items)
    else:
        rows = [
            ["*" if i["current"] else "", i["name"], i["backend"], i.get("endpoint") or i.get("database", "")]
            for i in items
        ]
        print_table(["CURRENT", "NAME", "BACKEND", "WHERE"], rows)


@context_app.command("show")
def show(output: OutputOption = Output.table) -> None:
    """Show the current context."""
    current, items = _context_dicts()
    item = next((i for i in items if i["name"] == current), None)
    if item is None:
        raise CliError(f"context '{current}' is not configured; run `stigmer context list`")
    if output is Output.json:
        emit_json(item)
    elif output is Output.yaml:
        emit_yaml([item])
    else:
        for key, value in item.items():
            if key != "current":
                echo(f"{key}: {value}")


@context_app.command("use")
def use(name: Annotated[str, typer.Argument(help="Context name.", autocompletion=complete_context)]) -> None:
    """Select the context later commands use."""
    settings = load_settings()
    if name not in settings.contexts:
        from stigmer.sdk._targets import did_you_mean

        hint = did_you_mean(name, list(settings.contexts))
        raise CliError(
            f"no context named '{name}'{hint}; add one with `stigmer login --endpoint URL --token TOKEN`"
        )
    write_config(settings, current=name, contexts=config_contexts(settings))
    echo(f"switched to context '{name}'")


def _default_name(endpoint: str) -> str:
    from urllib.parse import urlparse

    from stigmer.core import slugify

    first = endpoint.split(",", 1)[0].strip()  # several servers: named after the first
    first = first.replace("dns:///", "dns://", 1)
    try:
        parsed = urlparse(first if "://" in first else f"grpc://{first}")
        host = parsed.hostname
    except ValueError:
        host = None
    return slugify(host or first)


_CHECK_TIMEOUT = 5.0  # seconds the server has to answer the login check


def _check_login(endpoint: str, token: str) -> None:
    """One authenticated call to ``endpoint`` with ``token`` (any role may make it); a failure
    is one ``CliError`` saying what is wrong and what to do, before anything is written."""
    from stigmer.cli._client import run_async
    from stigmer.core import StigmerError, Unauthenticated, Unavailable
    from stigmer.sdk import AsyncStigmer

    async def check() -> None:
        async with AsyncStigmer(endpoint=endpoint, token=token) as client:
            await client.check(timeout=_CHECK_TIMEOUT)

    unchanged = "nothing was changed"
    try:
        run_async(check())
    except Unauthenticated:
        raise CliError(
            f"not logged in: {endpoint} refused the token (invalid or revoked); get one with "
            f"`stigmer token create` on the server and run `stigmer login` again; {unchanged}"
        ) from None
    except Unavailable as exc:
        raise CliError(f"not logged in: {exc}; {unchanged}") from None
    except StigmerError as exc:
        raise CliError(f"not logged in to {endpoint}: {exc}; {unchanged}") from None


@login_app.command("login")
def login(
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            help="Server address: grpc://host:port or grpcs://host:port; several servers of one "
            "database as grpc://a:7234,grpc://b:7234 or dns:///name:7234 (calls are balanced over them).",
        ),
    ],
    token: Annotated[
        str,
        typer.Option("--token", help="API token (asked for without echo when omitted).", show_default=False),
    ] = "",
    name: Annotated[str, typer.Option("--name", help="Context name (default: derived from the host).")] = "",
) -> None:
    """Add (or update) a server context with its token, and make it current.

    The endpoint and the token are checked first (one call, 5 s deadline); when the server
    cannot be reached or refuses the token, nothing is written and the context stays as it was."""
    if not endpoint.strip():
        raise CliError("--endpoint is empty; give grpc://host:port or grpcs://host:port")
    name = name or _default_name(endpoint)
    if name == "local":
        raise CliError("'local' is the embedded store's context; choose another --name")
    if not token:
        from stigmer.cli.commands._params import read_secret_value

        token = read_secret_value("token")
    _check_login(endpoint, token)
    settings = load_settings()
    contexts = [c for c in config_contexts(settings) if c.get("name") != name]
    contexts.append({"name": name, "backend": "cloud", "endpoint": endpoint})
    tokens = read_credentials(settings.home)
    tokens[name] = token
    write_credentials(settings.home, tokens)
    write_config(settings, current=name, contexts=contexts)
    echo(f"logged in to {endpoint} as context '{name}' (now current)")


@logout_app.command("logout")
def logout(
    name: Annotated[
        str | None,
        typer.Argument(help="Context to forget (default: the current one).", autocompletion=complete_context),
    ] = None,
) -> None:
    """Forget a server context and its token; the local context becomes current if it was."""
    settings = load_settings()
    name = name or settings.current_context
    if name == "local":
        raise CliError("the local context has no login; name a server context: `stigmer logout NAME`")
    contexts = config_contexts(settings)
    tokens = read_credentials(settings.home)
    if name not in tokens and not any(c.get("name") == name for c in contexts):
        from stigmer.sdk._targets import did_you_mean

        raise CliError(f"no context named '{name}'{did_you_mean(name, list(settings.contexts))}")
    tokens.pop(name, None)
    write_credentials(settings.home, tokens)
    current = "local" if settings.current_context == name else settings.current_context
    write_config(settings, current=current, contexts=[c for c in contexts if c.get("name") != name])
    echo(f"logged out of '{name}'; current context: {current}")
