"""``stigmer get`` and ``stigmer describe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_get_kind, complete_kind, complete_name_of_kind
from stigmer.cli.commands._params import kind_argument
from stigmer.cli.output._format import Output, OutputOption, age, echo, emit_json, emit_yaml, print_table
from stigmer.cli.output._view import cli_name

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from stigmer.sdk import AsyncStigmer

__all__ = ["describe_app", "detail", "get_app", "list_app", "resource_rows"]

get_app = typer.Typer(add_completion=False)
list_app = typer.Typer(add_completion=False)
describe_app = typer.Typer(add_completion=False)

KindArg = Annotated[
    str,
    typer.Argument(
        help="agent, workflow, skill, mcpserver, environment, session, schedule, trigger or execution (or a short form).",
        autocompletion=complete_kind,
    ),
]
GetKindArg = Annotated[
    str,
    typer.Argument(
        help="agent, workflow, skill, mcpserver, environment, session, schedule, trigger or execution (or a short form)."
        " all: every kind of resource.",
        autocompletion=complete_get_kind,
    ),
]


async def list_all(client: AsyncStigmer, kind: str, selector: str = "") -> list[Message]:
    return await client.list(kind, selector)


async def get_one(client: AsyncStigmer, kind: str, name: str) -> Message:
    from stigmer.cli.commands._run import CREATE_HINT
    from stigmer.core import NotFound

    try:
        return await client.get(kind, name)
    except NotFound:
        raise await client.not_found([kind], name, create_hint=CREATE_HINT) from None


def detail(kind: str, inner: Any) -> tuple[str, str]:
    """A kind-specific (header, value) column for tables."""
    spec = inner.spec
    if kind == "Agent":
        model = "/".join(x for x in (spec.model.provider, spec.model.name) if x)
        return "MODEL", model or "-"
    if kind == "Workflow":
        from google.protobuf import json_format

        data = json_format.MessageToDict(spec)
        tasks = data.get("do")
        return "TASKS", str(len(tasks)) if isinstance(tasks, list) else "-"
    if kind == "Skill":
        key = spec.artifact
        return "CONTENT", (key[:19] if key else ("inline" if spec.content else "-"))
    if kind == "McpServer":
        transport = spec.WhichOneof("transport")
        if transport == "stdio":
            return "TRANSPORT", f"stdio: {' '.join([spec.stdio.command, *spec.stdio.args])}"
        if transport == "http":
            return "TRANSPORT", f"http: {spec.http.url}"
        return "TRANSPORT", "-"
    if kind == "Environment":
        return "VARIABLES/SECRETS", f"{len(spec.variables)}/{len(spec.secrets)}"
    if kind == "Session":
        return "AGENT", spec.agent.name or spec.agent.id or "-"
    if kind == "Schedule":
        from stigmer.cli.commands._schedules import summary

        return "SCHEDULE", summary(inner)
    if kind == "Trigger":
        target = f"{spec.target.kind.lower()}/{spec.target.name or spec.target.id}"
        off = spec.HasField("enabled") and not spec.enabled
        return "WEBHOOK", f"/hooks/{inner.metadata.name} -> {target}, key {spec.secret}" + (
            ", disabled" if off else ""
        )
    return "", ""


def resource_rows(kind: str, resources: list[Message]) -> tuple[list[str], list[list[str]]]:
    """Table headers and rows for resources of one kind."""
    from stigmer.core import unwrap

    header = detail(kind, unwrap(resources[0]))[0] if resources else ""
    headers = ["NAME", "VERSION", *([header] if header else []), "AGE"]
    rows = []
    for res in resources:
        inner: Any = unwrap(res)
        meta = inner.metadata
        extra = [detail(kind, inner)[1]] if header else []
        rows.append([meta.name, str(meta.version), *extra, age(meta.updated_at or meta.created_at)])
    return headers, rows


@get_app.command("get")
def get(
    kind: GetKindArg,
    name: Annotated[
        str | None,
        typer.Argument(
            help="Name (or id) of one resource.", show_default=False, autocompletion=complete_name_of_kind
        ),
    ] = None,
    selector: Annotated[
        str, typer.Option("--selector", "-l", help="Label selector, e.g. team=support,!beta.")
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """List resources of KIND, or show the one called NAME (-o yaml gives an applyable manifest).

    KIND all lists every kind of resource (executions: stigmer execution list). `get KIND/NAME`
    is `get KIND NAME`."""
    if "/" in kind and name is None:
        kind, _, name = kind.partition("/")
        if not kind or not name:
            raise CliError("expected KIND/NAME, for example `stigmer get agent/support-bot`")
    if kind.strip().lower() == "all":
        _get_all(name, selector, output)
        return
    resolved = kind_argument(kind)
    if _is_execution(resolved):
        _get_executions(resolved, name, output)
        return

    async def go() -> list[Message]:
        async with connect() as client:
            if name is not None:
                return [await get_one(client, resolved, name)]
            return await list_all(client, resolved, selector)

    resources = run_async(go())
    if output is Output.table:
        headers, rows = resource_rows(resolved, list(resources))
        print_table(headers, rows, empty=f"no {cli_name(resolved)} resources")
        return
    from stigmer.core import message_to_manifest

    docs = [message_to_manifest(r) for r in resources]
    if output is Output.json:
        emit_json(docs[0] if name is not None else docs)
    else:
        emit_yaml(docs)


def _get_all(name: str | None, selector: str, output: Output) -> None:
    """``get all``: each kind of resource in apply order; a table per kind that has any, names
    written ``kind/name`` as kubectl does; ``-o json|yaml`` the manifests of them all."""
    from stigmer.core import applicable_kinds

    if name is not None:
        raise CliError(f"'get all' lists every resource; to show {name!r}, name its kind: get KIND {name}", 2)
    kinds = [k.name for k in applicable_kinds()]

    async def go() -> list[tuple[str, list[Message]]]:
        async with connect() as client:
            return [(k, list(await list_all(client, k, selector))) for k in kinds]

    found = [(k, resources) for k, resources in run_async(go()) if resources]
    if output is Output.table:
        if not found:
            echo("no resources")
        for i, (k, resources) in enumerate(found):
            headers, rows = resource_rows(k, resources)
            if i:
                echo()
            print_table(headers, [[f"{cli_name(k)}/{row[0]}", *row[1:]] for row in rows])
        return
    from stigmer.core import message_to_manifest

    docs = [message_to_manifest(r) for _, resources in found for r in resources]
    if output is Output.json:
        emit_json(docs)
    else:
        emit_yaml(docs)


def _is_execution(kind: str) -> bool:
    from stigmer.core import EXECUTION, kind_info

    return kind == EXECUTION or kind_info(kind).is_execution


def _get_executions(kind: str, execution_id: str | None, output: Output) -> None:
    from stigmer.cli.commands._executions import get as get_execution
    from stigmer.cli.commands._executions import list_executions, print_executions
    from stigmer.core import EXECUTION

    if execution_id is not None:
        get_execution(execution_id, output)
        return

    async def go() -> list[Any]:
        async with connect() as client:
            return await list_executions(client, kind="" if kind == EXECUTION else kind)

    print_executions(run_async(go()), output)


@describe_app.command("describe")
def describe(
    kind: KindArg,
    name: Annotated[
        str, typer.Argument(help="Name (or id) of the resource.", autocompletion=complete_name_of_kind)
    ],
    output: OutputOption = Output.table,
) -> None:
    """Show a resource's spec, status and recent executions."""
    resolved = kind_argument(kind)
    if _is_execution(resolved):
        from stigmer.cli.commands._executions import get as get_execution

        get_execution(name, output)
        return

    from stigmer.core import RUNNABLE_KINDS

    async def go() -> tuple[Message, list[Any]]:
        from stigmer.cli.commands._executions import list_executions

        async with connect() as client:
            resource = await get_one(client, resolved, name)
            recent: list[Any] = []
            if resolved in RUNNABLE_KINDS:
                recent = await list_executions(client, target=f"{resolved}/{name}", limit=5)
            return resource, recent

    resource, recent = run_async(go())
    from stigmer.cli.output._view import execution_to_dict
    from stigmer.core import dump_yaml, message_to_manifest

    manifest = message_to_manifest(resource)
    if output is not Output.table:
        data = {**manifest, "recentExecutions": [execution_to_dict(ex) for ex in recent]}
        emit_json(data) if output is Output.json else emit_yaml([data])
        return
    meta = manifest.get("metadata", {})
    echo(f"{cli_name(resolved)}/{meta.get('name')}  id={meta.get('id')}  version={meta.get('version')}")
    for section in ("spec", "status"):
        if manifest.get(section):
            echo(f"\n{section}:")
            echo(_indent(dump_yaml([manifest[section]])))
    if resolved in RUNNABLE_KINDS:
        echo("\nrecent executions:")
        if not recent:
            echo("  none yet")
        else:
            from stigmer.core import phase_name

            print_table(
                ["ID", "PHASE", "AGE"],
                [[ex.metadata.id, phase_name(ex.status.phase), age(ex.metadata.created_at)] for ex in recent],
            )


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.rstrip("\n").splitlines())


@list_app.command("list")
def list_(
    kind: GetKindArg,
    selector: Annotated[
        str, typer.Option("--selector", "-l", help="Label selector, e.g. team=support,!beta.")
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """List resources of KIND (the same as `stigmer get KIND`)."""
    get(kind, None, selector, output)
