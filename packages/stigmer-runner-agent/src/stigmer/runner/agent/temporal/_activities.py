"""The activities of agent executions on Temporal: one per model request and one per tool call.

``stigmer.agent.start``, ``.model``, ``.tool``, ``.approval``, ``.decision``, ``.finish`` and
``.fail`` each run one step of :class:`AgentSteps` for an execution id; the workflow runs the agent
loop between them. Secrets are fetched inside each activity with ``GetExecutionContext`` and never
leave it: results are scrubbed, and a failure carries only a scrubbed problem description (as
``ApplicationError`` details, no exception chain). ``stigmer.agent.run`` — the whole run in one
activity, resuming from the runner's checkpoint — stays registered for workflows started by
earlier versions.

A failure that a retry cannot fix (a 4xx from the model, a tool that raised, a bad definition) is
non-retryable; a lost worker (heartbeat timeout), a model server error or timeout, or an
unavailable Backend is retried by Temporal.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from stigmer.core import Backend, StigmerError, Unavailable, default_redactor
from stigmer.proto.v1 import execution_pb2
from stigmer.temporal import heartbeating
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._events import RunStopped
from .._problems import problem_from_exception
from .._runner import AgentRunner
from ._host import STOPPED
from ._steps import AgentSteps, ModelStepError

__all__ = ["STOPPED", "AgentActivities"]


T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    """Whether retrying the step could help (the service or the network, not the request)."""
    if isinstance(exc, Unavailable):
        return True
    if isinstance(exc, StigmerError):  # refused or invalid (a capability, a grant): retrying cannot help
        return False
    from pydantic_ai.exceptions import ModelHTTPError

    if isinstance(exc, ModelHTTPError):
        return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
    try:
        import httpx
    except ImportError:  # pragma: no cover - only with a model client that brings its own transport
        pass
    else:
        if isinstance(exc, httpx.TransportError):
            return True
    try:
        import openai
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, openai.APIConnectionError | openai.APITimeoutError | openai.InternalServerError)


class AgentActivities:
    def __init__(self, backend: Backend, runner: AgentRunner | None = None) -> None:
        self.backend = backend
        self.runner = runner if runner is not None else AgentRunner()
        self.steps = AgentSteps(
            backend,
            environ=os.environ if self.runner.environ is None else self.runner.environ,
            flush_interval=self.runner.flush_interval,
            flush_chars=self.runner.flush_chars,
        )

    async def _step(
        self, work: Awaitable[T], *, transient: Callable[[BaseException], bool] = _transient
    ) -> T:
        try:
            async with heartbeating():
                return await work
        except RunStopped as stopped:
            phase = execution_pb2.Phase.Name(stopped.execution.status.phase)
            raise ApplicationError(
                f"the execution is {phase}", phase, type=STOPPED, non_retryable=True
            ) from None
        except Exception as failure:
            activity.logger.debug("agent step failed", exc_info=True)
            exc: Exception = failure
            model = endpoint = ""
            if isinstance(failure, ModelStepError):
                exc, model, endpoint = failure.error, failure.model, failure.endpoint
            problem = problem_from_exception(exc, model=model, endpoint=endpoint)
            data = default_redactor().scrub(json_format.MessageToDict(problem))
            raise ApplicationError(
                str(default_redactor().scrub(problem.detail or problem.title)),
                data,
                type=type(exc).__name__,
                non_retryable=not transient(exc),
            ) from None

    @activity.defn(name="stigmer.agent.start")
    async def start(self, execution_id: str) -> dict[str, Any]:
        """Mark the execution RUNNING; what the workflow's agent loop needs (no secrets)."""
        return await self._step(self.steps.start(execution_id))

    @activity.defn(name="stigmer.agent.model")
    async def model(self, execution_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """One model request; its text streams to the Backend, the final response is returned."""
        return await self._step(self.steps.model_request(execution_id, request))

    @activity.defn(name="stigmer.agent.tool")
    async def tool(self, execution_id: str, call: dict[str, Any]) -> dict[str, Any]:
        """One tool call; a tool that raised is not retried (only a lost worker's call is)."""
        first = activity.info().attempt == 1
        return await self._step(
            self.steps.call_tool(execution_id, call, report_call=first),
            transient=lambda exc: isinstance(exc, Unavailable),  # the Backend, not the tool
        )

    @activity.defn(name="stigmer.agent.approval")
    async def approval(self, execution_id: str, pause: dict[str, Any]) -> int:
        """Set WAITING_APPROVAL for a call; the event sequence decisions follow."""
        return await self._step(self.steps.request_approval(execution_id, pause))

    @activity.defn(name="stigmer.agent.decision")
    async def decision(self, execution_id: str, wait: dict[str, Any]) -> dict[str, Any] | None:
        """The decision recorded for a call, or ``None`` if there is none yet."""
        return await self._step(self.steps.decision(execution_id, wait))

    @activity.defn(name="stigmer.agent.finish")
    async def finish(self, execution_id: str, result: dict[str, Any]) -> str:
        """Write SUCCEEDED with the output; the phase written."""
        return await self._step(self.steps.finish(execution_id, result))

    @activity.defn(name="stigmer.agent.fail")
    async def fail(
        self, execution_id: str, problem: dict[str, Any], usage: dict[str, Any] | None = None
    ) -> str:
        """Write FAILED with the problem (and the usage not reported yet); the phase written."""
        return await self._step(self.steps.fail(execution_id, problem, usage))

    @activity.defn(name="stigmer.agent.cancel")
    async def cancel(self, execution_id: str) -> str:
        """Write CANCELLED (the workflow was cancelled, e.g. with its parent); the phase it has."""
        return await self._step(self.steps.cancel(execution_id))

    @activity.defn(name="stigmer.agent.run")
    async def run(self, execution_id: str) -> str:
        """Run (or resume) the whole agent execution in one activity (workflows of earlier versions)."""
        async with heartbeating():
            finished = await self.runner.execute(self.backend, execution_id)
        return execution_pb2.Phase.Name(finished.status.phase)

    def all(self) -> list[Any]:
        return [
            self.start,
            self.model,
            self.tool,
            self.approval,
            self.decision,
            self.finish,
            self.fail,
            self.cancel,
            self.run,
        ]
