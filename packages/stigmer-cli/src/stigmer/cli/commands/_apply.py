"""``stigmer apply`` and ``stigmer delete``."""

from __future__ import annotations

import difflib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_delete_kind, complete_name_of_kind
from stigmer.cli.output._format import (
    Output,
    OutputOption,
    color_enabled,
    echo,
    echo_err,
    emit_json,
    emit_yaml,
)
from stigmer.cli.output._view import cli_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from google.protobuf.message import Message
    from stigmer.core import LoadedResource
    from stigmer.sdk import ValidationProblem

__all__ = ["apply_app", "delete_app", "diff_manifests", "load_files", "order_resources", "refuse_invalid"]

apply_app = typer.Typer(add_completion=False)
delete_app = typer.Typer(add_completion=False)

FileOption = Annotated[
    list[str],
    typer.Option(
        "--filename",
        "-f",
        help="Manifest file, directory (recursive) or - for stdin; repeatable.",
        show_default=False,
    ),
]
_VOLATILE = ("id", "slug", "version", "createdAt", "updatedAt")
_ACTIONS = {0: "unspecified", 1: "created", 2: "updated", 3: "unchanged"}


def order_resources(loaded: list[LoadedResource]) -> list[LoadedResource]:
    """The SDK's ``order_resources`` (dependency order, duplicates refused) with CLI errors."""
    from stigmer.core import InvalidArgument
    from stigmer.sdk._apply_order import order_resources as sdk_order_resources

    try:
        return sdk_order_resources(loaded)
    except InvalidArgument as exc:
        raise CliError(exc.message) from None


def refuse_invalid(problems: Sequence[ValidationProblem]) -> None:
    """Print warnings as ``warning: …``; with errors, print each as ``error: file:line: path:
    message`` and exit 1 (nothing is applied)."""
    for problem in problems:
        if problem.warning:
            echo_err(f"warning: {problem}")
    errors = [p for p in problems if not p.warning]
    for problem in errors:
        echo_err(f"error: {problem}")
    if errors:
        raise typer.Exit(1)


def _comparable(resource: Message | None) -> dict[str, Any]:
    from stigmer.core import message_to_manifest

    if resource is None:
        return {}
    data = message_to_manifest(resource, include_status=False)
    meta = dict(data.get("metadata") or {})
    for key in _VOLATILE:
        meta.pop(key, None)
    data["metadata"] = meta
    return data


def _yaml(data: dict[str, Any]) -> str:
    """Block-style YAML without line folding (a long value stays on its line in a diff)."""
    import io

    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.width = 1_000_000
    y.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def diff_manifests(previous: Message | None, current: Message, label: str) -> str:
    """Unified diff of two resources' YAML (status and system metadata left out)."""
    before = _yaml(_comparable(previous)).splitlines(keepends=True) if previous is not None else []
    after = _yaml(_comparable(current)).splitlines(keepends=True)
    lines = difflib.unified_diff(before, after, fromfile=f"{label} (stored)", tofile=f"{label} (applied)")
    return "".join(lines)


def _colour_diff(text: str) -> str:
    if not color_enabled():
        return text
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("+++", "---")):
            out.append(f"\033[1m{line.rstrip(chr(10))}\033[0m\n")
        elif line.startswith("+"):
            out.append(f"\033[32m{line.rstrip(chr(10))}\033[0m\n")
        elif line.startswith("-"):
            out.append(f"\033[31m{line.rstrip(chr(10))}\033[0m\n")
        elif line.startswith("@@"):
            out.append(f"\033[36m{line.rstrip(chr(10))}\033[0m\n")
        else:
            out.append(line)
    return "".join(out)


def load_files(filenames: list[str]) -> list[LoadedResource]:
    from stigmer.core import load_manifests

    if not filenames:
        raise CliError("give at least one manifest with -f FILE (a file, a directory, or - for stdin)")
    if filenames.count("-") > 1:
        raise CliError("stdin (-f -) can be given only once")
    stdin_text = sys.stdin.read() if "-" in filenames else None
    loaded = load_manifests([f for f in filenames if not f.endswith(".py")], stdin_text=stdin_text)
    if python := [f for f in filenames if f.endswith(".py")]:  # resources defined with the SDK
        from stigmer.sdk._pyfile import load_python_manifests

        loaded += [r for f in python for r in load_python_manifests(f)]
    if not loaded:
        raise CliError("the manifests hold no resources")
    print_notices(loaded)
    return loaded


