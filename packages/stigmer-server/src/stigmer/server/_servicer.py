"""The grpc.aio servicer of ``stigmer.v1.BackendService`` over any :class:`stigmer.core.Backend`.

Every ``StigmerError`` becomes its gRPC status code (``err.grpc_code``) with its message (and,
for ``InvalidArgument``, the field paths in the ``stigmer-field-paths-bin`` trailer); anything
else becomes INTERNAL with a generic message, the details going to the server log only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from stigmer.core import Backend, InvalidArgument, StigmerError
from stigmer.proto.v1 import (
    artifact_pb2,
    execution_pb2,
    memory_pb2,
    resource_pb2,
    secret_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)
from stigmer.proto.v1 import (
    backend_service_pb2_grpc as svc_grpc,
)
from stigmer.server._dispatch import ExecutionDispatcher, NoDispatcher

__all__ = ["FIELD_PATHS_TRAILER", "BackendServicer"]

logger = logging.getLogger("stigmer.server")

FIELD_PATHS_TRAILER = "stigmer-field-paths-bin"
_INTERNAL = "internal server error; the server log has the details"
_WATCH_BUFFER = 256
_END = object()
_STOP = object()


def _shutting_down(last: int) -> str:
    return f"server is shutting down; watch again from sequence {last} to resume"


Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def abort_with(context: Any, err: StigmerError) -> None:
    """End the RPC with the status matching ``err``."""
    code = getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.UNKNOWN)
    if isinstance(err, InvalidArgument) and err.field_paths:
        context.set_trailing_metadata(
            ((FIELD_PATHS_TRAILER, json.dumps(list(err.field_paths)).encode("utf-8")),)
        )
    await context.abort(code, err.message or type(err).__name__)


class BackendServicer(svc_grpc.BackendServiceServicer):
    """Serves one Backend object; executions it creates are handed to ``dispatcher``."""

    def __init__(self, backend: Backend, dispatcher: ExecutionDispatcher | None = None) -> None:
        self._backend = backend
        self._dispatcher: ExecutionDispatcher = dispatcher or NoDispatcher()
        self._stopping = asyncio.Event()
        self._watch_queues: set[asyncio.Queue[Any]] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def dispatcher(self) -> ExecutionDispatcher:
        return self._dispatcher

    def begin_shutdown(self) -> None:
        """End open watch streams with UNAVAILABLE so clients reconnect elsewhere or later."""
        self._stopping.set()
        for queue in list(self._watch_queues):
            if not queue.full():  # a full queue wakes its watcher anyway, which sees _stopping
                queue.put_nowait(_STOP)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for the readers of ended watch streams to let go of the backend."""
        pumps = list(self._pumps)
        for pump in pumps:
            pump.cancel()
        if pumps:
            await asyncio.wait(pumps, timeout=timeout)

    async def _call(
        self, name: str, fn: Callable[[Req], Awaitable[Resp]], request: Req, context: Any
    ) -> Resp:
        try:
            return await fn(request)
        except StigmerError as err:
            await abort_with(context, err)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("unexpected error in %s", name)
            await context.abort(grpc.StatusCode.INTERNAL, _INTERNAL)
        raise AssertionError("unreachable")  # context.abort always raises

    # -- resources ------------------------------------------------------------------------------

    async def Apply(self, request: svc.ApplyRequest, context: Any) -> svc.ApplyResponse:
        return await self._call("Apply", self._backend.apply, request, context)

    async def Get(self, request: svc.GetRequest, context: Any) -> resource_pb2.Resource:
        return await self._call("Get", self._backend.get, request, context)

    async def List(self, request: svc.ListRequest, context: Any) -> svc.ListResponse:
        return await self._call("List", self._backend.list, request, context)

    async def Delete(self, request: svc.DeleteRequest, context: Any) -> resource_pb2.Resource:
        return await self._call("Delete", self._backend.delete, request, context)

    async def ListVersions(self, request: svc.ListVersionsRequest, context: Any) -> svc.ListVersionsResponse:
        return await self._call("ListVersions", self._backend.list_versions, request, context)

    # -- executions -----------------------------------------------------------------------------

    async def CreateExecution(
        self, request: svc.CreateExecutionRequest, context: Any
    ) -> execution_pb2.Execution:
        execution = await self._call("CreateExecution", self._backend.create_execution, request, context)
        if not request.dispatch_by_caller:  # else the caller starts it (a Temporal child workflow)
            self._dispatcher.start(execution)
        return execution

    async def GetExecution(self, request: svc.GetExecutionRequest, context: Any) -> execution_pb2.Execution:
        return await self._call("GetExecution", self._backend.get_execution, request, context)

    async def ListExecutions(
        self, request: svc.ListExecutionsRequest, context: Any
    ) -> svc.ListExecutionsResponse:
        return await self._call("ListExecutions", self._backend.list_executions, request, context)

    async def UpdateExecutionStatus(
        self, request: svc.UpdateExecutionStatusRequest, context: Any
    ) -> execution_pb2.Execution:
        return await self._call(
            "UpdateExecutionStatus", self._backend.update_execution_status, request, context
        )

    async def CancelExecution(
        self, request: svc.CancelExecutionRequest, context: Any
    ) -> execution_pb2.Execution:
        return await self._call("CancelExecution", self._backend.cancel_execution, request, context)

    async def SubmitApproval(
        self, request: svc.SubmitApprovalRequest, context: Any
    ) -> execution_pb2.Execution:
        execution = await self._call("SubmitApproval", self._backend.submit_approval, request, context)
        if execution.status.phase in (execution_pb2.PHASE_RUNNING, execution_pb2.PHASE_PENDING):
            self._dispatcher.start(execution)  # resume the paused run
        return execution

    async def PublishEvent(self, request: svc.PublishEventRequest, context: Any) -> svc.PublishEventResponse:
        response = await self._call("PublishEvent", self._backend.publish_event, request, context)
        for execution in response.started:  # `schedule.on` runs start like CreateExecution's
            self._dispatcher.start(execution)
        return response

    async def GetExecutionContext(
        self, request: svc.GetExecutionContextRequest, context: Any
    ) -> svc.ExecutionContext:
        return await self._call("GetExecutionContext", self._backend.get_execution_context, request, context)

    async def WatchExecution(
        self, request: svc.WatchExecutionRequest, context: Any
    ) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        last = request.after_sequence
        if self._stopping.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, _shutting_down(last))
        # A pump task reads the backend's stream into a bounded queue; shutting down drops a
        # marker into every queue, so an idle watcher ends at once with UNAVAILABLE.
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_WATCH_BUFFER)
        self._watch_queues.add(queue)
        pump = asyncio.create_task(self._pump(request, queue))
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)
        try:
            while True:
                item = await queue.get()
                if item is _STOP or self._stopping.is_set():
                    await context.abort(grpc.StatusCode.UNAVAILABLE, _shutting_down(last))
                if item is _END:
                    return
                if isinstance(item, StigmerError):
                    await abort_with(context, item)
                if isinstance(item, BaseException):
                    logger.error("unexpected error in WatchExecution", exc_info=item)
                    await context.abort(grpc.StatusCode.INTERNAL, _INTERNAL)
                last = max(last, item.sequence)
                yield item
        finally:
            # No await here: the RPC may already be over, and the server may be stopping.
            self._watch_queues.discard(queue)
            pump.cancel()

    async def _pump(self, request: svc.WatchExecutionRequest, queue: asyncio.Queue[Any]) -> None:
        events: Any = None
        try:
            events = self._backend.watch_execution(request)
            async for event in events:
                await queue.put(event)
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.debug("closing a watch iterator failed", exc_info=True)

    # -- secrets and artifacts ------------------------------------------------------------------

    async def SetSecret(self, request: svc.SetSecretRequest, context: Any) -> secret_pb2.SecretMetadata:
        return await self._call("SetSecret", self._backend.set_secret, request, context)

    async def DeleteSecret(self, request: svc.DeleteSecretRequest, context: Any) -> secret_pb2.SecretMetadata:
        return await self._call("DeleteSecret", self._backend.delete_secret, request, context)

    async def ListSecrets(self, request: svc.ListSecretsRequest, context: Any) -> svc.ListSecretsResponse:
        return await self._call("ListSecrets", self._backend.list_secrets, request, context)

    async def GrantSecret(self, request: svc.GrantSecretRequest, context: Any) -> secret_pb2.SecretMetadata:
        return await self._call("GrantSecret", self._backend.grant_secret, request, context)

    async def RevokeSecret(self, request: svc.RevokeSecretRequest, context: Any) -> secret_pb2.SecretMetadata:
        return await self._call("RevokeSecret", self._backend.revoke_secret, request, context)

    async def PutArtifact(
        self, request: svc.PutArtifactRequest, context: Any
    ) -> artifact_pb2.ArtifactMetadata:
        return await self._call("PutArtifact", self._backend.put_artifact, request, context)

    async def GetArtifact(self, request: svc.GetArtifactRequest, context: Any) -> svc.GetArtifactResponse:
        return await self._call("GetArtifact", self._backend.get_artifact, request, context)

    # -- memories -------------------------------------------------------------------------------

    async def CreateMemory(self, request: svc.CreateMemoryRequest, context: Any) -> memory_pb2.Memory:
        return await self._call("CreateMemory", self._backend.create_memory, request, context)

    async def ListMemories(self, request: svc.ListMemoriesRequest, context: Any) -> svc.ListMemoriesResponse:
        return await self._call("ListMemories", self._backend.list_memories, request, context)

    async def GetMemory(self, request: svc.GetMemoryRequest, context: Any) -> memory_pb2.Memory:
        return await self._call("GetMemory", self._backend.get_memory, request, context)

    async def DeleteMemory(self, request: svc.DeleteMemoryRequest, context: Any) -> memory_pb2.Memory:
        return await self._call("DeleteMemory", self._backend.delete_memory, request, context)
