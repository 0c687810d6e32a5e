"""Traces across Temporal: its OpenTelemetry interceptor on every client and worker, when on.

With traces on (:func:`stigmer.core.setup_telemetry`), every ``temporalio`` client Stigmer
connects carries ``temporalio.contrib.opentelemetry.TracingInterceptor``, which workers made from
that client use too: starting a workflow, running it, each activity and each child workflow become
spans, and the trace context travels in Temporal headers, so a run's spans on the server and on
every worker (and a child execution's on another worker) form one trace. Off, nothing is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["temporal_interceptors"]


def temporal_interceptors() -> list[Any]:
    """The interceptors for ``Client.connect`` (empty when traces are off)."""
    from stigmer.core import setup_telemetry

    if not setup_telemetry():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
