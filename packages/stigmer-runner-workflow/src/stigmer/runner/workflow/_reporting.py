"""A workflow run's events, task progress, checkpoints and final status: core's
:class:`~stigmer.core.EventWriter`, group-committing, with the workflow's own parts.

The writer numbers events after the execution's ``status.last_sequence`` (so a resumed run
continues the log without gaps), scrubs every text, payload, output, error and checkpoint, applies
the event limits and raises :class:`RunStopped` when the execution was cancelled. A ``buffered``
reporter group-commits: events, task progress and the latest checkpoint wait in memory and go to
the backend in one ``UpdateExecutionStatus`` call when :meth:`Reporter.flush` is called (the host
does so before every effect: HTTP, processes, agents, child runs, events, waits), when they have
waited ``flush_interval`` seconds or filled ``max_buffered`` events, and with the next phase
change. A crash can thus lose only progress of pure tasks since the last effect, which a resumed
run recomputes; no completed effect is ever left unrecorded.

What stays here is the workflow's own: its limit error (an RFC 7807 problem, and ``task.failed``
is always written so the failure that ends a run is recorded), task progress with attempts, and
the final status with an optional output or a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stigmer.core import Backend, EventWriter, Redactor, RunStopped, from_value, stamp_now, to_value
from stigmer.proto.v1 import execution_pb2

from ._limits import Limits, limit_error

__all__ = ["Reporter", "RunStopped", "from_value", "to_value"]


class Reporter(EventWriter):
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
        super().__init__(
            backend,
            execution_id,
            last_sequence=last_sequence,
            redactor=redactor,
            runner=runner,
            buffered=buffered,
            flush_interval=flush_interval,
            max_buffered=max_buffered,
            limits=limits,
            limit_error=limit_error,
            unlimited_types=("task.failed",),  # the failure that ends a run is always recorded
        )
        self._attempts: dict[str, int] = {}

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
        if has_output:
            return await self.update(phase=phase, output=output, error=error)
        return await self.update(phase=phase, error=error)

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
        """The progress of the task at ``path`` (counting its attempts), for :meth:`event`'s ``task``."""
        attempts = self._attempts.setdefault(path, 1) if started else self._attempts.get(path, 1)
        if retried:
            attempts = self._attempts[path] = attempts + 1
        task = execution_pb2.TaskProgress(
            path=path,
            name=name,
            phase=phase,  # type: ignore[arg-type]
            attempts=attempts,
        )
        if started:
            stamp_now(task.started_at)
            if finished:
                task.finished_at.CopyFrom(task.started_at)
        elif finished:
            stamp_now(task.finished_at)
        return task
