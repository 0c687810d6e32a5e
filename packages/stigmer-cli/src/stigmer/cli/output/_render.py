"""Live, human rendering of execution events (workflow tasks, streamed agent text, tool calls)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from stigmer.cli.output._format import color_enabled

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2

__all__ = ["Renderer", "continue_hint", "short"]

_ANSI = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def short(value: Any, limit: int = 200) -> str:
    """Compact one-line text of a value, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def continue_hint(ex: execution_pb2.Execution) -> str:
    """The line that says how to continue an agent run's session ("" when there is none)."""
    from stigmer.core import phase_name

    if not ex.spec.session_id or phase_name(ex.status.phase) != "SUCCEEDED":
        return ""
    return f'continue: stigmer agent execute {ex.spec.target.name} "…" --session {ex.spec.session_id}'


class Renderer:
    """Writes one line per event (text deltas inline) to a stream; colour only on a terminal."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.color = color_enabled(self.stream)
        encoding = (getattr(self.stream, "encoding", None) or "").lower()
        self.fancy = encoding.replace("-", "") in ("utf8", "utf_8")
        self.in_text = False
        self.streamed_text = False

    def _style(self, text: str, style: str) -> str:
        if not self.color:
            return text
        return f"\033[{_ANSI[style]}m{text}\033[0m"

    def _sym(self, fancy: str, plain: str) -> str:
        return fancy if self.fancy else plain

    def line(self, text: str, style: str = "") -> None:
        """Write a line, ending streamed text first."""
        self.end_text()
        self.stream.write((self._style(text, style) if style else text) + "\n")
        self.stream.flush()

    def end_text(self) -> None:
        if self.in_text:
            self.stream.write("\n")
            self.in_text = False

    def event(self, ev: execution_pb2.ExecutionEvent) -> None:
        """Render one event."""
        from stigmer.cli.output._view import value_to_python
        from stigmer.core import phase_name

        kind = ev.type
        data = value_to_python(ev, "data")
        subject = ev.subject
        name = _task_name(subject)
        if kind == "text.delta":
            self.stream.write(ev.text)
            self.stream.flush()
            if ev.text:
                self.in_text = not ev.text.endswith("\n")
            self.streamed_text = True
        elif kind == "message.assistant":
            if self.streamed_text:
                self.end_text()
            elif ev.text:
                self.line(ev.text)
        elif kind == "message.user":
            self.line(f"{self._sym('›', '>')} {ev.text}", "dim")
        elif kind == "phase":
            phase = phase_name(ev.phase)
            style = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}.get(phase, "dim")
            self.line(f"phase {phase}" + (f": {ev.text}" if ev.text else ""), style)
        elif kind == "task.started":
            self.line(f"{self._sym('▶', '>')} {name}", "cyan")
        elif kind == "task.completed":
            self.line(f"{self._sym('✓', 'ok')} {name}", "green")
        elif kind == "task.failed":
            self.line(f"{self._sym('✗', 'x')} {name}" + (f": {ev.text}" if ev.text else ""), "red")
        elif kind == "task.retried":
            self.line(f"{self._sym('↻', 'retry')} {name}" + (f": {ev.text}" if ev.text else ""), "yellow")
        elif kind == "tool.call":
            tool = _field(data, "tool", "name") or ev.text or subject
            args = _field(data, "arguments", "args", "input")
            self.line(
                f"{self._sym('→', '->')} {tool}({short(args, 160) if args is not None else ''})", "cyan"
            )
        elif kind == "tool.result":
            result = _field(data, "result", "output", "content")
            text = short(result if result is not None else (ev.text or data), 200)
            self.line(f"{self._sym('←', '<-')} {text}", "dim")
        elif kind == "approval.requested":
            tool = _field(data, "tool") or ev.text or subject
            self.line(f"? approval requested: {tool}", "yellow")
        elif kind == "approval.resolved":
            approved = _field(data, "approved")
            verdict = (
                "approved" if approved else "rejected" if approved is not None else (ev.text or "resolved")
            )
            self.line(
                f"approval {verdict}" + (f": {ev.text}" if ev.text and ev.text != verdict else ""), "yellow"
            )
        elif kind in ("agent.started", "agent.completed"):
            self.line(f"{kind} {subject}".rstrip(), "dim")
        elif kind == "log":
            self.line(ev.text, "dim")
        elif kind == "cancel.requested":
            self.line("cancel requested" + (f": {ev.text}" if ev.text else ""), "yellow")
        elif kind == "usage":
            return
        else:
            self.line(f"{kind} {subject} {ev.text}".strip(), "dim")


def _task_name(subject: str) -> str:
    """``/do/0/greet`` -> ``greet`` (a path whose last segment is a name)."""
    if not subject:
        return "task"
    last = subject.rstrip("/").rsplit("/", 1)[-1]
    return subject if last.isdigit() else last


def _field(data: Any, *names: str) -> Any:
    if isinstance(data, dict):
        for n in names:
            if n in data:
                return data[n]
    return None
