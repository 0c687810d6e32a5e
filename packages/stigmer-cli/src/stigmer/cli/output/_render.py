"""Live, human rendering of execution events (workflow tasks, streamed agent text, tool calls)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from stigmer.cli.output._format import color_enabled

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2

__all__ = ["Renderer", "continue_hint", "rfc3339_ms", "short"]

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

    def __init__(
        self,
        stream: Any = None,
        *,
        report_follows: bool = False,
        live_status: bool = False,
        timestamps: bool = False,
    ) -> None:
        """``report_follows``: a report of the end is printed after the events (``stigmer run``),
        so the FAILED phase line leaves the error to it and the error is said once.
        ``live_status``: while nothing new comes for a second, a last line that redraws itself
        says what is awaited and for how long (``waiting for the model… 3s``); only for a
        terminal (the caller decides), cleared before every other line and by :meth:`close`.
        ``timestamps``: each line starts with its event's time (RFC 3339, UTC, milliseconds)."""
        self.stream = stream if stream is not None else sys.stdout
        self.report_follows = report_follows
        self.color = color_enabled(self.stream)
        encoding = (getattr(self.stream, "encoding", None) or "").lower()
        self.fancy = encoding.replace("-", "") in ("utf8", "utf_8")
        self.in_text = False
        self.streamed_text = False
        self.live_status = live_status
        self.timestamps = timestamps
        self._stamp = ""
        self._lock = threading.RLock()
        self._waiting: tuple[str, float] | None = None  # what is awaited, since when (monotonic)
        self._running: list[tuple[str, str, float]] = []  # tasks started, not ended: subject, name, since
        self._agent = False
        self._status_shown = False
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ the live status line
    def _await(self, label: str | None, since: float | None = None) -> None:
        with self._lock:
            self._waiting = None if label is None else (label, time.monotonic() if since is None else since)
            if label is not None and self.live_status and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="stigmer-status", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if self.fancy else "-\\|/"
        n = 0
        while not self._stop.wait(0.2):
            with self._lock:
                waiting = self._waiting
                if waiting is None or self.in_text:
                    continue
                label, since = waiting
                elapsed = time.monotonic() - since
                if elapsed < 1.0:
                    continue
                n += 1
                text = f"{frames[n % len(frames)]} {label} {_elapsed(elapsed)}"
                self.stream.write("\r\033[K" + self._style(text, "dim"))
                self.stream.flush()
                self._status_shown = True

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False

    def hold(self) -> None:
        """Wipe the live status line and show none until the next event (a prompt comes)."""
        with self._lock:
            self._waiting = None
            self._clear_status()
            self.stream.flush()

    def close(self) -> None:
        """Stop and clear the live status line (when there is one) and end streamed text."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
            self._ticker = None
        with self._lock:
            self._clear_status()
            self.end_text()
            self.stream.flush()

    def _track(self, kind: str, subject: str, name: str, phase: str) -> None:
        """What the run now waits for, from the event just rendered."""
        model = "waiting for the model…" if self.fancy else "waiting for the model..."
        dots = "…" if self.fancy else "..."
        if kind == "message.user":
            self._agent = True
            self._await(model)
        elif kind == "phase":
            if phase == "RUNNING" and self._agent:
                self._await(model)
            elif phase != "RUNNING":
                self._running.clear()
                self._await(None)
        elif kind == "task.started":
            since = time.monotonic()
            self._running.append((subject, name, since))
            self._await(f"{name} running{dots}", since)
        elif kind in ("task.completed", "task.failed"):
            self._running = [t for t in self._running if t[0] != subject]
            if self._running:
                _, top, since = self._running[-1]
                self._await(f"{top} running{dots}", since)
            else:
                self._await(None)
        elif kind == "tool.call":
            self._await(f"{name} running{dots}")
        elif kind == "tool.result":
            self._await(model)
        elif kind in ("text.delta", "message.assistant", "approval.requested", "cancel.requested"):
            self._await(None)

    def _style(self, text: str, style: str) -> str:
        if not self.color:
            return text
        return f"\033[{_ANSI[style]}m{text}\033[0m"

    def _sym(self, fancy: str, plain: str) -> str:
        return fancy if self.fancy else plain

    def line(self, text: str, style: str = "") -> None:
        """Write a line, ending streamed text first."""
        with self._lock:
            self._clear_status()
            self.end_text()
            stamp = self._style(self._stamp, "dim") + " " if self._stamp else ""
            self.stream.write(stamp + (self._style(text, style) if style else text) + "\n")
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
        if self.timestamps:
            self._stamp = rfc3339_ms(ev.time)
        if self.live_status:
            tool = _field(data, "tool", "name") or ev.text or subject
            phase = phase_name(ev.phase) if kind == "phase" else ""
            self._track(kind, subject, str(tool) if kind == "tool.call" else name, phase)
        if kind == "text.delta":
            with self._lock:
                self._clear_status()
                if self._stamp and not self.in_text and ev.text:
                    self.stream.write(self._style(self._stamp, "dim") + " ")
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
            said = ev.text and not (phase == "FAILED" and self.report_follows)
            self.line(f"phase {phase}" + (f": {ev.text}" if said else ""), style)
        elif kind == "task.started":
            self.line(f"{self._sym('▶', '>')} {name}", "cyan")
        elif kind == "task.completed":
            self.line(f"{self._sym('✓', 'ok')} {name}", "green")
        elif kind == "task.failed":
            self.line(f"{self._sym('✗', 'x')} {name}{_failure(data, ev.text)}", "red")
        elif kind == "task.retried":
            self.line(f"{self._sym('↻', 'retry')} {name}: {_retry(data, ev.text)}", "yellow")
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
        elif kind == "todos":
            items = _field(data, "items") or []
            self.line(
                f"plan ({sum(1 for i in items if i.get('status') == 'completed')}/{len(items)} done)", "cyan"
            )
            for item in items:
                status = str(item.get("status") or "pending")
                mark = {
                    "completed": self._sym("☑", "[x]"),
                    "in_progress": self._sym("◐", "[~]"),
                    "cancelled": self._sym("☒", "[-]"),
                }.get(status, self._sym("☐", "[ ]"))
                style = {"completed": "green", "in_progress": "yellow"}.get(status, "dim")
                self.line(f"  {mark} {item.get('content', '')}", style)
        elif kind == "cancel.requested":
            self.line("cancel requested" + (f": {ev.text}" if ev.text else ""), "yellow")
        elif kind == "usage":
            return
        else:
            self.line(f"{kind} {subject} {ev.text}".strip(), "dim")


def rfc3339_ms(ts: Any) -> str:
    """A protobuf Timestamp as ``2026-12-05T10:38:24.951Z`` (``-`` when unset)."""
    if not ts.seconds and not ts.nanos:
        return "-"
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ts.seconds, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts.nanos // 1_000_000:03d}Z"


def _elapsed(seconds: float) -> str:
    """``3s``, ``1m05s``, ``2h03m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _task_name(subject: str) -> str:
    """``/do/0/greet`` -> ``greet`` (a path whose last segment is a name); a ``for`` iteration
    ``/do/0/each/for/1`` -> ``each[1]``."""
    if not subject:
        return "task"
    parts = subject.rstrip("/").split("/")
    last = parts[-1]
    if last.isdigit() and len(parts) >= 3 and parts[-2] == "for":
        return f"{parts[-3]}[{last}]"
    return subject if last.isdigit() else last


def _failure(data: Any, text: str) -> str:
    """What a failed task line adds: the error's title (its detail is said once, at the end)."""
    title = _field(data, "title")
    if isinstance(title, str) and title:
        return f" ({title.lower()})"
    return f": {text}" if text else ""


def _retry(data: Any, text: str) -> str:
    """``retry 1/3 in 0.2s (communication error)`` from a ``task.retried`` event's data."""
    attempt = _field(data, "attempt")
    if not isinstance(attempt, int | float):
        return text or "retry"
    limit = _field(data, "maxAttempts")
    delay = _field(data, "delay")
    said = f"retry {int(attempt)}" + (f"/{int(limit)}" if isinstance(limit, int | float) else "")
    if isinstance(delay, int | float):
        said += " in " + (f"{delay:.3f}".rstrip("0").rstrip(".") or "0") + "s"
    error = _field(data, "error")
    title = _field(error, "title")
    return said + (f" ({title.lower()})" if isinstance(title, str) and title else "")


def _field(data: Any, *names: str) -> Any:
    if isinstance(data, dict):
        for n in names:
            if n in data:
                return data[n]
    return None
