"""Writing a workflow run's events, task progress, checkpoints and final status through a Backend.

Events are numbered after the execution's ``status.last_sequence`` (so a resumed run continues
the log without gaps) and every text, payload, output, error and checkpoint is scrubbed by the
run's redactor before it is written.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from stigmer.core import Backend, FailedPrecondition, Redactor, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["Reporter", "RunStopped", "from_value", "to_value"]


class RunStopped(BaseException):
    """The backend refused an update: the execution was cancelled or finished elsewhere.

    A ``BaseException`` (like ``asyncio.CancelledError``) so that no ``try``/``catch`` in the
    workflow and no fault handling in the interpreter can swallow it: the run just stops.
    """


def to_value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(json.loads(json.dumps(value, default=str)), struct_pb2.Value())


def _timestamp(moment: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Reporter:
    """Numbers, scrubs and writes the events and status of one workflow execution."""

    def __init__(
        self, backend: Backend, execution_id: str, *, last_sequence: int, redactor: Redactor, runner: str
    ):
        self.backend = backend
        self.execution_id = execution_id
        self.sequence = last_sequence
        self.redactor = redactor
        self.runner = runner
        self._attempts: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def event(
        self,
        type: str,
        *,
        subject: str = "",
        text: str = "",
        data: Any = None,
        task: execution_pb2.TaskProgress | None = None,
    ) -> execution_pb2.Execution:
        """Append one event (numbered after the last one) and upsert the task's progress."""
        async with self._lock:
            self.sequence += 1
            event = execution_pb2.ExecutionEvent(
                execution_id=self.execution_id,
                sequence=self.sequence,
                type=type,
                subject=self.redactor.scrub(subject),
                text=self.redactor.scrub(text),
            )
            event.time.CopyFrom(_timestamp(datetime.datetime.now(datetime.UTC)))
            if data is not None:
                event.data.CopyFrom(to_value(self.redactor.scrub(data)))
            request = svc.UpdateExecutionStatusRequest(
                execution_id=self.execution_id,
                events=[event],
                runner=self.runner,
            )
            if task is not None:
                request.tasks.append(task)
            return await self._write(request)

    async def status(
        self,
        phase: int,
        *,
        output: Any = None,
        has_output: bool = False,
        error: Mapping[str, Any] | None = None,
    ) -> execution_pb2.Execution:
        """Change the phase (the backend appends the ``phase`` event), with the output or error."""
        async with self._lock:
            request = svc.UpdateExecutionStatusRequest(
                execution_id=self.execution_id,
                phase=phase,  # type: ignore[arg-type]
                runner=self.runner,
            )
            if has_output:
                request.output.CopyFrom(to_value(self.redactor.scrub(output)))
            if error is not None:
                request.error.CopyFrom(_error(self.redactor.scrub(dict(error))))
            return await self._write(request)

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
            request = svc.UpdateExecutionStatusRequest(
                execution_id=self.execution_id,
                runner=self.runner,
                checkpoint=self.redactor.scrub(json.dumps(state, default=str)),
            )
            await self._write(request)

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
        now = _timestamp(datetime.datetime.now(datetime.UTC))
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