def print_notices(loaded: Sequence[LoadedResource]) -> None:
    """One ``notice: FILE: …`` line per file whose resources were read with a mapping (upstream
    fields, tolerated spellings): what was mapped and what was dropped."""
    by_file: dict[str, list[str]] = {}
    for item in loaded:
        if item.notice:
            by_file.setdefault(item.source or "<input>", []).append(item.notice)
    for source, notices in by_file.items():
        echo_err(f"notice: {source}: {' | '.join(notices)}")


def _load_each_file(filenames: list[str]) -> tuple[list[LoadedResource], dict[str, str]]:
    """For a dry run: every file on its own, so one that cannot be read does not hide the
    others. Gives the resources read and, per file that cannot be, its error line."""
    from stigmer.core import ManifestError, manifest_files, parse_manifest

    loaded: list[LoadedResource] = []
    refused: dict[str, str] = {}
    rest = [f for f in filenames if f == "-" or f.endswith(".py")]
    for name in filenames:
        if name in rest:
            continue
        try:
            files = manifest_files(name)
        except ManifestError as exc:
            refused[name] = str(exc)
            continue
        for file in files:
            try:
                loaded += parse_manifest(file.read_text(encoding="utf-8"), str(file))
            except ManifestError as exc:
                refused[str(file)] = str(exc)
            except (OSError, UnicodeDecodeError) as exc:
                refused[str(file)] = f"{file}: cannot read: {exc}"
    if rest:
        loaded += load_files(rest)
    elif loaded:
        print_notices(loaded)
    if not loaded and not refused:
        raise CliError("the manifests hold no resources")
    return loaded, refused


@apply_app.command("apply")
def apply(
    filename: FileOption = [],  # noqa: B006 - typer needs a literal default
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change (a YAML diff); write nothing.")
    ] = False,
    output: OutputOption = Output.table,
    context: Annotated[
        str,
        typer.Option(
            "--context", help="Apply to this context instead of the current one.", show_default=False
        ),
    ] = "",
) -> None:
    """Create or update every resource in the manifests, in dependency order.

    Workflows are validated first, as `stigmer run` would (see `stigmer validate`): if any has a
    problem, each is printed as `error: file:line: path: message` and nothing is stored."""
    if context:
        from stigmer.cli._options import OPTIONS

        OPTIONS.context = context
    refused: dict[str, str] = {}
    if dry_run:  # report every file: what applies, what was mapped, what cannot be
        if not filename:
            raise CliError("give at least one manifest with -f FILE (a file, a directory, or - for stdin)")
        given, refused = _load_each_file(filename)
        for message in refused.values():
            echo_err(f"error: {message}")
    else:
        given = load_files(filename)
    loaded = order_resources(given)

    async def go() -> list[dict[str, Any]]:
        from stigmer.core import StigmerError, unwrap

        results: list[dict[str, Any]] = [
            {"file": file, "action": "refused", "error": message, "dryRun": True}
            for file, message in refused.items()
        ]
        async with connect() as client:
            # The validation `stigmer run` does, before anything is stored (also in a dry run).
            problems = await client.validate(*given) if given else []
            if not dry_run:
                refuse_invalid(problems)
            invalid = _report_problems(problems, results) if dry_run else set()
            for item in loaded:
                if (item.kind, item.name) in invalid:
                    continue
                try:
                    response = await client.apply_loaded(item, dry_run=dry_run)
                except StigmerError as exc:
                    if not dry_run:
                        raise
                    if _refers_to_batch(str(exc), loaded):  # stored first by a real apply
                        exists = await client.exists(item.kind, item.name)
                        action = "updated" if exists else "created"
                        label = f"{cli_name(item.kind)}/{item.name}"
                        if output is Output.table:
                            echo(f"{label} would be {action} (dry run; it refers to resources of this batch)")
                        results.append(
                            {
                                "kind": item.kind,
                                "name": item.name,
                                "action": action,
                                "dryRun": True,
                                "file": item.source,
                            }
                            | ({"notice": item.notice} if item.notice else {})
                        )
                        continue
                    echo_err(f"error: {item.source}: {exc}")
                    results.append(
                        {
                            "file": item.source,
                            "kind": item.kind,
                            "name": item.name,
                            "action": "refused",
                            "error": str(exc),
                            "dryRun": True,
                        }
                    )
                    continue
                action = _ACTIONS.get(response.action, "unspecified")
                meta = unwrap(response.resource).metadata  # type: ignore[attr-defined]
                label = f"{cli_name(item.kind)}/{item.name}"
                result = {
                    "kind": item.kind,
                    "name": item.name,
                    "id": meta.id,
                    "version": meta.version,
                    "action": action,
                    "dryRun": dry_run,
                }
                if item.notice:
                    result["notice"] = item.notice
                if dry_run:
                    result["file"] = item.source
                results.append(result)
                if output is Output.table:
                    if dry_run:
                        echo(f"{label} would be {action} (dry run)")
                        if action != "unchanged":
                            previous = response.previous if response.HasField("previous") else None
                            diff = diff_manifests(previous, response.resource, label)
                            if diff:
                                echo(_colour_diff(diff).rstrip("\n"))
                    else:
                        echo(f"{label} {action}")
        return results

    results = run_async(go())
    if output is Output.json:
        emit_json(results)
    elif output is Output.yaml:
        emit_yaml(results)
    elif dry_run:
        _per_file_summary(results)
    if any(r.get("action") == "refused" for r in results):
        raise typer.Exit(1)


