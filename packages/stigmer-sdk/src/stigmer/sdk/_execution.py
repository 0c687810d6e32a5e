"""``AsyncExecution``: a handle on one run — wait, result, cancel, approvals, live events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from stigmer.sdk._errors import ApprovalRequired, ExecutionCancelled, ExecutionFailed, ExecutionTimeout

if TYPE_CHECKING:
    from stigmer.core import Backend, Runner
    from stigmer.proto.v1 import execution_pb2

__all__ = ["TERMINAL_PHASES", "AsyncExecution", "phase_name"]

TERMINAL_PHASES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_STOP = TERMINAL_PHASES | {"WAITING_APPROVAL"}
_CANCEL_GRACE = 1.0  # seconds an in-process runner gets to stop by itself after cancel()


def phase_name(value: int) -> str:
    """``4`` -> ``"SUCCEEDED"``."""
    from stigmer.proto.v1 import execution_pb2

    return execution_pb2.Phase.Name(value).removeprefix("PHASE_")  # type: ignore[arg-type]


class AsyncExecution:
    """One execution. In a local context the runner runs in this process (started by ``run``);
    against a server the server runs it and this handle only watches.

    ``async for event in handle`` yields the events this handle has not yielded yet
    (``stigmer.v1.ExecutionEvent`` messages) and stops when the execution ends or waits for an
    approval. ``execution`` is the latest ``stigmer.v1.Execution`` snapshot.
    """

    def __init__(
        self,
        backend: Backend,
        execution: execution_pb2.Execution,
        runner: Runner | None = None,
        *,
        start: bool = True,
    ) -> None:
        self._backend = backend
        self.execution = execution
        self._runner = runner
        self._task: asyncio.Task[execution_pb2.Execution] | None = None
        self._seen = 0
        if runner is not None and start:
            self._start_runner()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id} {self.phase}>"

    @property
    def id(self) -> str:
        return self.execution.metadata.id

    @property
    def kind(self) -> str:
        """``WorkflowExecution`` or ``AgentExecution``."""
        return self.execution.kind

    @property
    def phase(self) -> str:
        """Phase of the latest snapshot: ``PENDING``, ``RUNNING``, ``WAITING_APPROVAL``, ``SUCCEEDED`` ..."""
        return phase_name(self.execution.status.phase)

    @property
    def output(self) -> Any:
        """Output of the latest snapshot as plain data (None until it succeeded)."""
        from stigmer.core import from_value

        status = self.execution.status
        return from_value(status.output) if status.HasField("output") else None

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def in_process(self) -> bool:
        """True when this process runs the execution (a local context)."""
        return self._runner is not None

    # -- lifecycle -----------------------------------------------------------------------------

    def _start_runner(self) -> None:
        assert self._runner is not None
        self._task = asyncio.get_running_loop().create_task(self._runner.execute(self._backend, self.id))

    async def refresh(self) -> execution_pb2.Execution:
        """Read the execution again."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        self.execution = await self._backend.get_execution(svc.GetExecutionRequest(id=self.id))
        return self.execution

    async def wait(self, timeout: float | None = None) -> execution_pb2.Execution:
        """Wait until the execution ends or waits for an approval; returns the final snapshot.

        Raises ``ExecutionTimeout`` after ``timeout`` seconds (the execution keeps running).
        """
        try:
            async with asyncio.timeout(timeout):
                await self._until_stop()
        except TimeoutError:
            raise ExecutionTimeout(
                f"{self.kind} {self.id} is still {self.phase} after {timeout:g} s"
            ) from None
        return await self.refresh()

    async def _until_stop(self) -> None:
        """Until the phase is terminal or WAITING_APPROVAL (or the in-process runner returned)."""
        task = self._task
        if task is None or task.done():
            await self._watch_until_stop()
        else:
            watcher = asyncio.ensure_future(self._watch_until_stop())
            try:
                await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a runner bug, not an execution failure

    async def _watch_until_stop(self) -> None:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        ex = await self.refresh()
        if phase_name(ex.status.phase) in _STOP:
            return
        request = svc.WatchExecutionRequest(execution_id=self.id, after_sequence=ex.status.last_sequence)
        stream = self._backend.watch_execution(request)
        try:
            async for ev in stream:
                if ev.type == "phase" and phase_name(ev.phase) in _STOP:
                    return
        finally:
            await _aclose(stream)

    async def result(self, timeout: float | None = None) -> Any:
        """The output once the execution succeeded (plain data: a workflow's output document or
        an agent's answer). Raises ``ExecutionFailed`` (with the RFC 7807 error),
        ``ExecutionCancelled`` or ``ApprovalRequired``."""
        ex = await self.wait(timeout)
        phase = phase_name(ex.status.phase)
        if phase == "FAILED":
            raise ExecutionFailed(ex)
        if phase == "CANCELLED":
            raise ExecutionCancelled(ex)
        if phase == "WAITING_APPROVAL":
            raise ApprovalRequired(ex)
        return self.output

    async def cancel(self, reason: str = "") -> execution_pb2.Execution:
        """Ask the execution to stop; the runner stops at the next task boundary."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        self.execution = await self._backend.cancel_execution(
            svc.CancelExecutionRequest(id=self.id, reason=reason)
        )
        task = self._task
        if task is not None and not task.done():
            # The in-process runner stops at its next update; a long wait or listen is cut short.
            done, _ = await asyncio.wait({task}, timeout=_CANCEL_GRACE)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return self.execution

    async def approve(self, reason: str = "") -> execution_pb2.Execution:
        """Approve the pending action; in a local context the run continues in this process."""
        return await self._decide(True, reason)

    async def reject(self, reason: str = "") -> execution_pb2.Execution:
        """Reject the pending action (the reason is passed to the model)."""
        return await self._decide(False, reason)

    async def _decide(self, approved: bool, reason: str) -> execution_pb2.Execution:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})  # the runner pauses before the approval is answerable
        pending = self.execution.status.pending_approval.id
        self.execution = await self._backend.submit_approval(
            svc.SubmitApprovalRequest(
                execution_id=self.id, approval_id=pending, approved=approved, reason=reason
            )
        )
        if self._runner is not None and not self.done:
            self._start_runner()
        return self.execution

    async def close(self, wait: bool = True) -> None:
        """Wait for an in-process run started by this handle to return; ``wait=False`` stops it
        where it is (it stays RUNNING and resumable: ``stigmer execution resume ID``)."""
        if self._task is not None and not self._task.done():
            if not wait:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- events --------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        return self.events()

    async def events(
        self, after_sequence: int | None = None
    ) -> AsyncGenerator[execution_pb2.ExecutionEvent, None]:
        """Live events after ``after_sequence`` (default: the last one this handle yielded),
        until the execution ends or waits for an approval."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        start = self._seen if after_sequence is None else after_sequence
        stream = self._backend.watch_execution(
            svc.WatchExecutionRequest(execution_id=self.id, after_sequence=start)
        ).__aiter__()
        try:
            while True:
                nxt: asyncio.Future[execution_pb2.ExecutionEvent] = asyncio.ensure_future(anext(stream))
                task = self._task
                if task is not None and not task.done():
                    waiting: set[asyncio.Future[Any]] = {nxt, task}
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if not nxt.done() and not task.cancelled() and task.exception() is not None:
                        nxt.cancel()
                        await asyncio.gather(nxt, return_exceptions=True)
                        raise task.exception()  # type: ignore[misc]
                try:
                    ev = await nxt
                except StopAsyncIteration:
                    break
                self._seen = max(self._seen, ev.sequence)
                yield ev
                if ev.type == "phase" and phase_name(ev.phase) in _STOP:
                    break
        finally:
            await _aclose(stream)
        await self.refresh()


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(RuntimeError):  # already closed, or closing in another task
            await close()
