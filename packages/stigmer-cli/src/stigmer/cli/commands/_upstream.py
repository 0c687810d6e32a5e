"""Verbs upstream Stigmer's users type, on this CLI's behaviour: ``convert``, ``resume``,
``skill push`` (``list``, ``get KIND/NAME``, ``run workflow|agent`` and the run flags live with
their commands). docs/migrating-from-upstream.md lists them all."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import Output, OutputOption, echo, emit_json, emit_yaml

__all__ = ["convert_app", "resume_app", "skill_app"]

convert_app = typer.Typer(add_completion=False)
resume_app = typer.Typer(add_completion=False)
skill_app = typer.Typer(add_completion=False, help="Push skills.", no_args_is_help=True)


@convert_app.command("convert")
def convert(
    filename: Annotated[
        list[str],
        typer.Option(
            "--filename",
            "-f",
            help="Manifest file, directory or - for stdin; repeatable.",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer needs a literal default
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json.", show_default=False)] = "yaml",
) -> None:
    """Print manifests as this project reads them: upstream Stigmer's (agentic.stigmer.ai/v1,
    its tasks workflows) mapped, a workflow as its Serverless Workflow document. Nothing is
    stored; what cannot be converted is one `error: file:line: ...` line."""
    from stigmer.cli.commands._apply import load_files
    from stigmer.core import dump_manifests

    if output not in ("yaml", "json"):
        raise CliError(f"-o {output!r}: use yaml or json")
    loaded = load_files(filename)
    sys.stdout.write(dump_manifests([item.resource for item in loaded], output, include_status=False))


@resume_app.command("resume")
def resume(
    target: Annotated[
        str | None,
        typer.Argument(
            help="A session (name or ses_ id; none: the latest) or an execution id (aex_/wex_).",
            show_default=False,
        ),
    ] = None,
    message: Annotated[
        str, typer.Option("--message", "-m", help="The next message to the session's agent.")
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """Continue a session with its agent (`-m MESSAGE`), or resume an execution by id (as
    `stigmer execution resume ID`)."""
    if target is not None and target.startswith(("aex_", "wex_")):
        from stigmer.cli.commands._executions import resume as resume_execution

        resume_execution(target, output)
        return

    async def find() -> tuple[str, str]:
        from stigmer.core import NotFound, unwrap

        async with connect() as client:
            if target is None:
                sessions: list[Any] = [unwrap(s) for s in await client.list("Session")]
                if not sessions:
                    raise CliError("no sessions yet: `stigmer run agent NAME MESSAGE` starts one")
                latest: Any = max(sessions, key=lambda s: s.metadata.updated_at.ToNanoseconds())
            else:
                try:
                    latest = unwrap(await client.get("Session", target))
                except NotFound:
                    raise CliError(f"no session {target!r}: `stigmer get session` lists them") from None
            return latest.spec.agent.name, latest.metadata.id

    agent, session_id = run_async(find())
    if not message:
        raise CliError(f'give the next message: `stigmer resume {target or session_id} -m "..."`')
    from stigmer.cli.commands._run import _execute, _request

    req = _request("Agent", agent, None, message, session_id, None, None, None)
    _execute(req, output, False)


@skill_app.command("push")
def push(
    directory: Annotated[Path, typer.Argument(help="A skill directory (with SKILL.md).")],
    tag: Annotated[str, typer.Option("--tag", help="A tag kept with the skill (an annotation).")] = "",
    name: Annotated[
        str, typer.Option("--name", help="Skill name (default: SKILL.md's name, or the folder's).")
    ] = "",
    output: OutputOption = Output.table,
) -> None:
    """Create or update a Skill from a directory: its SKILL.md front matter gives the name,
    description and version (the same as applying a Skill manifest with `spec.path`)."""
    from stigmer.core import parse_manifest
    from stigmer.core.upstream import SKILL_TAG_ANNOTATION, front_matter

    skill_md = directory / "SKILL.md"
    if not skill_md.is_file():
        raise CliError(f"{directory}: no SKILL.md here (a skill directory holds one)")
    found = front_matter(skill_md.read_text(encoding="utf-8", errors="replace"))
    skill_name = name or str(found.get("name") or directory.resolve().name)
    metadata: dict[str, Any] = {"name": skill_name}
    if tag:
        metadata["annotations"] = {SKILL_TAG_ANNOTATION: tag}
    doc = {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Skill",
        "metadata": metadata,
        "spec": {"path": str(directory.resolve())},
    }
    [item] = parse_manifest(json.dumps(doc), str(directory.resolve().parent / f"{skill_name}.skill.json"))

    async def go() -> dict[str, Any]:
        from stigmer.core import unwrap

        async with connect() as client:
            response = await client.apply_loaded(item)
        inner: Any = unwrap(response.resource)
        meta = inner.metadata
        actions = {1: "created", 2: "updated", 3: "unchanged"}
        return {
            "kind": "Skill",
            "name": skill_name,
            "id": meta.id,
            "version": meta.version,
            "action": actions.get(response.action, "unspecified"),
        }

    result = run_async(go())
    if output is Output.table:
        echo(f"skill/{skill_name} {result['action']}" + (f" (tag {tag})" if tag else ""))
    elif output is Output.yaml:
        emit_yaml([result])
    else:
        emit_json(result)


@skill_app.callback()
def _skill_group() -> None:
    """Push skills."""
