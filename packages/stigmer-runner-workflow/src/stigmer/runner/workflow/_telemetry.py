"""The workflow runner's OpenTelemetry spans: each task, and each HTTP call.

On only when traces are (:func:`stigmer.core.setup_telemetry`). A task's span is named
``task <name>`` with its path (``stigmer.task.reference``), kind and outcome; an HTTP call's is
``HTTP <METHOD>`` (a CLIENT span) with the method, the URL without its query (which may hold a
secret) and the response status. In Lite they are real spans under the execution's span; in a
Temporal workflow (replayed, so it may not record spans itself) a task is a finished span that
Temporal's tracing interceptor records once, under the workflow's span.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

__all__ = ["TaskSpans", "TemporalTaskSpans", "http_span", "task_spans"]


@contextlib.contextmanager
def http_span(method: str, url: str) -> Iterator[Any]:
    """The span of one HTTP request (None when traces are off)."""
    from stigmer.core import telemetry_enabled

    if not telemetry_enabled():
        yield None
        return
    from stigmer.core import start_span

    parts = urllib.parse.urlsplit(url)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        ),
        "server.address": parts.hostname or "",
    }
    if parts.port:
        attributes["server.port"] = parts.port
    with start_span(f"HTTP {method}", attributes, kind="CLIENT") as span:
        yield span


class TaskSpans:
    """Task spans in this process: started and ended with the task (Lite, and the Temporal
    activities' own work)."""

    def __init__(self) -> None:
        self._started: dict[str, int] = {}

    def started(self, path: str) -> None:
        self._started[path] = time.time_ns()

    def ended(self, path: str, name: str, kind: str, error: str | None = None) -> None:
        from stigmer.core import record_span

        start = self._started.pop(path, None)
        if start is None:
            return
        record_span(f"task {name}", _attributes(path, name, kind, error), start_ns=start, error=error)


class TemporalTaskSpans(TaskSpans):
    """Task spans in workflow code: recorded once (not on replay) through Temporal's tracing
    interceptor, as finished spans carrying the task's duration in ``stigmer.task.duration_ms``."""

    def __init__(self, now: Any) -> None:
        super().__init__()
        self._now = now  # the workflow's clock (replay-safe), seconds

    def started(self, path: str) -> None:
        self._started[path] = int(self._now() * 1e9)

    def ended(self, path: str, name: str, kind: str, error: str | None = None) -> None:
        from temporalio import workflow

        with workflow.unsafe.imports_passed_through():
            from temporalio.contrib.opentelemetry import workflow as otel_workflow

        start = self._started.pop(path, None)
        if start is None:
            return
        attributes: dict[str, Any] = _attributes(path, name, kind, error)
        attributes["stigmer.task.duration_ms"] = (int(self._now() * 1e9) - start) // 1_000_000
        otel_workflow.completed_span(f"task {name}", attributes=attributes)


def _attributes(path: str, name: str, kind: str, error: str | None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "stigmer.task.name": name,
        "stigmer.task.reference": path,
        "stigmer.task.kind": kind,
        "stigmer.task.outcome": "failed" if error is not None else "completed",
    }
    if error is not None:
        attributes["stigmer.task.error"] = error
    return attributes


def task_spans(temporal_now: Any = None) -> TaskSpans | None:
    """The task spans of a run, or None when traces are off (``temporal_now``: in a workflow)."""
    from stigmer.core import telemetry_enabled

    if not telemetry_enabled():
        return None
    return TemporalTaskSpans(temporal_now) if temporal_now is not None else TaskSpans()
