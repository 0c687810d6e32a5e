"""The ``run`` capability of a workflow execution: ``run: shell`` and ``run: script`` start local
processes, and ``call: grpc`` with a ``file://`` proto reads a file of the machine running it,
only when the execution's backend grants it (``ExecutionContext.config``)."""

from __future__ import annotations

from stigmer.core import CAPABILITY_RUN, Backend, CapabilityDenied, has_capability
from stigmer.proto.v1 import backend_service_pb2 as svc

from ._errors import ErrorKind, WorkflowError

__all__ = ["LOCAL_PROTO", "may_run", "refused"]

#: What a ``file://`` proto of ``call: grpc`` is, in the refusal.
LOCAL_PROTO = "call: grpc with a file:// proto (a file on the machine running the workflow)"


async def may_run(backend: Backend, execution_id: str) -> bool:
    """Whether the backend grants execution ``execution_id`` the ``run`` capability."""
    context = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=execution_id))
    return has_capability(context.config, CAPABILITY_RUN)


def refused(kind: str, what: str | None = None) -> WorkflowError:
    """The error of a ``run: shell`` / ``run: script`` task (or another effect on the host's own
    machine, described by ``what``, e.g. a ``file://`` proto of ``call: grpc``) the backend does
    not allow."""
    return WorkflowError.of(
        ErrorKind.AUTHORIZATION,
        str(CapabilityDenied(what or f"run: {kind}")),
        title="Capability Not Allowed",
    )
