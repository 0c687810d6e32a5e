"""Writing an agent run's events and status through the Backend, scrubbed and numbered.

Events carry explicit sequence numbers starting after the execution's ``status.last_sequence``,
so resending a batch after a transient failure is idempotent. Streamed text is coalesced into
``text.delta`` events (flushed every ``flush_interval`` seconds or ``flush_chars`` characters) so
the log stays small. Every text, payload, output and error passes through the run's ``Redactor``
before it is written (checkpoints are scrubbed as data by ``RunState.dump``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from stigmer.core import AlreadyExists, Backend, FailedPrecondition, Redactor, Unavailable
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["MAX_PAYLOAD", "Ev", "EventSink", "RunStopped", "clip", "jsonable", "to_value"]

MAX_PAYLOAD = 32_000  # characters of a tool result kept in an event; the model still sees all of it

log = logging.getLogger(__name__)

_TERMINAL = {
    execution_pb2.PHASE_SUCCEEDED,
    execution_pb2.PHASE_FAILED,
    execution_pb2.PHASE_CANCELLED,
}


class RunStopped(Exception):
    """The execution was cancelled (or finished elsewhere) while this runner worked on it."""

    def __init__(self, execution: execution_pb2.Execution) -> None:
        super().__init__(
            f"execution {execution.metadata.id} is {execution_pb2.Phase.Name(execution.status.phase)}"
        )
        self.execution = execution


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (unknown objects become their ``str``)."""
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError):
        return str(value)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def clip(value: Any, limit: int = MAX_PAYLOAD) -> Any:
    """``value`` as JSON data, or a truncated text of it when its JSON is longer than ``limit``."""
    data = jsonable(value)
    text = data if isinstance(data, str) else json.dumps(data)
    if len(text) <= limit:
        return data
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def to_value(value: Any) -> struct_pb2.Value:
    """A ``google.protobuf.Value`` holding ``value`` (converted with ``jsonable``)."""
    return json_format.ParseDict(jsonable(value), struct_pb2.Value())


@dataclass(frozen=True)
class Ev:
    """An event to write; numbered when it is written."""

    type: str
    subject: str = ""
    text: str = ""
    data: Any = None


class EventSink:
    """Numbers, scrubs, batches and writes the events of one execution."""

    def __init__(
        self,
        backend: Backend,
        execution_id: str,
        *,
        last_sequence: int,
        redactor: Redactor,
        runner: str,
        flush_interval: float = 0.1,
        flush_chars: int = 200,
    ) -> None:
        self.backend = backend
        self.execution_id = execution_id
        self.sequence = last_sequence
        self.redactor = redactor
        self.runner = runner
        self.flush_interval = flush_interval
        self.flush_chars = flush_chars
        self._text: list[str] = []
        self._text_len = 0
        self._text_since = 0.0
        self._text_subject = ""
        self._lock = asyncio.Lock()

    # -- events ----------------------------------------------------------------------------------
    def _event(
        self, type: str, *, subject: str = "", text: str = "", data: Any = None
    ) -> execution_pb2.ExecutionEvent:
        """Build the next event (scrubbed, numbered); called with the lock held."""
        self.sequence += 1
        event = execution_pb2.ExecutionEvent(
            execution_id=self.execution_id,
            sequence=self.sequence,
            type=type,
            subject=self.redactor.scrub(subject),
            text=self.redactor.scrub(text),
        )
        event.time.CopyFrom(_now())
        if data is not None:
            event.data.CopyFrom(to_value(self.redactor.scrub(jsonable(data))))
        return event

    async def emit(self, type: str, *, subject: str = "", text: str = "", data: Any = None) -> None:
        """Write one event now (after any buffered text)."""
        async with self._lock:
            events = self._take_text()
            events.append(self._event(type, subject=subject, text=text, data=data))
            await self._write(svc.UpdateExecutionStatusRequest(events=events))

    async def delta(self, text: str, subject: str = "") -> None:
        """Buffer streamed text; write it as one ``text.delta`` when the buffer is due."""
        if not text:
            return
        async with self._lock:
            if self._text and subject != self._text_subject:
                await self._write(svc.UpdateExecutionStatusRequest(events=self._take_text()))
            if not self._text:
                self._text_since = time.monotonic()
                self._text_subject = subject
            self._text.append(text)
            self._text_len += len(text)
            due = time.monotonic() - self._text_since >= self.flush_interval
            if self._text_len >= self.flush_chars or due:
                await self._write(svc.UpdateExecutionStatusRequest(events=self._take_text()))

    async def flush(self) -> None:
        """Write any buffered text."""
        async with self._lock:
            events = self._take_text()
            if events:
                await self._write(svc.UpdateExecutionStatusRequest(events=events))

    def _take_text(self) -> list[execution_pb2.ExecutionEvent]:
        if not self._text:
            return []
        text = "".join(self._text)
        self._text, self._text_len = [], 0
        return [self._event("text.delta", subject=self._text_subject, text=text)]

    # -- status ----------------------------------------------------------------------------------
    async def update(
        self,
        *,
        phase: int = execution_pb2.PHASE_UNSPECIFIED,
        events: list[Ev] | None = None,
        output: str | None = None,
        error: execution_pb2.ExecutionError | None = None,
        usage: execution_pb2.Usage | None = None,
        pending_approval: execution_pb2.ApprovalRequest | None = None,
        checkpoint: str = "",
    ) -> execution_pb2.Execution:
        """Write buffered text, ``events`` and status changes in one call."""
        async with self._lock:
            request = svc.UpdateExecutionStatusRequest(phase=phase)  # type: ignore[arg-type]
            request.events.extend(self._take_text())
            for ev in events or []:
                request.events.append(self._event(ev.type, subject=ev.subject, text=ev.text, data=ev.data))
            if output is not None:
                request.output.CopyFrom(to_value(self.redactor.scrub(output)))
            if error is not None:
                error.title = self.redactor.scrub(error.title)
                error.detail = self.redactor.scrub(error.detail)
                request.error.CopyFrom(error)
            if usage is not None:
                request.usage.CopyFrom(usage)
            if pending_approval is not None:
                request.pending_approval.CopyFrom(pending_approval)
            if checkpoint:  # scrubbed by its writer as data, before it became JSON text
                request.checkpoint = checkpoint
            return await self._write(request, final=phase in _TERMINAL)

    async def _write(
        self, request: svc.UpdateExecutionStatusRequest, *, final: bool = False
    ) -> execution_pb2.Execution:
        request.execution_id = self.execution_id
        request.runner = self.runner
        delay = 0.2
        for attempt in range(5):
            try:
                execution = await self.backend.update_execution_status(request)
                break
            except Unavailable:
                if attempt == 4:
                    raise
                log.warning("backend unavailable while writing events of %s; retrying", self.execution_id)
                await asyncio.sleep(delay)
                delay *= 2
            except (FailedPrecondition, AlreadyExists):
                # Cancelled meanwhile, or someone else (the backend) appended events: renumber once.
                current = await self.backend.get_execution(svc.GetExecutionRequest(id=self.execution_id))
                if current.status.phase in _TERMINAL:
                    raise RunStopped(current) from None
                if (
                    attempt > 0
                    or not request.events
                    or current.status.last_sequence < request.events[0].sequence
                ):
                    raise
                self.sequence = current.status.last_sequence
                for event in request.events:
                    self.sequence += 1
                    event.sequence = self.sequence
        # The backend appends events of its own (``phase``): continue after them.
        self.sequence = max(self.sequence, execution.status.last_sequence)
        if not final and execution.status.phase in _TERMINAL:
            raise RunStopped(execution)
        return execution


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp
