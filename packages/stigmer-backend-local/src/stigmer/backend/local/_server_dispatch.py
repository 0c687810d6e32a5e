"""Who runs the executions a server creates.

Without Temporal configured, the server runs them itself with the runners' Lite hosts
(:class:`InlineDispatcher`). A Temporal dispatcher can replace it later behind the same
:class:`ExecutionDispatcher` interface; :class:`NoDispatcher` leaves executions PENDING for
external runner workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable
from typing import Any, Protocol

from stigmer.core import Backend, PluginNotFound, StigmerError, load_runner
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["ExecutionDispatcher", "InlineDispatcher", "NoDispatcher", "runner_name"]

logger = logging.getLogger("stigmer.backend.local.server")

_TERMINAL = frozenset(
    {execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED, execution_pb2.PHASE_CANCELLED}
)


def runner_name(kind: str) -> str:
    """The ``stigmer.runners`` plugin that runs executions of ``kind``."""
    return "workflow" if kind == "WorkflowExecution" else "agent"


class ExecutionDispatcher(Protocol):
    """Hands executions to whatever runs them."""

    def start(self, execution: execution_pb2.Execution) -> None:
        """Run (or resume) ``execution``; must return at once."""
        ...

    async def shutdown(self, grace: float) -> None:
        """Let running work finish for up to ``grace`` seconds, then stop it."""
        ...

    # Optional: ``async def recover(self) -> list[str]`` — called once at server start to pick up
    # executions a dead process left running (see InlineDispatcher.recover).


class NoDispatcher:
    """Runs nothing: executions stay PENDING until an external runner picks them up."""

    def start(self, execution: execution_pb2.Execution) -> None:
        return None

    async def shutdown(self, grace: float) -> None:
        return None

    async def recover(self) -> list[str]:
        return []


# Runner identities look like `host:pid:workflow` or `agent-runner@host:pid`.
_IDENTITY = re.compile(r"(?:[^@:]*@)?(?P<host>[^:@\s]+):(?P<pid>\d+)(?::|$)")


def orphaned(runner: str, hostname: str | None = None) -> bool:
    """True when ``runner`` names a process on this host that no longer exists."""
    match = _IDENTITY.match(runner)
    if match is None or match["host"] != (hostname or socket.gethostname()):
        return False
    pid = int(match["pid"])
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return False


class InlineDispatcher:
    """Runs each execution in a background asyncio task with ``load_runner(...).execute``.

    ``load`` maps a runner name (``agent`` or ``workflow``) to a runner; it defaults to the
    ``stigmer.runners`` entry points.
    """

    def __init__(self, backend: Backend, load: Callable[[str], Any] = load_runner) -> None:
        self._backend = backend
        self._load = load
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        """How many executions are being run right now."""
        return sum(1 for task in self._tasks.values() if not task.done())

    def start(self, execution: execution_pb2.Execution) -> None:
        execution_id = execution.metadata.id
        previous = self._tasks.get(execution_id)
        task = asyncio.create_task(
            self._run(execution.kind, execution_id, previous), name=f"stigmer-run-{execution_id}"
        )
        self._tasks[execution_id] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, value in list(self._tasks.items()):
            if value is task:
                del self._tasks[key]

    async def _run(self, kind: str, execution_id: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            # Never run one execution twice at once: a resume waits for the earlier run to return.
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        name = runner_name(kind)
        try:
            runner = self._load(name)
        except PluginNotFound as err:
            logger.warning("cannot run %s: %s", execution_id, err)
            await self._fail(
                execution_id,
                title="runner not installed",
                detail=f"no '{name}' runner is installed on the server: {err}",
            )
            return
        try:
            await runner.execute(self._backend, execution_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Only the type is recorded: an exception message might quote a resolved secret.
            logger.exception("runner %r failed on execution %s", name, execution_id)
            await self._fail(
                execution_id,
                title="runner error",
                detail=f"the {name} runner stopped unexpectedly ({type(exc).__name__}); see the server log",
            )

    async def _fail(self, execution_id: str, *, title: str, detail: str) -> None:
        try:
            current = await self._backend.get_execution(svc.GetExecutionRequest(id=execution_id))
            if current.status.phase in _TERMINAL:
                return
            await self._backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(
                    execution_id=execution_id,
                    phase=execution_pb2.PHASE_FAILED,
                    error=execution_pb2.ExecutionError(
                        type="https://stigmer.ai/errors/runner", title=title, status=500, detail=detail
                    ),
                    runner="stigmer-server",
                )
            )
        except StigmerError as err:
            logger.warning("could not mark execution %s failed: %s", execution_id, err)

    async def recover(self) -> list[str]:
        """Resume RUNNING executions whose runner was a process of this host that has died
        (a server or Lite run that was killed); the runners resume from their checkpoints."""
        resumed: list[str] = []
        page_token = ""
        while True:
            page = await self._backend.list_executions(
                svc.ListExecutionsRequest(
                    phase=execution_pb2.PHASE_RUNNING, page_size=100, page_token=page_token
                )
            )
            for execution in page.executions:
                if execution.metadata.id not in self._tasks and orphaned(execution.status.runner):
                    logger.info(
                        "resuming execution %s, left running by %s",
                        execution.metadata.id,
                        execution.status.runner,
                    )
                    self.start(execution)
                    resumed.append(execution.metadata.id)
            page_token = page.next_page_token
            if not page_token:
                return resumed

    async def shutdown(self, grace: float) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("stopped %d running execution(s) at shutdown", len(pending))
            await asyncio.wait(pending, timeout=5.0)
