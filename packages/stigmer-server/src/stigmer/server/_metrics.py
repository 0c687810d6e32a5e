"""Prometheus metrics of the executions a server sees (``/metrics`` of its HTTP listener).

Every status change of an execution passes through the server (runners in child processes and
Temporal workers alike report with ``UpdateExecutionStatus``), so :class:`MeteredBackend`, the
served Backend wrapped, counts them as they happen:

- ``stigmer_executions_created_total{kind,target_kind,target}``
- ``stigmer_executions_finished_total{kind,target_kind,target,phase}`` (SUCCEEDED, FAILED, CANCELLED)
- ``stigmer_executions_in_progress{kind,target_kind,target,phase}`` (PENDING, RUNNING, WAITING_APPROVAL;
  counted from the transitions this server saw since it started)
- ``stigmer_execution_duration_seconds{kind,target_kind,target,phase}`` (start to end, a histogram)
- ``stigmer_execution_queue_seconds{kind,target_kind,target}`` (created to started: queue latency)
- ``stigmer_tokens_total{kind,target_kind,target,type}`` (type = input | output)
- ``stigmer_cost_usd_total{kind,target_kind,target}`` (the model cost the runners reported, where the
  models' prices are known)
- ``stigmer_model_requests_total`` / ``stigmer_tool_calls_total`` ``{kind,target_kind,target}``

A registry of its own per server (not the process-global default), so two servers in one process
(tests) do not mix.
"""

from __future__ import annotations

import logging
from typing import Any

from stigmer.core import TERMINAL_PHASES, Backend, phase_name
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["MeteredBackend", "ServerMetrics"]

logger = logging.getLogger("stigmer.server")

_BASE = ("kind", "target_kind", "target")
_IN_PROGRESS = {"PENDING", "RUNNING", "WAITING_APPROVAL"}
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class ServerMetrics:
    """The server's Prometheus registry and its metrics."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.created = Counter("stigmer_executions_created", "Executions created.", _BASE, registry=r)
        self.finished = Counter(
            "stigmer_executions_finished", "Executions that ended, by phase.", (*_BASE, "phase"), registry=r
        )
        self.in_progress = Gauge(
            "stigmer_executions_in_progress",
            "Executions not yet ended, by phase (from the transitions this server saw).",
            (*_BASE, "phase"),
            registry=r,
        )
        self.duration = Histogram(
            "stigmer_execution_duration_seconds",
            "Run time of ended executions (started to finished).",
            (*_BASE, "phase"),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.queue = Histogram(
            "stigmer_execution_queue_seconds",
            "Queue latency: from creation to the runner's start.",
            _BASE,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "stigmer_tokens", "Model tokens used by ended executions.", (*_BASE, "type"), registry=r
        )
        self.requests = Counter(
            "stigmer_model_requests", "Model requests of ended executions.", _BASE, registry=r
        )
        self.tool_calls = Counter("stigmer_tool_calls", "Tool calls of ended executions.", _BASE, registry=r)
        self.cost = Counter(
            "stigmer_agent_cost_usd",
            "Estimated model cost of ended agent runs (USD).",
            ("target", "model"),
            registry=r,
        )
        self._phases: dict[str, tuple[tuple[str, str, str], str]] = {}  # execution id -> labels, phase

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- what the server saw ------------------------------------------------------------------------
    def observe(self, execution: execution_pb2.Execution) -> tuple[str, ...] | None:
        """Record ``execution`` as it stands after a change; the labels when it just ended."""
        target = execution.spec.target
        labels = (execution.kind, target.kind, target.name or target.id)
        phase = phase_name(execution.status.phase)
        execution_id = execution.metadata.id
        previous = self._phases.get(execution_id)
        if previous is not None and previous[1] == phase:
            return None
        if previous is None:
            self.created.labels(*labels).inc()
        else:
            self.in_progress.labels(*previous[0], previous[1]).dec()
        status = execution.status
        # Started (a quick run on a Temporal worker may start and end in one report).
        if (
            phase != "PENDING"
            and (previous is None or previous[1] == "PENDING")
            and status.HasField("started_at")
        ):
            created = execution.metadata.created_at
            if created.seconds:
                queued = _seconds(status.started_at) - _seconds(created)
                self.queue.labels(*labels).observe(max(queued, 0.0))
        if execution.status.phase in TERMINAL_PHASES:
            self._phases.pop(execution_id, None)
            self.finished.labels(*labels, phase).inc()
            if status.HasField("started_at") and status.HasField("finished_at"):
                self.duration.labels(*labels, phase).observe(
                    max(_seconds(status.finished_at) - _seconds(status.started_at), 0.0)
                )
            usage = status.usage
            if usage.input_tokens:
                self.tokens.labels(*labels, "input").inc(usage.input_tokens)
            if usage.output_tokens:
                self.tokens.labels(*labels, "output").inc(usage.output_tokens)
            if usage.requests:
                self.requests.labels(*labels).inc(usage.requests)
            if usage.tool_calls:
                self.tool_calls.labels(*labels).inc(usage.tool_calls)
            if usage.cost_usd > 0:
                self.cost.labels(*labels).inc(usage.cost_usd)
            return labels
        if phase in _IN_PROGRESS:
            self._phases[execution_id] = (labels, phase)
            self.in_progress.labels(*labels, phase).inc()
        return None


def _seconds(stamp: Any) -> float:
    return float(stamp.seconds) + float(stamp.nanos) / 1e9


class MeteredBackend:
    """The served Backend, with every execution change recorded in :class:`ServerMetrics`."""

    def __init__(self, inner: Backend, metrics: ServerMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_execution(self, request: svc.CreateExecutionRequest) -> execution_pb2.Execution:
        execution = await self._inner.create_execution(request)
        self._metrics.observe(execution)
        return execution

    async def publish_event(self, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
        response = await self._inner.publish_event(request)
        for execution in response.started:
            self._metrics.observe(execution)
        return response

    async def cancel_execution(self, request: svc.CancelExecutionRequest) -> execution_pb2.Execution:
        execution = await self._inner.cancel_execution(request)
        self._metrics.observe(execution)
        return execution

    async def update_execution_status(
        self, request: svc.UpdateExecutionStatusRequest
    ) -> execution_pb2.Execution:
        execution = await self._inner.update_execution_status(request)
        self._metrics.observe(execution)
        return execution
