"""The runs list (filters, pages) and a run's page (tasks, conversation, events) and actions."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from stigmer.core import Principal, again_request, is_terminal, lookup_kind, phase_name, phase_number
from stigmer.server.console import _views as views
from stigmer.server.console._gateway import CallError
from stigmer.server.console._sessions import Session
from stigmer.server.console._web import EVENTS_SHOWN, PAGE_SIZE, PHASES, Web

__all__ = ["run_action", "run_page", "runs"]


async def runs(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    q = request.query_params
    filters = {k: q.get(k, "").strip() for k in ("target", "phase", "label", "schedule", "after", "before")}
    req = svc.ListExecutionsRequest(page_size=PAGE_SIZE, page_token=q.get("page_token", ""))
    error = ""
    try:
        await _apply_filters(web, req, filters, principal)
    except ValueError as exc:
        error = str(exc)
    executions: Any = ()
    next_token = ""
    if not error:
        resp = await web.gateway.call(principal, "ListExecutions", req)
        executions = resp.executions
        next_token = resp.next_page_token
    context = {
        "rows_html": views.runs_rows_html(executions, web.root(request)),
        "filters": filters,
        "phases": PHASES,
        "error": error,
        "next_url": f"?{urlencode({**{k: v for k, v in filters.items() if v}, 'page_token': next_token})}"
        if next_token
        else "",
        "query": urlencode({k: v for k, v in filters.items() if v}),
    }
    return ("runs_table.html" if q.get("partial") else "runs.html"), context


async def _apply_filters(web: Web, req: Any, filters: dict[str, str], principal: Principal) -> None:
    from stigmer.proto.v1 import meta_pb2

    if filters["target"]:
        kind, sep, name = filters["target"].partition("/")
        if sep:
            found = lookup_kind(kind)
            if found not in ("Agent", "Workflow"):
                raise ValueError(f"target {filters['target']!r}: give agent/NAME, workflow/NAME or NAME")
            req.target.CopyFrom(meta_pb2.ResourceRef(kind=found, name=name.strip()))
        else:
            req.target.CopyFrom(await _resolve_target(web, filters["target"], principal))
    if filters["phase"]:
        try:
            req.phase = phase_number(filters["phase"].upper())
        except Exception:
            raise ValueError(f"unknown phase {filters['phase']!r}") from None
    selector = [filters["label"]] if filters["label"] else []
    if filters["schedule"]:
        selector.append(f"{views.SCHEDULE_LABEL}={filters['schedule']}")
    req.label_selector = ",".join(selector)
    for key, field in (("after", "created_after"), ("before", "created_before")):
        if filters[key]:
            try:
                when = datetime.fromisoformat(filters[key])
            except ValueError:
                raise ValueError(
                    f"{key}: {filters[key]!r} is not a date and time (YYYY-MM-DDTHH:MM)"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            getattr(req, field).FromDatetime(when)


async def _resolve_target(web: Web, name: str, principal: Principal) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2

    for kind in ("Agent", "Workflow"):
        ref = meta_pb2.ResourceRef(kind=kind, name=name)
        try:
            await web.gateway.call(principal, "Get", svc.GetRequest(ref=ref))
        except CallError as err:
            if err.code == "NOT_FOUND":
                continue
            raise
        return ref
    raise ValueError(f"no agent or workflow named {name!r}")


async def run_page(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    execution_id = request.path_params["id"]
    ex = await web.gateway.call(principal, "GetExecution", svc.GetExecutionRequest(id=execution_id))
    q = request.query_params
    if (
        q.get("partial")
        and q.get("seq") == str(ex.status.last_sequence)
        and q.get("phase") == phase_name(ex.status.phase)
    ):
        return Response(status_code=204, headers=web.headers())  # nothing new: the page stays as it is
    events = await _events(web, principal, ex)
    context = {
        "ex": ex,
        "row": views.run_row(ex),
        "tasks": views.task_rows_from_events(ex, events) or views.task_rows(ex),
        "events": events,
        "event_rows": [
            {
                "sequence": e.sequence,
                "time": views.fmt_time(views.ts(e.time)),
                "type": e.type,
                "subject": e.subject,
                "text": e.text,
                "data": views.json_text(e.data) if e.HasField("data") else "",
            }
            for e in events
        ],
        "conversation": views.conversation(events),
        "usage": views.usage_view(ex.status.usage),
        "input": views.json_text(ex.spec.input) if ex.spec.HasField("input") else "",
        "output": views.json_text(ex.status.output) if ex.status.HasField("output") else "",
        "approval": ex.status.pending_approval if ex.status.HasField("pending_approval") else None,
        "approval_args": views.json_text(ex.status.pending_approval.arguments),
        "started": views.fmt_time(views.ts(ex.status.started_at)),
        "finished": views.fmt_time(views.ts(ex.status.finished_at)),
        "terminal": is_terminal(ex.status.phase),
        "waiting": phase_name(ex.status.phase) == "WAITING_APPROVAL",
        "retryable": phase_name(ex.status.phase) in ("FAILED", "CANCELLED"),
        "message": request.query_params.get("message", ""),
    }
    return ("run_live.html" if request.query_params.get("partial") else "run.html"), context


async def _events(web: Web, principal: Principal, ex: Any) -> list[Any]:
    """The execution's latest events up to its current last sequence (without waiting for more)."""
    from stigmer.proto.v1 import backend_service_pb2 as svc

    last = ex.status.last_sequence
    if last <= 0:
        return []
    after = max(0, last - EVENTS_SHOWN)
    out: list[Any] = []
    stream = web.gateway.watch(
        principal, svc.WatchExecutionRequest(execution_id=ex.metadata.id, after_sequence=after)
    )
    try:
        async with asyncio.timeout(5):
            async for event in stream:
                out.append(event)
                if event.sequence >= last:
                    break
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]
    return out


async def run_action(web: Web, request: Request, principal: Principal, _session: Session) -> Response:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    execution_id, action = request.path_params["id"], request.path_params["action"]
    form = request.state.form
    target = execution_id
    if action == "cancel":
        await web.gateway.call(
            principal,
            "CancelExecution",
            svc.CancelExecutionRequest(id=execution_id, reason=str(form.get("reason", ""))[:4000]),
        )
    elif action in ("approve", "reject"):
        await web.gateway.call(
            principal,
            "SubmitApproval",
            svc.SubmitApprovalRequest(
                execution_id=execution_id,
                approval_id=str(form.get("approval_id", "")),
                approved=action == "approve",
                reason=str(form.get("reason", ""))[:4000],
            ),
        )
    elif action in ("rerun", "retry"):  # the store refuses a retry of a run that did not fail
        old = await web.gateway.call(principal, "GetExecution", svc.GetExecutionRequest(id=execution_id))
        request_ = again_request(old, "rerun_of" if action == "rerun" else "resumed_from")
        created = await web.gateway.call(principal, "CreateExecution", request_)
        target = created.metadata.id
    else:
        return PlainTextResponse(f"unknown action {action!r}\n", status_code=404, headers=web.headers())
    return RedirectResponse(f"{web.root(request)}/runs/{target}", status_code=303)
