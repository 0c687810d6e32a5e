"""OpenTelemetry traces, on only when the standard OTLP variables say where to send them.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, the first
:func:`setup_telemetry` of a process installs a tracer provider that exports OTLP over HTTP
(``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and the
other standard variables apply; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn
it off). Without them nothing here imports OpenTelemetry: every helper is a no-op costing an
environment lookup.

Every span passes through the process-wide :func:`~stigmer.core.default_redactor` on its way out
(attributes, event attributes, status text): a secret a runner resolved is masked even if some
library put it in an attribute. Stigmer's own spans hold names, ids, phases and counts only.

The packages it needs are the ``otel`` extra of ``stigmer-core`` (part of ``pip install stigmer``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "execution_attributes",
    "flush_telemetry",
    "record_span",
    "setup_telemetry",
    "start_span",
    "telemetry_enabled",
    "traced_execution",
    "tracer",
]

logger = logging.getLogger(__name__)

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_state: dict[str, Any] = {"provider": None, "failed": False}

#: Attribute values: what OpenTelemetry accepts.
Attributes = Mapping[str, str | bool | int | float]


def telemetry_enabled() -> bool:
    """Whether traces are configured (an OTLP endpoint is set and the SDK is not disabled)."""
    if _state["failed"]:
        return False
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in _ENDPOINTS)


def setup_telemetry(service_name: str = "stigmer") -> bool:
    """Install the OTLP tracer provider once per process when configured; whether traces are on.

    ``service_name`` is the default of ``service.name`` (``OTEL_SERVICE_NAME`` wins)."""
    if _state["provider"] is not None:
        return True
    if not telemetry_enabled():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        _state["failed"] = True
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): "
            "pip install 'stigmer-core[otel]'",
            exc.name,
        )
        return False
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol.strip() not in ("", "http/protobuf"):
        logger.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: Stigmer exports http/protobuf only", protocol)
    resource = Resource.create({"service.name": service_name}).merge(OTELResourceDetector().detect())
    if os.environ.get("OTEL_SERVICE_NAME"):
        resource = resource.merge(Resource.create({"service.name": os.environ["OTEL_SERVICE_NAME"]}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_redacting_exporter(OTLPSpanExporter())))
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # someone configured the SDK already: add to theirs
        current.add_span_processor(BatchSpanProcessor(_redacting_exporter(OTLPSpanExporter())))
        provider = current
    else:
        trace.set_tracer_provider(provider)
    _state["provider"] = provider
    return True


def tracer(name: str = "stigmer") -> Any:
    """An OpenTelemetry tracer (after :func:`setup_telemetry`), or None when traces are off."""
    if not setup_telemetry():
        return None
    from opentelemetry import trace

    return trace.get_tracer(name)


@contextlib.contextmanager
def start_span(name: str, attributes: Attributes | None = None, *, kind: str = "INTERNAL") -> Iterator[Any]:
    """A span around the body (current while it runs; an exception is recorded and re-raised), or
    ``None`` when traces are off. ``kind``: a ``SpanKind`` name (INTERNAL, CLIENT, SERVER ...)."""
    found = tracer()
    if found is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with found.start_as_current_span(name, attributes=dict(attributes or {}), kind=SpanKind[kind]) as span:
        yield span


def record_span(
    name: str,
    attributes: Attributes | None = None,
    *,
    start_ns: int,
    end_ns: int | None = None,
    error: str | None = None,
) -> None:
    """A finished span from ``start_ns`` (``time.time_ns()``) to ``end_ns`` (now), a child of the
    current span; ``error`` sets its status to ERROR with that text."""
    found = tracer()
    if found is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span = found.start_span(name, attributes=dict(attributes or {}), start_time=start_ns)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end_ns if end_ns is not None else time.time_ns())


def flush_telemetry(timeout: float = 5.0) -> None:
    """Send the spans still buffered (a short-lived process does so before it exits)."""
    provider = _state["provider"]
    if provider is not None:
        provider.force_flush(int(timeout * 1000))


def _redacting_exporter(inner: Any) -> Any:
    """``inner`` (a SpanExporter), with every exported span's text scrubbed of registered secrets."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Status
    from stigmer.core._redact import default_redactor

    def scrub_attributes(attributes: Any) -> dict[str, Any]:
        redactor = default_redactor()
        return {
            key: redactor.scrub(list(v) if isinstance(v, tuple) else v)
            for key, v in (attributes or {}).items()
        }

    def scrubbed(span: ReadableSpan) -> ReadableSpan:
        redactor = default_redactor()
        status = span.status
        if status.description:
            status = Status(status.status_code, str(redactor.scrub(status.description)))
        return ReadableSpan(
            name=str(redactor.scrub(span.name)),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=scrub_attributes(span.attributes),
            events=[
                Event(str(redactor.scrub(e.name)), scrub_attributes(e.attributes), e.timestamp)
                for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    class RedactingSpanExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            if not default_redactor().active:
                return inner.export(spans)  # type: ignore[no-any-return]
            return inner.export([scrubbed(span) for span in spans])  # type: ignore[no-any-return]

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return RedactingSpanExporter()


def execution_attributes(execution: Any) -> dict[str, str | int]:
    """The attributes every span of an execution carries: its id and kind, its target's kind and
    name, its parent execution (an ``Execution`` message)."""
    spec = execution.spec
    attributes: dict[str, str | int] = {
        "stigmer.execution.id": execution.metadata.id,
        "stigmer.execution.kind": execution.kind,
        "stigmer.target.kind": spec.target.kind,
        "stigmer.target.name": spec.target.name or spec.target.id,
    }
    if spec.parent_execution_id:
        attributes["stigmer.execution.parent_id"] = spec.parent_execution_id
    return attributes


async def traced_execution(execution: Any, run: Callable[[], Awaitable[Any]]) -> Any:
    """``await run()`` (which returns the execution as it ended) inside the execution's span,
    named ``<kind> <target>`` with :func:`execution_attributes`, its phase, usage and error; the
    spans are sent when the run ends. Just ``await run()`` when traces are off."""
    if not telemetry_enabled():
        return await run()
    from stigmer.core._phases import phase_name

    attributes = execution_attributes(execution)
    name = f"{execution.kind or 'Execution'} {attributes['stigmer.target.name']}"
    try:
        with start_span(name, attributes) as span:
            ended = await run()
            if span is not None and ended is not None:
                from opentelemetry.trace import Status, StatusCode

                status = ended.status
                span.set_attribute("stigmer.phase", phase_name(status.phase))
                usage = status.usage
                for key, value in (
                    ("gen_ai.usage.input_tokens", usage.input_tokens),
                    ("gen_ai.usage.output_tokens", usage.output_tokens),
                    ("stigmer.usage.requests", usage.requests),
                    ("stigmer.usage.tool_calls", usage.tool_calls),
                ):
                    if value:
                        span.set_attribute(key, int(value))
                if usage.cost_usd > 0:
                    span.set_attribute("stigmer.usage.cost_usd", float(usage.cost_usd))
                if phase_name(status.phase) == "FAILED":
                    span.set_status(Status(StatusCode.ERROR, status.error.title or "failed"))
            return ended
    finally:
        import asyncio

        await asyncio.to_thread(flush_telemetry)
