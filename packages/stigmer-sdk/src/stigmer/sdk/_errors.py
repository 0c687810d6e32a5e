"""Errors of the SDK's execution handles; all are ``stigmer.core.StigmerError`` subtypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stigmer.core import StigmerError

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2

__all__ = ["ApprovalRequired", "ExecutionCancelled", "ExecutionFailed", "ExecutionTimeout"]


class ExecutionFailed(StigmerError):
    """The execution ended in FAILED; ``error`` is its RFC 7807 problem (``type``, ``title``,
    ``status``, ``detail``, ``instance`` = the failing task's path)."""

    grpc_code = "ABORTED"

    def __init__(self, execution: execution_pb2.Execution) -> None:
        err = execution.status.error
        detail = ": ".join(x for x in (err.title, err.detail) if x) or "no error details"
        where = f" at {err.instance}" if err.instance else ""
        super().__init__(f"{execution.kind} {execution.metadata.id} failed{where}: {detail}")
        self.execution = execution
        self.error = err
        self.type, self.title, self.status = err.type, err.title, err.status
        self.detail, self.instance = err.detail, err.instance


class ExecutionCancelled(StigmerError):
    """The execution was cancelled before it finished."""

    grpc_code = "CANCELLED"

    def __init__(self, execution: execution_pb2.Execution) -> None:
        super().__init__(f"{execution.kind} {execution.metadata.id} was cancelled")
        self.execution = execution


class ApprovalRequired(StigmerError):
    """The execution waits for a human decision: answer with ``approve()`` or ``reject()``."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, execution: execution_pb2.Execution) -> None:
        pending = execution.status.pending_approval
        what = pending.tool or "an action"
        super().__init__(
            f"{execution.kind} {execution.metadata.id} waits for approval of {what}: "
            "call approve() or reject(reason)"
        )
        self.execution = execution
        self.approval = pending


class ExecutionTimeout(StigmerError, TimeoutError):
    """``wait(timeout=...)`` ran out before the execution finished (it keeps running)."""

    grpc_code = "DEADLINE_EXCEEDED"
