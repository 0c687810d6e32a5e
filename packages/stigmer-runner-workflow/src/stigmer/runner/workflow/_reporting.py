"""Writing a workflow run's events, task progress, checkpoints and final status through a Backend.

Events are numbered after the execution's ``status.last_sequence`` (so a resumed run continues
the log without gaps) and every text, payload, output, error and checkpoint is scrubbed by the
run's redactor before it is written.

A ``buffered`` reporter group-commits: events, task progress and the latest checkpoint wait in
memory and go to the backend in one ``UpdateExecutionStatus`` call when :meth:`Reporter.flush`
is called (the host does so before every effect: HTTP, processes, agents, child runs, events,
waits), when they have waited ``flush_interval`` seconds or filled ``max_buffered`` events, and
with the next phase change. A crash can thus lose only progress of pure tasks since the last
effect, which a resumed run recomputes; no completed effect is ever left unrecorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from stigmer.core import Backend, FailedPrecondition, Redactor, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

from ._limits import Limits, check_event

__all__ = ["Reporter", "RunStopped", "from_value", "to_value"]


class RunStopped(BaseException):
    """The backend refused an update: the execution was cancelled or finished elsewhere.

    A ``BaseException`` (like ``asyncio.CancelledError``) so that no ``try``/``catch`` in the
    workflow and no fault handling in the interpreter can swallow it: the run just stops.
    """


def to_value(value: Any) -> struct_pb2.Value:
    """``value`` as JSON data in a protobuf ``Value`` (what ``json_format.ParseDict`` builds, faster)."""
    return _json_value(json.dumps(value, default=str))


def _json_value(text: str) -> struct_pb2.Value:
    plain = json.loads(text)
    out = struct_pb2.Value()
    if isinstance(plain, dict):
        out.struct_value.SetInParent()
        out.struct_value.update(plain)
    elif isinstance(plain, list):
        out.list_value.SetInParent()
        out.list_value.extend(plain)
    elif plain is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(plain, bool):
        out.bool_value = plain
    elif isinstance(plain, int | float):
        out.number_value = plain
    else:
        out.string_value = plain
    return out


def _now() -> timestamp_pb2.Timestamp:
    """The current time, to the microsecond (as ``FromDatetime(datetime.now(UTC))`` gives)."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(time.time_ns() // 1000)
    return stamp


