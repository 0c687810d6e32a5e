"""``AsyncExecution``: a handle on one run — wait, result, cancel, approvals, live events, and
``follow``: the in-process runner (a local context) next to a live watch of its events, with
approvals answered as they come (what ``stigmer run`` shows)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from stigmer.core import STOPPED_PHASES, is_terminal, phase_name
from stigmer.sdk._errors import ApprovalRequired, ExecutionCancelled, ExecutionFailed, ExecutionTimeout

if TYPE_CHECKING:
    from stigmer.core import Backend, Handover, Runner
    from stigmer.proto.v1 import execution_pb2

__all__ = ["AsyncExecution", "OnApproval", "OnEvent"]

_CANCEL_GRACE = 1.0  # seconds an in-process runner gets to stop by itself after cancel()
_DRAIN_SECONDS = 2.0  # how long to wait for events the runner wrote before it returned (in flight)
_WAITING_APPROVAL = "WAITING_APPROVAL"
_ELSEWHERE = "decided elsewhere"  # ``answer``: someone else approved or rejected meanwhile

OnEvent = Callable[["execution_pb2.ExecutionEvent"], None]
# Given the execution waiting for an approval: (approved, reason) to answer it, None to leave it.
OnApproval = Callable[["execution_pb2.Execution"], Awaitable["tuple[bool, str] | None"]]


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
        self._handover: Handover | None = None
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
    def todos(self) -> list[dict[str, str]]:
        """An agent's plan (its ``todos`` tool) in the latest snapshot: ``{"id", "content",
        "status"}`` per item, status ``pending``, ``in_progress``, ``completed`` or ``cancelled``."""
        return [{"id": t.id, "content": t.content, "status": t.status} for t in self.execution.status.todos]

    @property
    def done(self) -> bool:
        return is_terminal(self.execution.status.phase)

    @property
    def in_process(self) -> bool:
        """True when this process runs the execution (a local context)."""
        return self._runner is not None

    # -- lifecycle -----------------------------------------------------------------------------

    def _start_runner(self) -> asyncio.Task[execution_pb2.Execution]:
        from stigmer.core import Handover, handing_over

        assert self._runner is not None
        if self._handover is None:
            self._handover = Handover()
        with handing_over(self._handover):  # the runner's task sees it (its context is a copy)
            self._task = asyncio.get_running_loop().create_task(self._runner.execute(self._backend, self.id))
        return self._task

    def hand_over(self) -> bool:
        """Ask the runner running in this process to stop at its next step boundary — progress
        saved, no effect under way (a ``wait`` stops at once: its deadline is saved) — leaving the
        execution RUNNING for another process to resume (``stigmer execution resume ID``), so no
        started effect runs twice. ``follow`` then returns the execution as it stands.
        False when no runner runs here."""
        if self._handover is None or self._task is None or self._task.done():
            return False
        self._handover.request()
        return True

    @property
    def handed_over(self) -> bool:
        """True once ``hand_over`` was asked."""
        return self._handover is not None and self._handover.requested

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
                ex = await self.refresh()
                task = self._task
                if ex.status.phase not in STOPPED_PHASES or (task is not None and not task.done()):
                    await self.follow(after_sequence=ex.status.last_sequence)
                elif task is not None and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # a runner bug, not an execution failure
        except TimeoutError:
            raise ExecutionTimeout(
                f"{self.kind} {self.id} is still {self.phase} after {timeout:g} s"
            ) from None
        return await self.refresh()

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
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})  # the runner pauses before the approval is answerable
        await self._submit(approved, reason, self.execution.status.pending_approval.id)
        if self._runner is not None and not self.done:
            self._start_runner()
        return self.execution

    async def _submit(self, approved: bool, reason: str, approval_id: str) -> execution_pb2.Execution:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        self.execution = await self._backend.submit_approval(
            svc.SubmitApprovalRequest(
                execution_id=self.id, approval_id=approval_id, approved=approved, reason=reason
            )
        )
        return self.execution

    async def close(self, wait: bool = True) -> None:
        """Wait for an in-process run started by this handle to return; ``wait=False`` stops it
        where it is (it stays RUNNING and resumable: ``stigmer execution resume ID``)."""
        if self._task is not None and not self._task.done():
            if not wait:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- following ------------------------------------------------------------------------------

    async def follow(
        self,
        on_event: OnEvent | None = None,
        on_approval: OnApproval | None = None,
        *,
        start: bool = False,
        stop_on_approval: bool = True,
        after_sequence: int | None = None,
    ) -> execution_pb2.Execution:
        """Watch this execution to its end, passing each event to ``on_event``; returns the last
        snapshot.

        Events come after ``after_sequence`` (default: the last one ``events()`` yielded).
        In a local context the runner runs in this process: the one ``run`` started, or with
        ``start=True`` a new one (resuming a pending or interrupted execution). When the execution
        waits for an approval, ``on_approval`` is asked: ``(approved, reason)`` answers it and the
        run goes on (here, or on the server); ``None`` leaves it unanswered and following stops
        there (unless ``stop_on_approval=False`` and the run goes on elsewhere: then it watches on).
        While ``on_approval`` is asked, the watch goes on: an approval or rejection made elsewhere
        (another process) cancels the asking, and following goes on with the run (run by whoever
        decided). After ``hand_over()`` it returns once the runner here stopped at a step boundary.
        ``wait`` is ``follow()`` from the current snapshot, with a timeout.
        """
        from stigmer.proto.v1 import backend_service_pb2 as svc

        if start and self._runner is not None and self._task is None:
            self._start_runner()
        first = self._seen if after_sequence is None else after_sequence
        last = first
        answered: set[str] = set()
        queue: asyncio.Queue[execution_pb2.ExecutionEvent | None] = asyncio.Queue()
        ended: list[execution_pb2.Execution] = []  # the execution as it ended, sent with its last event

        async def watch() -> None:
            try:
                request = svc.WatchExecutionRequest(
                    execution_id=self.id, after_sequence=first, final_execution=True
                )
                async for ev in self._backend.watch_execution(request):
                    if ev.HasField("execution"):
                        snapshot = type(ev.execution)()
                        snapshot.CopyFrom(ev.execution)
                        ended.append(snapshot)
                        ev.ClearField("execution")
                    await queue.put(ev)
            finally:
                await queue.put(None)

        def seen(ev: execution_pb2.ExecutionEvent) -> bool:
            """Pass an event on; True when the execution now waits for an approval (its phase
            event comes after the call and the request, so those are passed on before asking)."""
            nonlocal last
            if ev.sequence:
                last = max(last, ev.sequence)
            if on_event is not None:
                on_event(ev)
            return ev.type == "phase" and phase_name(ev.phase) == _WAITING_APPROVAL

        async def drain(up_to: int) -> None:
            """Pass on queued events up to sequence ``up_to`` (bounded wait)."""
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _DRAIN_SECONDS
            while last < up_to:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    ev = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
                if ev is None:
                    await queue.put(None)
                    return
                seen(ev)

        async def decided_elsewhere(approval_id: str) -> None:
            """Pass events on until the approval is decided by someone else (another terminal,
            the SDK): its ``approval.resolved`` event, or the execution leaving WAITING_APPROVAL."""
            while True:
                ev = await queue.get()
                if ev is None:  # the watch ended: nothing will tell
                    await queue.put(None)
                    await asyncio.Event().wait()
                    continue
                seen(ev)
                if ev.type == "approval.resolved" and (not approval_id or ev.subject == approval_id):
                    return
                if ev.type == "phase" and phase_name(ev.phase) != _WAITING_APPROVAL:
                    return

        async def answer(ex: execution_pb2.Execution) -> bool | str | None:
            """Ask ``on_approval`` once per pending approval, while watching for a decision made
            elsewhere (which ends the asking: ``_ELSEWHERE``); None when left unanswered."""
            from stigmer.core import FailedPrecondition

            pending = ex.status.pending_approval
            key = pending.id or f"seq-{ex.status.last_sequence}"
            if key in answered:
                return True
            answered.add(key)
            if on_approval is None:
                return None
            asking = asyncio.ensure_future(on_approval(ex))
            elsewhere = asyncio.ensure_future(decided_elsewhere(pending.id))
            try:
                await asyncio.wait({asking, elsewhere}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (asking, elsewhere):
                    if not task.done():
                        task.cancel()
                await asyncio.gather(elsewhere, return_exceptions=True)
                if asking.cancelled() or not asking.done():
                    await asyncio.gather(asking, return_exceptions=True)
            if asking.cancelled():
                return _ELSEWHERE
            decision = asking.result()  # a failure to ask propagates
            if decision is None:
                return None
            approved, reason = decision
            try:
                await self._submit(approved, reason, pending.id)
            except FailedPrecondition:
                current = await self.refresh()
                if phase_name(current.status.phase) != _WAITING_APPROVAL:
                    return _ELSEWHERE  # decided elsewhere the moment it was answered here
                raise
            return approved

        watcher = asyncio.create_task(watch())
        # a runner stopped by cancel() or close(wait=False) has nothing more to say: watch only
        runner_task = self._task if self._task is not None and not self._task.cancelled() else None
        try:
            while True:
                done: set[asyncio.Task[Any]] = set()
                if not queue.empty():  # events already here (a batch): taken without a task or a wait
                    got, ev = True, queue.get_nowait()
                else:
                    getter = asyncio.create_task(queue.get())
                    waiting: set[asyncio.Task[Any]] = {getter}
                    if runner_task is not None:
                        waiting.add(runner_task)
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    got = getter in done
                    if got:
                        ev = getter.result()
                    else:
                        getter.cancel()
                if got:
                    if ev is None:
                        failure = (await asyncio.gather(watcher, return_exceptions=True))[0]
                        if isinstance(failure, Exception):
                            raise failure
                        break
                    if seen(ev) and runner_task is None:
                        current = await self.refresh()
                        if phase_name(current.status.phase) == _WAITING_APPROVAL:
                            decided = await answer(current)
                            if decided is None and stop_on_approval:
                                return await self.refresh()
                if runner_task is not None and runner_task in done:
                    if runner_task.cancelled():
                        runner_task = None
                        continue
                    finished = runner_task.result()  # a runner error propagates here
                    runner_task = None
                    if self.handed_over and not is_terminal(finished.status.phase):
                        await drain(finished.status.last_sequence)
                        return await self.refresh()  # stopped at a step boundary, for another process
                    if phase_name(finished.status.phase) == _WAITING_APPROVAL:
                        await drain(finished.status.last_sequence)
                        decided = await answer(finished)
                        if decided is None:
                            return await self.refresh()
                        if decided is not _ELSEWHERE:
                            runner_task = self._start_runner()
                        # decided elsewhere: whoever decided runs it on; watch
            if runner_task is not None:
                await asyncio.wait({runner_task})
                if not runner_task.cancelled():
                    runner_task.result()  # a runner error propagates here
            elif ended and is_terminal(ended[-1].status.phase):
                self.execution = ended[-1]  # as the watch's last event brought it: no call more
                return self.execution
            return await self.refresh()
        finally:
            # The runner is this handle's: it goes on (``close(wait=False)`` stops it).
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

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
                if ev.type == "phase" and ev.phase in STOPPED_PHASES:
                    break
        finally:
            await _aclose(stream)
        await self.refresh()


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(RuntimeError):  # already closed, or closing in another task
            await close()
