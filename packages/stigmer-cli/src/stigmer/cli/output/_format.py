"""Output: ``-o table|json|yaml``, tables (rich on a terminal, plain text in pipes), JSON, YAML."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

__all__ = [
    "Output",
    "OutputOption",
    "age",
    "color_enabled",
    "echo",
    "echo_err",
    "emit_json",
    "emit_yaml",
    "is_tty",
    "print_table",
]


class Output(enum.StrEnum):
    """Output formats of commands that print resources or executions."""

    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)]


def is_tty(stream: Any = None) -> bool:
    """True when ``stream`` (stdout by default) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def color_enabled(stream: Any = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    return is_tty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def echo(text: str = "", *, nl: bool = True) -> None:
    """Write to stdout and flush (live output stays live in pipes)."""
    sys.stdout.write(text + ("\n" if nl else ""))
    sys.stdout.flush()


def echo_err(text: str) -> None:
    """Write one line to stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (one document)."""
    echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_yaml(documents: list[Any]) -> None:
    """Print plain data as a YAML stream (one document per item)."""
    from stigmer.core import dump_yaml

    echo(dump_yaml(documents).rstrip("\n"))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "") -> None:
    """Print rows under headers: a rich table on a terminal, aligned plain text otherwise."""
    if not rows and empty:
        echo_err(empty)
        return
    if is_tty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console(no_color=not color_enabled(), highlight=False).print(table)
        return
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    echo("\n".join(lines))


def age(ts: Any, now: datetime | None = None) -> str:
    """Human age of a protobuf Timestamp or datetime (``5s``, ``3m``, ``2h``, ``4d``); ``-`` if unset."""
    if ts is None:
        return "-"
    if not isinstance(ts, datetime):
        if not getattr(ts, "seconds", 0) and not getattr(ts, "nanos", 0):
            return "-"
        ts = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - ts).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
