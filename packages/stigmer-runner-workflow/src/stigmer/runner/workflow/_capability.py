"""The ``run`` capability of a workflow execution: ``run: shell`` and ``run: script`` start local
processes only when the execution's backend grants it (``ExecutionContext.config``)."""

from __future__ import annotations

from stigmer.core import CAPABILITY_RUN, Backend, CapabilityDenied, has_capability
from stigmer.proto.v1 import backend_service_pb2 as svc

from ._errors import ErrorKind, WorkflowError

__all__ = ["may_run", "refused"]


async def may_run(backend: Backend, execution_id: str) -> bool:
    """Whether the backend grants execution ``execution_id`` the ``run`` capability."""
    context = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=execution_id))
    return has_capability(context.config, CAPABILITY_RUN)


def refused(kind: str) -> WorkflowError:
    """The error of a ``run: shell`` / ``run: script`` task the backend does not allow."""
    return WorkflowError.of(
        ErrorKind.AUTHORIZATION, str(CapabilityDenied(f"run: {kind}")), title="Capability Not Allowed"
    )
