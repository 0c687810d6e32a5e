"""The Schedule a Workflow's own ``schedule`` makes (Serverless Workflow ``schedule.every``,
``schedule.cron`` or ``schedule.after``): named like the workflow, annotated ``stigmer.ai/owner: Workflow/NAME``,
created, updated and deleted with the workflow. A Schedule of that name that the workflow does not
own is never touched: the apply is refused instead."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from stigmer.backend.local._db import Conn
from stigmer.core import FailedPrecondition, InvalidArgument, Principal
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import meta_pb2, resource_pb2
from stigmer.proto.v1.schedule_pb2 import Schedule

__all__ = ["OWNER_ANNOTATION", "delete_owned_schedule", "sync_owned_schedule"]

OWNER_ANNOTATION = "stigmer.ai/owner"
_UNITS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "milliseconds": 0.001}


def _duration(value: Any, where: str) -> str:
    """A DSL duration (``{minutes: 5}`` or ISO 8601 ``PT5M``) as a Schedule's ``every``."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict) and value and set(value) <= set(_UNITS):
        seconds = sum(float(v) * _UNITS[k] for k, v in value.items())
        if seconds >= 1:
            return f"{seconds:g}s"
    raise InvalidArgument(f"{where}: give a duration like {{minutes: 5}} or PT5M", [where])


def _owned(conn: Conn, name: str) -> Any:
    from stigmer.backend.local.tables import _resources as res

    return res.find(conn, meta_pb2.ResourceRef(kind="Schedule", name=name))


def _owner_of(row: Any) -> str:
    return str(json.loads(row.annotations).get(OWNER_ANNOTATION, ""))


def sync_owned_schedule(
    conn: Conn, workflow: Any, principal: Principal | None, *, dry_run: bool = False
) -> None:
    from stigmer.backend.local.tables import _resources as res

    name = workflow.metadata.name
    owner = f"Workflow/{name}"
    document = json_format.MessageToDict(workflow.spec)
    schedule = document.get("schedule") if isinstance(document.get("schedule"), dict) else {}
    assert isinstance(schedule, dict)
    row = _owned(conn, name)
    if row is not None and _owner_of(row) != owner:
        if schedule.get("every") or schedule.get("cron") or schedule.get("after"):
            raise FailedPrecondition(
                f"workflow {name!r} has a schedule, but a Schedule {name!r} it does not own exists; "
                "rename or delete that Schedule"
            )
        return
    if not (schedule.get("every") or schedule.get("cron") or schedule.get("after")):
        if row is not None and not dry_run:
            delete_owned_schedule(conn, name)
        return
    made = Schedule(api_version="stigmer.ai/v1", kind="Schedule")
    made.metadata.name = name
    made.metadata.annotations[OWNER_ANNOTATION] = owner
    if schedule.get("cron"):
        made.spec.cron = str(schedule["cron"])
    elif schedule.get("every"):
        made.spec.every = _duration(schedule["every"], "spec.schedule.every")
    else:
        made.spec.after = _duration(schedule["after"], "spec.schedule.after")
    made.spec.target.CopyFrom(meta_pb2.ResourceRef(kind="Workflow", name=name))
    made.spec.overlap = "skip"
    if dry_run:  # the workflow may not be stored yet: check the schedule alone
        from stigmer.core import Timetable

        Timetable.of(made.spec)
        return
    res.apply(conn, svc.ApplyRequest(resource=resource_pb2.Resource(schedule=made)), principal)


def delete_owned_schedule(conn: Conn, name: str) -> None:
    """Delete the Schedule the workflow ``name`` owns, if there is one."""
    from stigmer.backend.local.tables import _resources as res

    row = _owned(conn, name)
    if row is not None and _owner_of(row) == f"Workflow/{name}":
        res.delete_resource(conn, svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="Schedule", id=row.id)))
