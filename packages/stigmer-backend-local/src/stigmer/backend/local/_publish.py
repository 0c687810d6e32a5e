"""``PublishEvent`` on the embedded store: an event reaches the waiting executions whose workflow
documents ``listen`` for one like it (appended to their event log as an event from outside, which
their runner's ``listen`` reads), and each workflow whose ``schedule.on`` matches it gets a new
execution whose input is the event's envelope (labelled ``stigmer.ai/event-type``). The caller
starts those runs: the server hands them to its dispatcher, Lite runs them in the foreground."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from stigmer.core import (
    EVENT_LABEL,
    InvalidArgument,
    event_from_proto,
    filter_may_match,
    listen_filters,
    schedule_on_filters,
    to_value,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2

if TYPE_CHECKING:
    from stigmer.backend.local._backend import LocalBackend

__all__ = ["MAX_TYPE_LENGTH", "external_event", "publish"]

MAX_TYPE_LENGTH = 64  # the event log's type column
_WAITING = (ex.PHASE_PENDING, ex.PHASE_RUNNING)


def external_event(event: Mapping[str, Any]) -> ex.ExecutionEvent:
    """The execution event that carries a CloudEvent into a run's log (``source`` set: from outside)."""
    out = ex.ExecutionEvent(
        type=event["type"],
        subject=str(event.get("subject", "")),
        source=event["source"],
        event_id=event["id"],
    )
    if event.get("data") is not None:
        out.data.CopyFrom(to_value(event["data"]))
    return out


async def publish(backend: LocalBackend, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
    from stigmer.backend.local.tables import _resources as res

    event = event_from_proto(request.event)
    if len(event["type"]) > MAX_TYPE_LENGTH:
        raise InvalidArgument(f"the event type is longer than {MAX_TYPE_LENGTH} characters", ["type"])
    response = svc.PublishEventResponse()
    documents: dict[tuple[str, int], Any] = {}

    async def document(target: meta_pb2.ResourceRef, version: int) -> Any:
        key = (target.id, version)
        if key not in documents:
            documents[key] = await backend._read(lambda c: res.version_body(c, target.id, version))
        body = documents[key]
        return body.get("spec", {}) if isinstance(body, dict) else {}

    # 1. the waiting runs that listen for it
    for phase in _WAITING:
        token = ""
        while True:
            page = await backend.list_executions(
                svc.ListExecutionsRequest(
                    kind="WorkflowExecution", phase=phase, page_size=500, page_token=token
                )
            )
            for execution in page.executions:
                spec = await document(execution.spec.target, execution.spec.target_version)
                if any(filter_may_match(f, event) for f in listen_filters(spec)):
                    delivered = external_event(event)
                    delivered.execution_id = execution.metadata.id
                    await backend.update_execution_status(
                        svc.UpdateExecutionStatusRequest(
                            execution_id=execution.metadata.id, events=[delivered]
                        )
                    )
                    response.delivered.append(execution.metadata.id)
            token = page.next_page_token
            if not token:
                break

    # 2. the workflows it starts (`schedule.on`)
    token = ""
    while True:
        listed = await backend.list(svc.ListRequest(kind="Workflow", page_size=500, page_token=token))
        for resource in listed.resources:
            workflow = resource.workflow
            try:
                filters = schedule_on_filters(json_format.MessageToDict(workflow.spec))
            except InvalidArgument:
                continue  # refused at apply; an older stored version is left alone
            if any(filter_may_match(f, event) for f in filters):
                run = ex.ExecutionSpec(
                    target=meta_pb2.ResourceRef(kind="Workflow", name=workflow.metadata.name)
                )
                run.input.CopyFrom(to_value(event))
                started = await backend.create_execution(
                    svc.CreateExecutionRequest(spec=run, labels={EVENT_LABEL: event["type"]})
                )
                response.started.append(started)
        token = listed.next_page_token
        if not token:
            break
    return response
