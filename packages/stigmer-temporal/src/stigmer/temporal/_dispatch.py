"""Dispatching executions to Temporal: the server side of the full stack.

With Temporal configured (``--temporal HOST:PORT`` or ``STIGMER_TEMPORAL_ADDRESS``), the server
no longer runs executions itself: ``CreateExecution`` starts a Temporal workflow whose id is the
execution id, on ``stigmer-workflows`` or ``stigmer-agents``, where runner workers pick it up.
``CancelExecution`` cancels that workflow; an approval (``SubmitApproval``) and the events
clients append for ``listen`` tasks become signals. Progress comes back from the workers'
activities through ``UpdateExecutionStatus``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from typing import Any, cast

from stigmer.core import TERMINAL_PHASES, Backend, Limits, StigmerError
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.temporal._connection import TemporalConnection
from stigmer.temporal._visibility import registered_search_attributes, run_memo, run_search_attributes

__all__ = [
    "AGENT_QUEUE",
    "AGENT_WORKFLOW",
    "APPROVAL_SIGNAL",
    "EVENT_SIGNAL",
    "WORKFLOW_QUEUE",
    "WORKFLOW_WORKFLOW",
    "TemporalDispatcher",
    "temporal_dispatch",
]

logger = logging.getLogger("stigmer.server")

WORKFLOW_QUEUE = "stigmer-workflows"
AGENT_QUEUE = "stigmer-agents"
WORKFLOW_WORKFLOW = "stigmer.workflow"
AGENT_WORKFLOW = "stigmer.agent"
EVENT_SIGNAL = "stigmer.event"
APPROVAL_SIGNAL = "stigmer.approval"
#: Workflow documents kept by (target id, version), for the starts of their runs: a stored
#: version never changes, so its document is read and converted once.
DOCUMENTS = 64


class TemporalDispatcher:
    """Starts, signals and cancels the Temporal workflows of executions.

    ``address`` is a ``host:port`` (plain gRPC) or a :class:`TemporalConnection` (namespace, TLS,
    API key); ``namespace``, when given, overrides the connection's.
    """

    def __init__(
        self,
        backend: Backend,
        address: str | TemporalConnection,
        *,
        namespace: str | None = None,
        workflow_queue: str = WORKFLOW_QUEUE,
        agent_queue: str = AGENT_QUEUE,
        limits: Limits | None = None,
    ) -> None:
        connection = address if isinstance(address, TemporalConnection) else TemporalConnection(address)
        if namespace is not None:
            connection = dataclasses.replace(connection, namespace=namespace)
        self._backend = backend
        self.connection = connection
        self.address = connection.address
        self.namespace = connection.namespace
        self.queues = {"WorkflowExecution": workflow_queue, "AgentExecution": agent_queue}
        self._client: Any = None
        self._connecting: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._attributes: bool | None = None  # whether the namespace has Stigmer's search attributes
        #: The limits of the workflow runs started here: this process's settings (see run_workflow).
        self.limits = limits if limits is not None else Limits.load()
        self._documents: OrderedDict[tuple[str, int], Any] = OrderedDict()
        #: :class:`TemporalSchedules` when Temporal fires the Stigmer Schedules (set by the server)
        self.schedules: Any = None

    def schedules_changed(self) -> None:
        """A Schedule or a Workflow changed: bring the Temporal Schedules in step."""
        if self.schedules is not None:
            self.schedules.changed()

    async def client(self) -> Any:
        """The Temporal client (connected on first use)."""
        if self._client is None:
            if self._connecting is None:
                self._connecting = asyncio.Lock()
            async with self._connecting:
                if self._client is None:
                    self._client = await self.connection.connect()
        return self._client

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- ExecutionDispatcher ---------------------------------------------------------------------

    def start(self, execution: execution_pb2.Execution) -> None:
        """A new execution starts its workflow; a running one (approval answered) gets a signal."""
        if execution.status.phase == execution_pb2.PHASE_PENDING:
            self._spawn(self._start(execution), f"stigmer-temporal-start-{execution.metadata.id}")
        else:
            self._spawn(
                self._signal(execution.metadata.id, APPROVAL_SIGNAL, {"phase": int(execution.status.phase)}),
                f"stigmer-temporal-approval-{execution.metadata.id}",
            )

    async def run_workflow(self, execution: execution_pb2.Execution) -> dict[str, Any]:
        """How an execution's Temporal workflow is started, as plain data (for a workflow that
        starts it as its child: ``stigmer.schedule.fire``): ``workflow`` (type), ``args``,
        ``id`` (the execution id), ``queue``, ``memo`` and ``attributes`` (whether the namespace
        has the search attributes ``StigmerKind`` / ``StigmerName``).

        A workflow run's ``args`` carry what the worker would otherwise read back: the pinned
        document, the input (and a retry's checkpoint), and the run's ``limits`` — the settings of
        this process, kept in the run's history so that a replay uses the same ones."""
        kind = execution.kind or "WorkflowExecution"
        name = WORKFLOW_WORKFLOW if kind == "WorkflowExecution" else AGENT_WORKFLOW
        target = execution.spec.target
        args: dict[str, Any] = {"executionId": execution.metadata.id}
        if name == WORKFLOW_WORKFLOW:  # where its `call: agent` children run
            args["agentQueue"] = self.queues["AgentExecution"]
            args.update(await self._definition(execution))
            args["limits"] = self.limits.to_dict()
        if self._attributes is None:
            self._attributes = await registered_search_attributes(await self.client(), self.namespace)
        return {
            "workflow": name,
            "args": args,
            "id": execution.metadata.id,
            "queue": self.queues.get(kind, WORKFLOW_QUEUE),
            "memo": run_memo(target.kind, target.name or target.id),
            "attributes": bool(self._attributes),
        }

    async def _start(self, execution: execution_pb2.Execution) -> None:
        from stigmer.core import execution_attributes, start_span
        from temporalio.common import WorkflowIDConflictPolicy

        execution_id = execution.metadata.id
        kind = execution.kind or "WorkflowExecution"
        target = execution.spec.target
        try:
            client = await self.client()
            run = await self.run_workflow(execution)
            # The execution's span (when traces are on): Temporal's interceptor makes the workflow's
            # spans, on the workers, its children.
            attributes = execution_attributes(execution)
            with start_span(f"{kind} {attributes['stigmer.target.name']}", attributes):
                await client.start_workflow(
                    run["workflow"],
                    run["args"],
                    id=execution_id,
                    task_queue=run["queue"],
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    memo=run["memo"],
                    search_attributes=await self._search_attributes(
                        client, target.kind, target.name or target.id
                    ),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("cannot start execution %s on Temporal at %s: %s", execution_id, self.address, exc)
            await self._fail(
                execution_id, f"could not start it on Temporal at {self.address}: {type(exc).__name__}"
            )

    async def _definition(self, execution: execution_pb2.Execution) -> dict[str, Any]:
        """The pinned workflow document, the input and a retry's checkpoint, sent with the start so
        the worker need not read them back (they are in Temporal's history either way)."""
        import json

        from stigmer.core import from_value, pinned_target

        key = (execution.spec.target.id, execution.spec.target_version)
        document = self._documents.get(key) if all(key) else None
        if document is None:
            document = from_value((await pinned_target(self._backend, execution)).workflow.spec)
            if all(key):
                self._documents[key] = document
                while len(self._documents) > DOCUMENTS:
                    self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(key)
        args: dict[str, Any] = {
            "document": document,
            "input": from_value(execution.spec.input) if execution.spec.HasField("input") else {},
        }
        if execution.spec.resumed_from and execution.status.checkpoint:
            args["checkpoint"] = json.loads(execution.status.checkpoint)
        return args

    async def _search_attributes(self, client: Any, kind: str, name: str) -> Any:
        """``StigmerKind`` / ``StigmerName`` when the namespace has them (the local stack
        registers them; elsewhere :func:`register_search_attributes` or an operator does)."""
        from temporalio.common import TypedSearchAttributes

        if self._attributes is None:
            self._attributes = await registered_search_attributes(client, self.namespace)
        if not self._attributes:
            return TypedSearchAttributes.empty
        return run_search_attributes(kind, name)

    async def _signal(self, execution_id: str, signal: str, payload: Any) -> None:
        try:
            client = await self.client()
            await client.get_workflow_handle(execution_id).signal(signal, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("cannot signal %s to execution %s: %s", signal, execution_id, exc)

    async def cancel(self, execution_id: str) -> None:
        try:
            client = await self.client()
            await client.get_workflow_handle(execution_id).cancel()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("cancelling the Temporal workflow of %s: %s", execution_id, exc)

    async def _fail(self, execution_id: str, detail: str) -> None:
        try:
            await self._backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(
                    execution_id=execution_id,
                    phase=execution_pb2.PHASE_FAILED,
                    error=execution_pb2.ExecutionError(
                        type="https://stigmer.ai/errors/runner",
                        title="dispatch failed",
                        status=503,
                        detail=detail,
                    ),
                    runner="stigmer-server",
                )
            )
        except StigmerError as err:
            logger.warning("could not mark execution %s failed: %s", execution_id, err)

    async def shutdown(self, grace: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)


class _SignallingBackend:
    """The served Backend, with cancellations and client-sent events forwarded to Temporal."""

    def __init__(self, inner: Backend, dispatcher: TemporalDispatcher) -> None:
        self._inner = inner
        self._dispatcher = dispatcher

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def apply(self, request: svc.ApplyRequest) -> svc.ApplyResponse:
        response = await self._inner.apply(request)
        if not request.dry_run and response.resource.WhichOneof("kind") in ("schedule", "workflow"):
            self._dispatcher.schedules_changed()  # a workflow may own a schedule
        return response

    async def delete(self, request: svc.DeleteRequest) -> Any:
        deleted = await self._inner.delete(request)
        if deleted.WhichOneof("kind") in ("schedule", "workflow"):
            self._dispatcher.schedules_changed()
        return deleted

    async def create_execution(self, request: svc.CreateExecutionRequest) -> execution_pb2.Execution:
        return await self._inner.create_execution(request)

    async def publish_event(self, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
        from stigmer.core import event_from_proto

        response = await self._inner.publish_event(request)
        if response.delivered:  # a listen on Temporal hears its events as signals
            event = event_from_proto(request.event)
            for execution_id in response.delivered:
                await self._dispatcher._signal(execution_id, EVENT_SIGNAL, event)
        return response

    async def cancel_execution(self, request: svc.CancelExecutionRequest) -> execution_pb2.Execution:
        execution = await self._inner.cancel_execution(request)
        await self._dispatcher.cancel(execution.metadata.id)
        return execution

    async def update_execution_status(
        self, request: svc.UpdateExecutionStatusRequest
    ) -> execution_pb2.Execution:
        execution = await self._inner.update_execution_status(request)
        if not request.runner and request.events and execution.status.phase not in TERMINAL_PHASES:
            # Events a client sends (`stigmer execution send-event`) feed `listen` tasks.
            from google.protobuf import json_format

            for event in request.events:
                cloud_event: dict[str, Any] = {
                    "specversion": "1.0",
                    "id": event.event_id
                    or f"{request.execution_id}-{event.sequence or execution.status.last_sequence}",
                    "source": event.source or "stigmer",
                    "type": event.type,
                    "subject": event.subject,
                }
                if event.HasField("data"):
                    cloud_event["data"] = json_format.MessageToDict(event.data)
                elif event.text:
                    cloud_event["data"] = event.text
                await self._dispatcher._signal(request.execution_id, EVENT_SIGNAL, cloud_event)
        return execution


def temporal_dispatch(
    backend: Backend, address: str | TemporalConnection, *, namespace: str | None = None
) -> tuple[Backend, TemporalDispatcher]:
    """The backend to serve and the dispatcher to use when the server runs on Temporal."""
    dispatcher = TemporalDispatcher(backend, address, namespace=namespace)
    return cast(Backend, _SignallingBackend(backend, dispatcher)), dispatcher
