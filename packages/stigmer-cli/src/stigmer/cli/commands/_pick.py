"""``stigmer run`` with no NAME: the project folder's workflows and agents, offered as a numbered
choice on a terminal, or listed in a usage error otherwise.

A project is the current folder when it holds manifests (``stigmer init`` makes one): YAML or
JSON files, up to ``MAX_DEPTH`` folders down (hidden folders, virtual environments and
``node_modules`` skipped), that parse as Stigmer resources. Files that are not manifests are
ignored here; ``stigmer apply`` is where they are reported.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stigmer.cli._errors import CliError

__all__ = ["Runnable", "choose_runnable", "project_runnables"]

MAX_DEPTH = 3
MAX_FILES = 300
_SKIP = {"node_modules", "venv", "__pycache__", "site-packages", "dist", "build"}
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Runnable:
    """A workflow or an agent declared in a project file."""

    kind: str  # Workflow or Agent
    name: str
    source: Path
    applied: bool = False

    @property
    def command(self) -> str:
        if self.kind == "Agent":
            return f'stigmer agent execute {self.name} "MESSAGE"'
        return f"stigmer run {self.name}"


def _manifest_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    top = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        depth = len(Path(root).parts) - top
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP and depth < MAX_DEPTH)
        found += (Path(root) / f for f in sorted(files) if f.endswith(_SUFFIXES) and not f.startswith("."))
        if len(found) >= MAX_FILES:
            break
    return found[:MAX_FILES]


def project_runnables(folder: Path) -> list[Runnable]:
    """The workflows and agents the manifests under ``folder`` declare (workflows first)."""
    from stigmer.core import RUNNABLE_KINDS, StigmerError, parse_manifest

    out: list[Runnable] = []
    for path in _manifest_files(folder):
        try:
            text = path.read_text(encoding="utf-8")
            if "stigmer.ai/" not in text:
                continue
            loaded = parse_manifest(text, str(path))
        except (OSError, UnicodeDecodeError, StigmerError):
            continue
        for item in loaded:
            if item.kind in RUNNABLE_KINDS and not any(
                r.kind == item.kind and r.name == item.name for r in out
            ):
                out.append(Runnable(item.kind, item.name, path))
    return sorted(out, key=lambda r: RUNNABLE_KINDS.index(r.kind))


def _label(kind: str) -> str:
    return kind.lower()


def _usage(runnables: list[Runnable], where: str) -> CliError:
    if not runnables:
        return CliError(
            "say what to run: `stigmer run NAME`; there is no workflow or agent here yet: "
            "`stigmer init` scaffolds a project, `stigmer apply -f FILE` stores one",
            exit_code=2,
        )
    names = ", ".join(f"{_label(r.kind)} {r.name}" for r in runnables)
    example = runnables[0].command
    return CliError(
        f"say what to run: `stigmer run NAME` ({where}: {names}); for example `{example}`", exit_code=2
    )


def _on_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


async def _stored(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    from stigmer.cli._client import connect

    found: list[tuple[str, str]] = []
    async with connect() as client:
        for kind in kinds:
            resources: list[Any] = await client.list(kind)
            found += ((kind, str(r.metadata.name)) for r in resources)
    return found


def choose_runnable(message: str) -> tuple[str, str, str]:
    """(kind, name, message) of what to run, chosen at a prompt from the current project's
    workflows and agents; a usage error (exit 2) listing them when there is no terminal, and
    the context's stored ones outside a project."""
    from stigmer.cli._client import run_async
    from stigmer.core import RUNNABLE_KINDS

    folder = Path.cwd()
    declared = project_runnables(folder)
    stored = set(run_async(_stored(RUNNABLE_KINDS)))
    if not declared:
        runnables = [Runnable(kind, name, folder, True) for kind, name in sorted(stored, key=_stored_order)]
        raise _usage(runnables, "stored")
    runnables = [Runnable(r.kind, r.name, r.source, (r.kind, r.name) in stored) for r in declared]
    if not _on_terminal():
        raise _usage(runnables, "in this project")
    return _prompt(runnables, folder, message)


def _stored_order(item: tuple[str, str]) -> tuple[int, str]:
    from stigmer.core import RUNNABLE_KINDS

    return RUNNABLE_KINDS.index(item[0]), item[1]


def _prompt(runnables: list[Runnable], folder: Path, message: str) -> tuple[str, str, str]:
    import typer
    from stigmer.cli.output._format import echo_err
    from typer._click.types import IntRange

    width = max(len(r.name) for r in runnables)
    echo_err("What to run (from this project's manifests):")
    for number, r in enumerate(runnables, start=1):
        where = os.path.relpath(r.source, folder)
        state = "" if r.applied else "  (not applied)"
        echo_err(f"  {number}) {_label(r.kind):<8} {r.name:<{width}}  {where}{state}")
    choice: int = typer.prompt(f"Run which? [1-{len(runnables)}]", type=IntRange(1, len(runnables)), err=True)
    chosen = runnables[choice - 1]
    if not chosen.applied:
        raise CliError(
            f"{_label(chosen.kind)} {chosen.name} is not stored yet: `stigmer apply -f "
            f"{os.path.relpath(folder)}` first, then `stigmer run {chosen.name}`"
        )
    if chosen.kind == "Agent" and not message:
        message = typer.prompt(f"Message for {chosen.name}", err=True).strip()
        if not message:
            raise CliError(
                f'an agent run needs a message: `stigmer agent execute {chosen.name} "your message"`'
            )
    return chosen.kind, chosen.name, message
