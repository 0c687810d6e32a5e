"""Shell completion of names, kinds, execution ids and contexts (``stigmer run <TAB>``).

Each completer reads the context the command line names (``--context``, else the current one)
through the SDK. Completion runs while the user waits at a prompt, so it is bounded and silent:
a server gets one short deadline and no retry, a watchdog ends the process with no completions
after ``HARD_LIMIT`` seconds whatever blocks, nothing is written to stderr, and any error gives
no completions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from stigmer.core import Context
    from stigmer.sdk import AsyncStigmer

__all__ = [
    "complete_agent",
    "complete_context",
    "complete_delete_kind",
    "complete_execution",
    "complete_get_kind",
    "complete_kind",
    "complete_name_of_kind",
    "complete_pending_execution",
    "complete_runnable",
    "complete_secret",
    "complete_workflow",
]

SERVER_TIMEOUT = 1.0  # seconds: the deadline of one call to a server
HARD_LIMIT = 4.0  # seconds: after this the process ends with no completions
EXECUTION_LIMIT = 100  # newest executions offered

# a completion is a value, or (value, help) which zsh, fish and PowerShell show beside it
Completion = str | tuple[str, str]
Completer = Callable[[typer.Context, str], list[Completion]]


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """Stderr silenced (file descriptor 2 too: grpc's C core logs there) and a watchdog that
    ends the process with exit 0 and no output if the completer is not done in time."""
    import threading

    watchdog = threading.Timer(HARD_LIMIT, os._exit, args=(0,))
    watchdog.daemon = True
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    watchdog.start()
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
            yield
    finally:
        watchdog.cancel()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet(fn: Completer) -> Completer:
    """``fn`` bounded and silenced; any error means no completions."""

    def complete(ctx: typer.Context, incomplete: str) -> list[Completion]:
        try:
            with _bounded():
                return [c for c in fn(ctx, incomplete) if _value(c).startswith(incomplete)]
        except BaseException:  # completion must never print a traceback, whatever happens
            return []

    complete.__name__ = fn.__name__
    complete.__doc__ = fn.__doc__
    return complete


def _value(item: Completion) -> str:
    return item if isinstance(item, str) else item[0]


def _context_name(ctx: typer.Context) -> str | None:
    """``--context`` given before the command (the root callback does not run while completing)."""
    root = ctx.find_root()
    name = root.params.get("context") if root.params else None
    return str(name) if name else None


def _ask(
    ctx: typer.Context, query: Callable[[AsyncStigmer], Coroutine[Any, Any, list[Completion]]]
) -> list[Completion]:
    """Run ``query`` against a client of the command line's context, within the deadline."""
    import asyncio

    from stigmer.sdk import AsyncStigmer

    client = AsyncStigmer(context=_context_name(ctx), timeout=SERVER_TIMEOUT, retries=0)

    async def go() -> list[Completion]:
        try:
            return await asyncio.wait_for(query(client), HARD_LIMIT - 0.5)
        finally:
            await client.aclose(wait_for_runs=False)

    return asyncio.run(go())


def _names(ctx: typer.Context, kinds: tuple[str, ...], *, exclude: object = ()) -> list[Completion]:
    given = set(exclude) if isinstance(exclude, list | tuple) else set()

    async def query(client: AsyncStigmer) -> list[Completion]:
        names: list[Completion] = []
        for kind in kinds:
            for resource in await client.list(kind):
                name = _resource_name(resource)
                if name and name not in names and name not in given:
                    names.append(name)
        return names

    return _ask(ctx, query)


def _resource_name(resource: Any) -> str:
    name: str = resource.metadata.name
    return name


@_quiet
def complete_runnable(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Workflows and agents (``stigmer run <TAB>``)."""
    from stigmer.core import RUNNABLE_KINDS

    return _names(ctx, RUNNABLE_KINDS)


@_quiet
def complete_agent(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Agent names."""
    return _names(ctx, ("Agent",))


@_quiet
def complete_workflow(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Workflow names."""
    return _names(ctx, ("Workflow",))


def _kinds(*, executions: bool) -> list[Completion]:
    """CLI kind names: the runnable ones first, then the others in apply order."""
    from stigmer.core import KIND_TABLE, RUNNABLE_KINDS, kind_info

    names: list[Completion] = [kind_info(k).cli_name for k in RUNNABLE_KINDS]
    names += [k.cli_name for k in KIND_TABLE if k.applicable and k.name not in RUNNABLE_KINDS]
    return [*names, "execution"] if executions else names


@_quiet
def complete_kind(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Kinds, executions included (``stigmer describe <TAB>``)."""
    return _kinds(executions=True)


@_quiet
def complete_get_kind(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Kinds, executions and ``all`` (``stigmer get <TAB>``)."""
    return [*_kinds(executions=True), "all"]


@_quiet
def complete_delete_kind(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Kinds that can be deleted and exported (no executions)."""
    return _kinds(executions=False)


@_quiet
def complete_name_of_kind(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Names of the kind given before (``stigmer get agent <TAB>``); execution ids for executions."""
    from stigmer.core import EXECUTION, kind_info
    from stigmer.sdk._kinds import resolve_kind

    text = ctx.params.get("kind")
    if not text:
        return []
    kind = resolve_kind(str(text), executions=True)
    if kind == EXECUTION or kind_info(kind).is_execution:
        return _execution_ids(ctx, incomplete, kind="" if kind == EXECUTION else kind)
    return _names(ctx, (kind,), exclude=ctx.params.get("names"))  # `delete agent a <TAB>`: not a again


def _execution_ids(
    ctx: typer.Context, incomplete: str, *, kind: str = "", phase: str = ""
) -> list[Completion]:
    """Ids, newest first, each with ``workflow hello SUCCEEDED`` as its help."""
    from stigmer.core import phase_name

    if not kind and incomplete[:3] in ("aex", "wex"):
        kind = incomplete[:3]

    async def query(client: AsyncStigmer) -> list[Completion]:
        page = await client.list_executions(kind=kind, phase=phase, limit=EXECUTION_LIMIT)
        return [
            (
                ex.metadata.id,
                f"{ex.kind.removesuffix('Execution').lower()} {ex.spec.target.name or ex.spec.target.id} "
                f"{phase_name(ex.status.phase)}",
            )
            for ex in page.executions
        ]

    return _ask(ctx, query)


@_quiet
def complete_execution(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Execution ids, newest first (``stigmer execution logs wex<TAB>``)."""
    return _execution_ids(ctx, incomplete)


@_quiet
def complete_pending_execution(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Ids of executions waiting for an approval, newest first (``execution approve <TAB>``)."""
    return _execution_ids(ctx, incomplete, phase="WAITING_APPROVAL")


@_quiet
def complete_secret(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Secret names (``stigmer secret delete <TAB>``)."""

    async def query(client: AsyncStigmer) -> list[Completion]:
        return [meta.name for meta in await client.list_secrets(incomplete)]

    return _ask(ctx, query)


@_quiet
def complete_context(ctx: typer.Context, incomplete: str) -> list[Completion]:
    """Context names from config.yaml (no connection)."""
    from stigmer.cli._config import load_settings

    settings = load_settings()
    return [(name, _where(context)) for name, context in settings.contexts.items()]


def _where(ctx: Context) -> str:
    """A context's help: ``local``, or ``cloud grpc://host:port``."""
    return f"{ctx.backend} {ctx.endpoint}".strip()
