"""The workflow runner's OpenTelemetry spans: each task, and each HTTP call.

On only when traces are (:func:`stigmer.core.setup_telemetry`). A task's span is named
``task <name>`` with its path (``stigmer.task.reference``), kind and outcome; an HTTP call's is
``HTTP <METHOD>`` (a CLIENT span) with the method, the URL without its query (which may hold a
secret) and the response status. In Lite a task's span is current while it runs (its HTTP calls
and child executions are its children); in a Temporal workflow (replayed, so it may not record
spans itself) a task is a finished span that Temporal's tracing interceptor records once, under
the workflow's span.
"""

from __future__ import annotations

import contextlib
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
    """Task spans in this process (Lite): a task's span is current while it runs, so its HTTP
    calls and child executions are its children."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[Any, Any]] = {}  # path -> (span, context token)

    def started(self, path: str, name: str, kind: str) -> None:
        from opentelemetry import context, trace
        from stigmer.core._telemetry import tracer

        found = tracer()
        if found is None:
            return
        span = found.start_span(f"task {name}", attributes=_attributes(path, name, kind))
        self._open[path] = (span, context.attach(trace.set_span_in_context(span)))

    def ended(self, path: str, error: str | None = None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        opened = self._open.pop(path, None)
        if opened is None:
            return
        span, token = opened
        span.set_attribute("stigmer.task.outcome", "failed" if error is not None else "completed")
        if error is not None:
            span.set_attribute("stigmer.task.error", error)
            span.set_status(Status(StatusCode.ERROR, error))
        context.detach(token)
        span.end()


class TemporalTaskSpans(TaskSpans):
    """Task spans in workflow code: recorded once (not on replay) through Temporal's tracing
    interceptor, as finished spans carrying the task's duration in ``stigmer.task.duration_ms``."""

    def __init__(self, now: Any) -> None:
        super().__init__()
        self._now = now  # the workflow's clock (replay-safe), seconds
        self._started: dict[str, tuple[float, str, str]] = {}

    def started(self, path: str, name: str, kind: str) -> None:
        self._started[path] = (self._now(), name, kind)

    def ended(self, path: str, error: str | None = None) -> None:
        from temporalio import workflow

        with workflow.unsafe.imports_passed_through():
            from temporalio.contrib.opentelemetry import workflow as otel_workflow

        opened = self._started.pop(path, None)
        if opened is None:
            return
        began, name, kind = opened
        attributes: dict[str, Any] = _attributes(path, name, kind)
        attributes["stigmer.task.outcome"] = "failed" if error is not None else "completed"
        if error is not None:
            attributes["stigmer.task.error"] = error
        attributes["stigmer.task.duration_ms"] = int((self._now() - began) * 1000)
        otel_workflow.completed_span(f"task {name}", attributes=attributes)


def _attributes(path: str, name: str, kind: str) -> dict[str, str | int]:
    return {"stigmer.task.name": name, "stigmer.task.reference": path, "stigmer.task.kind": kind}


def task_spans(temporal_now: Any = None) -> TaskSpans | None:
    """The task spans of a run, or None when traces are off (``temporal_now``: in a workflow)."""
    from stigmer.core import telemetry_enabled

    if not telemetry_enabled():
        return None
    return TemporalTaskSpans(temporal_now) if temporal_now is not None else TaskSpans()