class Reporter:
    """Numbers, scrubs and writes the events and status of one workflow execution."""

    def __init__(
        self,
        backend: Backend,
        execution_id: str,
        *,
        last_sequence: int,
        redactor: Redactor,
        runner: str,
        buffered: bool = False,
        flush_interval: float = 0.25,
        max_buffered: int = 256,
        limits: Limits | None = None,
    ):
        self.backend = backend
        self.execution_id = execution_id
        self.sequence = last_sequence
        self.redactor = redactor
        self.runner = runner
        self.buffered = buffered
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self.limits = limits if limits is not None else Limits()
        self._attempts: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._events: list[execution_pb2.ExecutionEvent] = []
        self._tasks: dict[str, execution_pb2.TaskProgress] = {}  # by path, merged as the backend upserts
        self._checkpoint: Mapping[str, Any] | None = None
        self._since = 0.0  # when the oldest pending item was buffered

    async def event(
        self,
        type: str,
        *,
        subject: str = "",
        text: str = "",
        data: Any = None,
        task: execution_pb2.TaskProgress | None = None,
    ) -> None:
        """Append one event (numbered after the last one) and upsert the task's progress.

        Over the execution's event limits it raises the limit error instead (a ``task.failed``
        event is always written, so the failure that ends the run is recorded).
        """
        text_data = json.dumps(self.redactor.scrub(data), default=str) if data is not None else ""
        if type != "task.failed":
            check_event(self.limits, self.sequence + 1, len(text_data), subject)
        async with self._lock:
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
                event.data.CopyFrom(_json_value(text_data))
            if self.buffered:
                self._mark()
                self._events.append(event)
                if task is not None:
                    if task.path in self._tasks:
                        self._tasks[task.path].MergeFrom(task)  # a completion keeps its started_at
                    else:
                        self._tasks[task.path] = task
                if self._due():
                    await self._write(self._pending())
                return
            request = svc.UpdateExecutionStatusRequest(
                execution_id=self.execution_id,
                events=[event],
                runner=self.runner,
            )
            if task is not None:
                request.tasks.append(task)
            await self._write(request)

    async def status(
        self,
        phase: int,
        *,
        output: Any = None,
        has_output: bool = False,
        error: Mapping[str, Any] | None = None,
    ) -> execution_pb2.Execution:
        """Change the phase (the backend appends the ``phase`` event), with the output or error.

        Pending (buffered) events, progress and checkpoint go in the same call, before it.
        """
        async with self._lock:
            request = self._pending()
            request.phase = phase  # type: ignore[assignment]
            if has_output:
                request.output.CopyFrom(to_value(self.redactor.scrub(output)))
            if error is not None:
                request.error.CopyFrom(_error(self.redactor.scrub(dict(error))))
            return await self._write(request)

    async def flush(self) -> None:
        """Write whatever is buffered (nothing to do when unbuffered or empty)."""
        if not (self._events or self._tasks or self._checkpoint is not None):
            return
        async with self._lock:
            if self._events or self._tasks or self._checkpoint is not None:
                await self._write(self._pending())

    async def _write(self, request: svc.UpdateExecutionStatusRequest) -> execution_pb2.Execution:
        try:
            execution = await self.backend.update_execution_status(request)
        except FailedPrecondition as exc:
            raise RunStopped(str(exc)) from exc
        self.sequence = max(self.sequence, execution.status.last_sequence)
        return execution

    async def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Store the resume point (no event: checkpoints follow every completed task)."""
        async with self._lock:
            if self.buffered:
                self._mark()
                self._checkpoint = state
                if self._due():
                    await self._write(self._pending())
                return
            request = svc.UpdateExecutionStatusRequest(
                execution_id=self.execution_id,
                runner=self.runner,
                checkpoint=self._serialize(state),
            )
            await self._write(request)

    def _serialize(self, state: Mapping[str, Any]) -> str:
        return str(self.redactor.scrub(json.dumps(state, default=str)))

    def _mark(self) -> None:
        if not (self._events or self._tasks or self._checkpoint is not None):
            self._since = time.monotonic()

    def _due(self) -> bool:
        return len(self._events) >= self.max_buffered or time.monotonic() - self._since >= self.flush_interval

    def _pending(self) -> svc.UpdateExecutionStatusRequest:
        """A request carrying everything buffered (and clearing the buffer)."""
        request = svc.UpdateExecutionStatusRequest(
            execution_id=self.execution_id, runner=self.runner, events=self._events
        )
        request.tasks.extend(self._tasks.values())
        if self._checkpoint is not None:
            request.checkpoint = self._serialize(self._checkpoint)
        self._events, self._tasks, self._checkpoint = [], {}, None
        return request

    def progress(
        self,
        path: str,
        name: str,
        phase: int,
        *,
        started: bool = False,
        finished: bool = False,
        retried: bool = False,
    ) -> execution_pb2.TaskProgress:
        if started:
            self._attempts.setdefault(path, 1)
        if retried:
            self._attempts[path] = self._attempts.get(path, 1) + 1
        task = execution_pb2.TaskProgress(path=path, name=name, attempts=self._attempts.get(path, 1))
        task.phase = phase  # type: ignore[assignment]
        now = _now()
        if started:
            task.started_at.CopyFrom(now)
        if finished:
            task.finished_at.CopyFrom(now)
        return task


def _error(problem: Mapping[str, Any]) -> execution_pb2.ExecutionError:
    status = problem.get("status")
    return execution_pb2.ExecutionError(
        type=str(problem.get("type") or ""),
        title=str(problem.get("title") or ""),
        status=int(status) if isinstance(status, int | float) else 500,
        detail=str(problem.get("detail") or ""),
        instance=str(problem.get("instance") or ""),
    )
