"""What the console's pages show, computed from the messages the Backend returns."""

from __future__ import annotations

import difflib
import functools
import html
import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from google.protobuf import json_format
from markupsafe import Markup
from stigmer.core import is_terminal, phase_name

__all__ = [
    "conversation",
    "diff_text",
    "duration",
    "fmt_time",
    "json_text",
    "run_row",
    "runs_rows_html",
    "task_rows",
    "task_rows_from_events",
    "ts",
    "usage_view",
]

SCHEDULE_LABEL = "stigmer.ai/schedule"


def ts(stamp: Any) -> datetime | None:
    """A protobuf Timestamp as an aware datetime; None when unset."""
    if stamp is None or (not stamp.seconds and not stamp.nanos):
        return None
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, UTC)


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return ""
    return _span(((end or datetime.now(UTC)) - start).total_seconds())


def _span(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def json_text(value: Any) -> str:
    """A protobuf Value/Struct (or plain data) as indented JSON; '' when empty."""
    if value is None:
        return ""
    if hasattr(value, "DESCRIPTOR"):
        if not value.ListFields():
            return ""
        value = json_format.MessageToDict(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _stamp(stamp: Any) -> str:
    """A Timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC); '' when unset. (The runs list formats 100s.)"""
    return _clock(stamp.seconds)


def _clock(seconds: int) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` (UTC); '' for 0."""
    if not seconds:
        return ""
    minute, second = divmod(seconds, 60)
    return _minute(minute) + _SECONDS[second]


_SECONDS = tuple(f"{s:02d}" for s in range(60))


@functools.lru_cache(maxsize=1024)
def _minute(minute: int) -> str:
    """``YYYY-MM-DD HH:MM:`` of a minute since the epoch (a page of runs spans a few minutes or days)."""
    day, rest = divmod(minute, 1440)
    hours, minutes = divmod(rest, 60)
    return f"{_day(day)} {hours:02d}:{minutes:02d}:"


@functools.lru_cache(maxsize=1024)
def _day(day: int) -> str:
    """The UTC date of a day number since the epoch."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def _summary(ex: Any) -> tuple[str, str, str, str, str]:
    """What every list shows of a run: its target, phase, creation time, duration and cost."""
    status = ex.status
    return (
        _target_text(ex.spec.target),
        phase_name(status.phase),
        _stamp(ex.metadata.created_at),
        _took(status),
        _cost_text(status.usage.cost_usd),
    )


def _target_text(target: Any) -> str:
    return f"{target.kind}/{target.name}" if target.name else str(target.id)


def _took(status: Any) -> str:
    """How long a run has run (until now when it has not finished); '' before it started."""
    started = status.started_at
    if not started.seconds:
        return ""
    finished = status.finished_at
    end = finished.seconds + finished.nanos / 1e9 if finished.seconds or finished.nanos else time.time()
    return _span(end - (started.seconds + started.nanos / 1e9))


def _cost_text(cost: float) -> str:
    return f"${cost:.4f}" if cost else ""


def _label_text(labels: Any) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items()) if k != SCHEDULE_LABEL] if labels else []


def run_row(ex: Any) -> SimpleNamespace:
    """One run as the lists show it (attributes: templates read them without a failed getattr)."""
    target, phase, created, took, cost = _summary(ex)
    labels = ex.metadata.labels
    return SimpleNamespace(
        id=ex.metadata.id,
        kind=ex.kind,
        target=target,
        phase=phase,
        phase_class=phase.lower(),
        terminal=is_terminal(ex.status.phase),
        created=created,
        duration=took,
        labels=dict(labels) if labels else {},
        label_text=_label_text(labels),
        schedule=labels.get(SCHEDULE_LABEL, "") if labels else "",
        cost=cost,
    )


def runs_rows_html(executions: Any, base: str) -> Markup:
    """The ``<tr>`` of each run of the runs table (``runs_table.html``), every value escaped.

    Built here rather than cell by cell in the template: the runs page shows 50 runs and refreshes
    live, and each cell of a template costs an attribute lookup and an escape of its own. For the
    same reason each message field is read once (a protobuf read costs about as much as an
    escape), a text that repeats from row to row (a target, a label, a phase) is escaped once a
    page, and a creation time's date and minute are looked up (``_clock``)."""
    h = html.escape
    base = h(base)
    cells: dict[str, str] = {}
    phases: dict[int, str] = {}

    def cell(text: str) -> str:  # escaped once a page
        found = cells.get(text)
        if found is None:
            found = cells[text] = h(text)
        return found

    out = []
    for ex in executions:
        meta, status = ex.metadata, ex.status
        rid = h(meta.id)
        phase = status.phase
        phase_cell = phases.get(phase)
        if phase_cell is None:
            phase_cell = phases[phase] = _phase_cell(phase)
        labels = meta.labels
        if labels:
            shown = "".join([f'<span class="label">{cell(text)}</span> ' for text in _label_text(labels)])
            schedule = cell(labels.get(SCHEDULE_LABEL, ""))
        else:
            shown = schedule = ""
        out.append(
            f'<tr data-run="{rid}">\n'
            f'  <td><a href="{base}/runs/{rid}">{rid}</a></td>\n'
            f"  <td>{cell(_target_text(ex.spec.target))}</td>\n"
            f"  <td>{phase_cell}</td>\n"
            f"  <td>{_clock(meta.created_at.seconds)}</td>\n"
            f"  <td>{_took(status)}</td>\n"
            f"  <td>{schedule}</td>\n"
            f"  <td>{shown}</td>\n"
            f"  <td>{_cost_text(status.usage.cost_usd)}</td>\n"
            "</tr>\n"
        )
    return Markup("".join(out))


def _phase_cell(phase: int) -> str:
    name = phase_name(phase)
    return f'<span class="phase {name.lower()}">{name}</span>'


def task_rows(ex: Any) -> list[dict[str, Any]]:
    """The execution's tasks in path order, each with its depth, duration, attempts and its place
    on the run's timeline (``left``/``width`` in percent). Each ``for`` iteration has a path of
    its own (``.../for/2/...``), so iterations are rows apart."""
    run_start = ts(ex.status.started_at)
    run_end = ts(ex.status.finished_at) or datetime.now(UTC)
    span = max((run_end - run_start).total_seconds(), 1e-3) if run_start else 1.0
    rows = []
    for task in ex.status.tasks:
        start, end = ts(task.started_at), ts(task.finished_at)
        parts = [p for p in task.path.split("/") if p]
        left = width = 0.0
        if run_start and start:
            left = max(0.0, min(100.0, (start - run_start).total_seconds() / span * 100))
            width = max(0.5, min(100.0 - left, ((end or run_end) - start).total_seconds() / span * 100))
        iteration = ""
        if "for" in parts:
            at = len(parts) - 1 - parts[::-1].index("for")
            if at + 1 < len(parts):
                iteration = parts[at + 1]
        rows.append(
            {
                "path": task.path,
                "name": task.name or (parts[-1] if parts else task.path),
                "depth": max(0, len(parts) // 2 - 1),
                "phase": phase_name(task.phase),
                "started": fmt_time(start),
                "duration": duration(start, end),
                "attempts": task.attempts,
                "iteration": iteration,
                "left": f"{left:.2f}",
                "width": f"{width:.2f}",
            }
        )
    rows.sort(key=lambda r: (r["started"] or "~", r["path"]))
    return rows


_TASK_END = {"task.completed": "SUCCEEDED", "task.failed": "FAILED", "task.cancelled": "CANCELLED"}


def task_rows_from_events(ex: Any, events: list[Any]) -> list[dict[str, Any]]:
    """The task tree from the run's ``task.*`` events, one row per time a task ran: the tasks
    inside each ``for`` iteration (same path every time) are rows of their own under their
    iteration, retries counted on the row (``task.retried``). Empty when there are no task events."""
    run_start = ts(ex.status.started_at)
    run_end = ts(ex.status.finished_at) or datetime.now(UTC)
    span = max((run_end - run_start).total_seconds(), 1e-3) if run_start else 1.0
    rows: list[dict[str, Any]] = []
    open_rows: list[dict[str, Any]] = []  # started, not ended: the ancestors of the next task
    for event in events:
        kind, path = event.type, event.subject
        if kind == "task.started":
            # an iteration `.../each/for/2` holds the tasks under `.../each/`
            while open_rows and not path.startswith(open_rows[-1]["scope"] + "/"):
                open_rows.pop()  # an ancestor whose end event is outside the window
            parts = [p for p in path.split("/") if p]
            iteration = parts[-1] if len(parts) >= 2 and parts[-2] == "for" else ""
            scope = path.rsplit("/for/", 1)[0] if iteration else path
            parent_iteration = next((r["iteration"] for r in reversed(open_rows) if r["iteration"]), "")
            row = {
                "path": path,
                "name": event.text or (parts[-1] if parts else path),
                "depth": len(open_rows),
                "phase": "RUNNING",
                "start": ts(event.time),
                "end": None,
                "attempts": 1,
                "iteration": iteration,
                "in_iteration": parent_iteration,
                "scope": scope,
            }
            rows.append(row)
            open_rows.append(row)
        elif kind in _TASK_END or kind == "task.retried":
            match = next((r for r in reversed(open_rows) if r["path"] == path), None)
            if match is None:
                continue
            if kind == "task.retried":
                match["attempts"] += 1
                continue
            match["phase"], match["end"] = _TASK_END[kind], ts(event.time)
            while open_rows and open_rows[-1] is not match:
                open_rows.pop()
            if open_rows:
                open_rows.pop()
    for row in rows:
        start, end = row.pop("start"), row.pop("end")
        del row["scope"]
        left = width = 0.0
        if run_start and start:
            left = max(0.0, min(100.0, (start - run_start).total_seconds() / span * 100))
            width = max(0.5, min(100.0 - left, ((end or run_end) - start).total_seconds() / span * 100))
        if row["phase"] == "RUNNING" and is_terminal(ex.status.phase):
            row["phase"] = phase_name(ex.status.phase)
        row.update(
            started=fmt_time(start), duration=duration(start, end), left=f"{left:.2f}", width=f"{width:.2f}"
        )
    return rows


def _data(event: Any) -> Any:
    return json_format.MessageToDict(event.data) if event.HasField("data") else None


def conversation(events: list[Any]) -> list[dict[str, Any]]:
    """The agent conversation: messages (streamed text joined), tool calls and their results,
    approvals; in the order they happened."""
    items: list[dict[str, Any]] = []
    for event in events:
        kind = event.type
        if kind == "text.delta":
            if items and items[-1]["role"] == "assistant" and items[-1].get("streamed"):
                items[-1]["text"] += event.text
            else:
                items.append(
                    {"role": "assistant", "text": event.text, "streamed": True, "subject": event.subject}
                )
        elif kind == "message.user":
            items.append({"role": "user", "text": event.text or json_text(_data(event))})
        elif kind == "message.assistant":
            if items and items[-1].get("streamed"):
                items[-1].update(text=event.text or items[-1]["text"], streamed=False)
            else:
                items.append({"role": "assistant", "text": event.text or json_text(_data(event))})
        elif kind in ("tool.call", "tool.result") or kind.startswith("approval"):
            role = {"tool.call": "tool-call", "tool.result": "tool-result"}.get(kind, "approval")
            items.append(
                {"role": role, "subject": event.subject, "text": event.text, "data": json_text(_data(event))}
            )
    return items


def usage_view(usage: Any) -> dict[str, Any] | None:
    if not (usage.requests or usage.input_tokens or usage.output_tokens or usage.tool_calls):
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "requests": usage.requests,
        "tool_calls": usage.tool_calls,
        "cost": "unknown" if usage.cost_unknown else f"${usage.cost_usd:.6f}",
        "by_request": [
            {
                "model": r.model,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost": "unknown" if r.cost_unknown else f"${r.cost_usd:.6f}",
            }
            for r in usage.by_request
        ],
    }


def diff_text(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="")
    out = []
    for line in lines:
        cls = (
            "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "hunk"
            if line.startswith("@@")
            else ""
        )
        out.append((cls, line))
    return out