def _refers_to_batch(message: str, batch: Sequence[LoadedResource]) -> bool:
    """Whether a dry run's "references X, which does not exist" names a resource of the batch
    (a real apply stores that one first, in dependency order)."""
    _, sep, rest = message.partition(" references ")
    return bool(sep) and any(rest.startswith(f"{item.kind} '{item.name}'") for item in batch)


def _per_file_summary(results: list[dict[str, Any]]) -> None:
    """The end of a dry run's table: one line per file, what applies (and what was mapped), or
    why it cannot."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_file.setdefault(str(r.get("file") or "<input>"), []).append(r)
    echo("per file:")
    for file in sorted(by_file):
        items = by_file[file]
        refused = [r for r in items if r["action"] == "refused"]
        if refused:
            echo(f"  {file}: cannot apply: {refused[0]['error']}")
            continue
        applied = ", ".join(f"{cli_name(r['kind'])}/{r['name']} would be {r['action']}" for r in items)
        mapped = " | ".join(r["notice"] for r in items if r.get("notice"))
        echo(f"  {file}: applies ({applied}){'; ' + mapped if mapped else ''}")


def _report_problems(
    problems: Sequence[ValidationProblem], results: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """A dry run's validation report: each problem printed, each invalid resource a ``refused``
    result (the others are still shown); gives the (kind, name) of the invalid ones."""
    invalid: set[tuple[str, str]] = set()
    for problem in problems:
        echo_err(f"{'warning' if problem.warning else 'error'}: {problem}")
        if not problem.warning and (problem.kind, problem.name) not in invalid:
            invalid.add((problem.kind, problem.name))
            results.append(
                {
                    "file": problem.source,
                    "kind": problem.kind,
                    "name": problem.name,
                    "action": "refused",
                    "error": str(problem),
                    "dryRun": True,
                }
            )
    return invalid


@delete_app.command("delete")
def delete(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="Kind (agent, workflow, skill, mcpserver, environment, session).",
            autocompletion=complete_delete_kind,
        ),
    ] = None,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Names to delete.", show_default=False, autocompletion=complete_name_of_kind),
    ] = None,
    filename: FileOption = [],  # noqa: B006
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Missing resources are not an error.")
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Delete resources: `delete KIND NAME...` or `delete -f PATH` (reverse dependency order)."""
    from stigmer.cli.commands._params import kind_argument
    from stigmer.core import APPLY_ORDER

    targets: list[tuple[str, str]] = []
    if filename:
        if kind is not None:
            raise CliError("give either KIND NAME or -f PATH, not both")
        targets = [(r.kind, r.name) for r in reversed(order_resources(load_files(filename)))]
    else:
        if kind is None or not names:
            raise CliError("say what to delete: `stigmer delete KIND NAME` or `stigmer delete -f PATH`")
        resolved = kind_argument(kind)
        if resolved not in APPLY_ORDER:
            raise CliError(
                "executions are kept as history and cannot be deleted; stop one with `stigmer execution cancel ID`"
            )
        targets = [(resolved, n) for n in names]

    async def go() -> list[dict[str, Any]]:
        from stigmer.cli.commands._run import CREATE_HINT
        from stigmer.core import NotFound

        results: list[dict[str, Any]] = []
        async with connect() as client:
            for k, name in targets:
                label = f"{cli_name(k)}/{name}"
                try:
                    await client.delete(k, name)
                except NotFound:
                    if ignore_not_found:
                        results.append({"kind": k, "name": name, "action": "not-found"})
                        if output is Output.table:
                            echo(f"{label} not found")
                        continue
                    raise await client.not_found([k], name, create_hint=CREATE_HINT) from None
                results.append({"kind": k, "name": name, "action": "deleted"})
                if output is Output.table:
                    echo(f"{label} deleted")
        return results

    results = run_async(go())
    if output is Output.json:
        emit_json(results)
    elif output is Output.yaml:
        emit_yaml(results)
