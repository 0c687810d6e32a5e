"""Publishing CloudEvents (``PublishEvent``): what ``stigmer event send`` and ``POST /events`` do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stigmer.core import InvalidArgument

if TYPE_CHECKING:
    from stigmer.sdk._client import AsyncStigmer
    from stigmer.sdk._execution import AsyncExecution

__all__ = ["Published", "publish"]


@dataclass(frozen=True)
class Published:
    """Where an event went: the waiting executions it was delivered to and the runs it started
    (``schedule.on``); in a local context those runs execute in this process."""

    id: str
    delivered: tuple[str, ...] = ()
    started: tuple[AsyncExecution, ...] = field(default=())


async def publish(
    client: AsyncStigmer,
    type: str,
    source: str,
    data: Any = None,
    *,
    subject: str = "",
    id: str = "",
    time: datetime | None = None,
) -> Published:
    from stigmer.core import event_to_proto
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.sdk._schedules import _handle

    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
    }
    if subject:
        event["subject"] = subject
    if time is not None:
        if time.tzinfo is None:
            raise InvalidArgument("time needs a time zone", ["time"])
        event["time"] = time.isoformat()
    if data is not None:
        event["data"] = data
    response = await client.backend.publish_event(svc.PublishEventRequest(event=event_to_proto(event)))
    started = tuple(_handle(client, execution, start=True) for execution in response.started)
    return Published(event["id"], tuple(response.delivered), started)
