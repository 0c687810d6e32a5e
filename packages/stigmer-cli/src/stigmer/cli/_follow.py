"""Driving an execution: the in-process runner (Lite) next to a live watch of its events, approvals."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.cli._output import is_tty
from stigmer.cli._render import Renderer, short
from stigmer.cli._view import TERMINAL, phase_name

if TYPE_CHECKING:
    from stigmer.core import Backend, Runner
    from stigmer.proto.v1 import execution_pb2

__all__ = ["Follow", "approval_hint", "submit_approval"]

# How long to wait for events the runner wrote before it returned (they may be in flight).
_DRAIN_SECONDS = 2.0


def approval_hint(execution_id: str) -> str:
    return (
        f"execution {execution_id} waits for approval: "
        f"`stigmer execution approve {execution_id}` or `stigmer execution reject {execution_id}`"
    )


async def submit_approval(
    backend: Backend, execution_id: str, approved: bool, reason: str = "", approval_id: str = ""
) -> execution_pb2.Execution:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    return await backend.submit_approval(
        svc.SubmitApprovalRequest(
            execution_id=execution_id, approval_id=approval_id, approved=approved, reason=reason
        )
    )


@dataclass
class Follow:
    """Watch one execution to its end, optionally running it in-process and answering approvals.

    ``runner`` set: Lite mode, the runner executes here (and again after each approval).
    ``interactive``: approvals are asked inline; otherwise the watch stops at an approval
    (when ``stop_on_approval``) after printing how to answer it.
    """

    backend: Backend
    execution_id: str
    runner: Runner | None = None
    renderer: Renderer | None = None
    interactive: bool = False
    stop_on_approval: bool = True
    after_sequence: int = 0
    prompt: Callable[[str], str] | None = None
    answered: set[str] = field(default_factory=set)
    last_sequence: int = 0

    async def run(self) -> execution_pb2.Execution:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        self.last_sequence = self.after_sequence
        queue: asyncio.Queue[execution_pb2.ExecutionEvent | None] = asyncio.Queue()

        async def watch() -> None:
            try:
                request = svc.WatchExecutionRequest(
                    execution_id=self.execution_id, after_sequence=self.after_sequence
                )
                async for ev in self.backend.watch_execution(request):
                    await queue.put(ev)
            finally:
                await queue.put(None)

        watcher = asyncio.create_task(watch())
        runner_task = self._start_runner()
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                waiting: set[asyncio.Task[Any]] = {getter}
                if runner_task is not None:
                    waiting.add(runner_task)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    ev = getter.result()
                    if ev is None:
                        failure = (await asyncio.gather(watcher, return_exceptions=True))[0]
                        if isinstance(failure, Exception):
                            raise failure
                        break
                    if self._render(ev) and self.runner is None:
                        current = await self._get()
                        if phase_name(current.status.phase) == "WAITING_APPROVAL":
                            decided = await self._on_approval(current)
                            if decided is None and self.stop_on_approval:
                                return current
                else:
                    getter.cancel()
                if runner_task is not None and runner_task in done:
                    finished = runner_task.result()  # a runner error propagates here
                    runner_task = None
                    if phase_name(finished.status.phase) == "WAITING_APPROVAL":
                        await self._drain(queue, finished.status.last_sequence)
                        decided = await self._on_approval(finished)
                        if decided is None:
                            return await self._get()
                        runner_task = self._start_runner()
            if runner_task is not None:
                await runner_task
            return await self._get()
        finally:
            watcher.cancel()
            pending: list[asyncio.Task[Any]] = [watcher]
            if runner_task is not None and not runner_task.done():
                runner_task.cancel()
                pending.append(runner_task)  # let it unwind before the backend is closed
            await asyncio.gather(*pending, return_exceptions=True)
            if self.renderer is not None:
                self.renderer.end_text()

    def _start_runner(self) -> asyncio.Task[execution_pb2.Execution] | None:
        if self.runner is None:
            return None
        return asyncio.create_task(self.runner.execute(self.backend, self.execution_id))

    def _render(self, ev: execution_pb2.ExecutionEvent) -> bool:
        """Render an event; True when it may mean the execution now waits for an approval."""
        if ev.sequence:
            self.last_sequence = max(self.last_sequence, ev.sequence)
        if self.renderer is not None:
            self.renderer.event(ev)
        return ev.type == "approval.requested" or (
            ev.type == "phase" and phase_name(ev.phase) == "WAITING_APPROVAL"
        )

    async def _drain(self, queue: asyncio.Queue[execution_pb2.ExecutionEvent | None], up_to: int) -> None:
        """Render queued events up to sequence ``up_to`` (bounded wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_SECONDS
        while self.last_sequence < up_to:
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
            self._render(ev)

    async def _get(self) -> execution_pb2.Execution:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.get_execution(svc.GetExecutionRequest(id=self.execution_id))

    async def _on_approval(self, ex: execution_pb2.Execution) -> bool | None:
        """Ask for (or explain how to give) the pending approval; None when left unanswered."""
        pending = ex.status.pending_approval
        key = pending.id or f"seq-{ex.status.last_sequence}"
        if key in self.answered:
            return True
        if not self.interactive:
            if self.renderer is not None or self.stop_on_approval:
                _err(approval_hint(self.execution_id))
            self.answered.add(key)
            return None
        from google.protobuf import json_format

        what = pending.tool or "the pending action"
        if pending.server:
            what += f" (MCP server {pending.server})"
        args = json_format.MessageToDict(pending.arguments) if pending.HasField("arguments") else {}
        ask = self.prompt or _ask
        _err(f"approval needed: {what}" + (f" with {short(args, 300)}" if args else ""))
        # Asked on the loop's thread on purpose: nothing else needs to run meanwhile, and Ctrl-C
        # then interrupts the prompt at once (a prompt in a worker thread would keep the process
        # alive until Enter).
        try:
            answer = ask("approve? [y/N] ").strip().lower()
            approved = answer in ("y", "yes")
            reason = "" if approved else ask("reason (optional): ").strip()
        except EOFError:
            from stigmer.cli._errors import CliError

            raise CliError(f"no answer (end of input); {approval_hint(self.execution_id)}") from None
        self.answered.add(key)
        await submit_approval(self.backend, self.execution_id, approved, reason, pending.id)
        return approved


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _ask(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        from stigmer.cli._errors import CliError

        raise CliError(
            "no answer (end of input); answer later with `stigmer execution approve ID` or `reject ID`"
        )
    return line


def interactive_terminal() -> bool:
    """True when approvals can be asked inline (stdin and stderr are terminals)."""
    return is_tty(sys.stdin) and is_tty(sys.stderr)


def is_terminal_phase(ex: execution_pb2.Execution) -> bool:
    return phase_name(ex.status.phase) in TERMINAL
