"""``AgentRunner``: the ``agent`` plugin of the ``stigmer.runners`` group."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from stigmer.core import STOPPED_PHASES, Backend, InvalidArgument
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["AgentRunner"]


class AgentRunner:
    """Runs agent executions through any ``Backend``.

    ``execute`` drives an ``AgentExecution`` to SUCCEEDED, FAILED or CANCELLED, or to
    WAITING_APPROVAL and returns; after ``SubmitApproval`` (the execution is RUNNING again),
    calling ``execute`` once more resumes it from its checkpoint. Everything the runner keeps
    between calls lives in the Backend, so any runner instance or process can continue.

    ``flush_interval`` / ``flush_chars`` control how streamed text is coalesced into
    ``text.delta`` events; ``environ`` replaces the process environment (for tests and embedding);
    ``cancel_poll`` is how often (seconds) a running execution is checked for cancellation.
    """

    def __init__(
        self,
        *,
        flush_interval: float = 0.1,
        flush_chars: int = 200,
        environ: Mapping[str, str] | None = None,
        cancel_poll: float = 1.0,
    ) -> None:
        self.flush_interval = flush_interval
        self.flush_chars = flush_chars
        self.environ = environ
        self.cancel_poll = cancel_poll

    async def prepare(self) -> None:
        """Import the agent loop, pydantic-ai and the OpenAI-compatible model client ahead of any run."""
        import importlib

        importlib.import_module("stigmer.runner.agent._inprocess")
        with contextlib.suppress(ImportError):  # an optional provider extra
            importlib.import_module("pydantic_ai.models.openai")

    async def execute(self, backend: Backend, execution_id: str) -> execution_pb2.Execution:
        """Run (or resume) the agent execution with this id; returns it as it stands at the end."""
        execution = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if execution.kind and execution.kind != "AgentExecution":
            raise InvalidArgument(
                f"execution {execution_id} is a {execution.kind}; the agent runner runs AgentExecutions"
            )
        if execution.status.phase in STOPPED_PHASES:  # ended, or waiting for a decision
            return execution

        from stigmer.runner.agent._inprocess import InProcessHost
        from stigmer.runner.agent._loading import load_pydantic_ai

        load_pydantic_ai()

        host = InProcessHost(
            backend,
            execution,
            environ=os.environ if self.environ is None else self.environ,
            flush_interval=self.flush_interval,
            flush_chars=self.flush_chars,
            cancel_poll=self.cancel_poll,
        )
        from stigmer.core import traced_execution

        ended: execution_pb2.Execution = await traced_execution(execution, host.execute)
        return ended
