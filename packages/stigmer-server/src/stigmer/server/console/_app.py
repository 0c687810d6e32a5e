"""The console's routes: a Starlette app the server mounts on its HTTP listener (``/console``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from stigmer.core import (
    Principal,
    dump_manifests,
    is_terminal,
    kind_info,
    lookup_kind,
    phase_name,
    phase_number,
    unwrap,
)
from stigmer.server.console import _views as views
from stigmer.server.console._gateway import CallError, Gateway
from stigmer.server.console._sessions import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, Session, Sessions

__all__ = ["DEFINITION_KINDS", "PAGE_SIZE", "console_app"]

HERE = Path(__file__).parent
PAGE_SIZE = 50  # runs per page: the list stays fast however many runs are stored
EVENTS_SHOWN = 500  # the latest events a run page shows
DEFINITION_KINDS = ("Agent", "Workflow", "Skill", "McpServer", "Environment", "Schedule")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PHASES = ("PENDING", "RUNNING", "WAITING_APPROVAL", "SUCCEEDED", "FAILED", "CANCELLED")

Handler = Callable[[Any, Principal, Session], Awaitable[Any]]


def console_app(gateway: Gateway, *, secure: bool = False, one_time: tuple[str, str] | None = None) -> Any:
    """The console as an ASGI app. ``secure``: cookies get the Secure flag (the listener uses TLS).
    ``one_time``: ``(code, token)``, a login link usable once (``stigmer console`` in Lite)."""
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the package: no stat() per page
        cache_size=-1,
    )
    sessions = Sessions(one_time)

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def headers() -> dict[str, str]:
        return {
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }

    def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("principal", None)
        context.setdefault("csrf", "")
        body = env.get_template(template).render(base=root(request), request=request, **context)
        return HTMLResponse(body, status_code=status, headers=headers())

    def set_cookie(response: Response, name: str, value: str, max_age: int, request: Request) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=root(request) + "/" if root(request) else "/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{root(request)}/login?{urlencode({'next': target})}", status_code=303)

    def page(handler: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = sessions.get(request.cookies.get(COOKIE))
            principal = await gateway.authenticate(session.token) if session is not None else None
            if session is None or principal is None:
                if session is not None:
                    sessions.close(session.id)
                if post or request.query_params.get("partial"):
                    return PlainTextResponse("not logged in\n", status_code=401, headers=headers())
                return to_login(request)
            if post:
                form = await request.form()
                if not session.csrf_ok(str(form.get("csrf", ""))):
                    return PlainTextResponse(
                        "refused: the form's CSRF token is missing or wrong; reload the page\n",
                        status_code=403,
                        headers=headers(),
                    )
                request.state.form = form
            try:
                result = await handler(request, principal, session)
            except CallError as err:
                return render(
                    request,
                    "error.html",
                    status=_http_status(err.code),
                    principal=principal,
                    csrf=session.csrf,
                    code=err.code,
                    message=err.message,
                )
            if isinstance(result, Response):
                return result
            template, context = result
            return render(request, template, principal=principal, csrf=session.csrf, **context)

        return endpoint

    # -- login ------------------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        code = request.query_params.get("code", "")
        if code:
            token = sessions.redeem(code)
            if token is not None and await gateway.authenticate(token) is not None:
                return _logged_in(request, token, "/runs")
            return render(
                request,
                "login.html",
                status=401,
                error="this login link was used already or is wrong; paste a token",
                login_csrf="",
            )
        login_csrf = secrets.token_urlsafe(24)
        response = render(
            request, "login.html", login_csrf=login_csrf, next=request.query_params.get("next", "")
        )
        set_cookie(response, LOGIN_COOKIE, login_csrf, 3600, request)
        return response

    async def login_submit(request: Request) -> Response:
        form = await request.form()
        sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            return PlainTextResponse(
                "refused: the login form's CSRF token is missing or wrong; reload the page\n",
                status_code=403,
                headers=headers(),
            )
        token = str(form.get("token", "")).strip()
        principal = await gateway.authenticate(token)
        if principal is None:
            login_csrf = secrets.token_urlsafe(24)
            response = render(
                request, "login.html", status=401, error="invalid or revoked token", login_csrf=login_csrf
            )
            set_cookie(response, LOGIN_COOKIE, login_csrf, 3600, request)
            return response
        nxt = str(form.get("next", ""))
        return _logged_in(request, token, nxt)

    def _logged_in(request: Request, token: str, nxt: str) -> Response:
        session = sessions.open(token)
        base = root(request)
        # only a path inside the console: never an open redirect
        parts = nxt.split("?", 1)[0].split("/")
        if not nxt.startswith(base + "/") or nxt.startswith("//") or "\\" in nxt or ".." in parts:
            nxt = base + "/runs"
        response = RedirectResponse(nxt, status_code=303)
        set_cookie(response, COOKIE, session.id, SESSION_SECONDS, request)
        set_cookie(response, LOGIN_COOKIE, "", 0, request)
        return response

    async def logout(request: Request, _principal: Principal, session: Session) -> Response:
        sessions.close(session.id)
        response = RedirectResponse(f"{root(request)}/login", status_code=303)
        set_cookie(response, COOKIE, "", 0, request)
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{root(request)}/runs", status_code=303)

    # -- runs -------------------------------------------------------------------------------------

    async def runs(request: Request, principal: Principal, _session: Session) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        q = request.query_params
        filters = {
            k: q.get(k, "").strip() for k in ("target", "phase", "label", "schedule", "after", "before")
        }
        req = svc.ListExecutionsRequest(page_size=PAGE_SIZE, page_token=q.get("page_token", ""))
        error = ""
        try:
            await _apply_filters(req, filters, principal)
        except ValueError as exc:
            error = str(exc)
        rows: list[Any] = []
        next_token = ""
        if not error:
            resp = await gateway.call(principal, "ListExecutions", req)
            rows = [views.run_row(ex) for ex in resp.executions]
            next_token = resp.next_page_token
        context = {
            "rows": rows,
            "filters": filters,
            "phases": _PHASES,
            "error": error,
            "next_url": f"?{urlencode({**{k: v for k, v in filters.items() if v}, 'page_token': next_token})}"
            if next_token
            else "",
            "query": urlencode({k: v for k, v in filters.items() if v}),
        }
        return ("runs_table.html" if q.get("partial") else "runs.html"), context

    async def _apply_filters(req: Any, filters: dict[str, str], principal: Principal) -> None:
        from stigmer.proto.v1 import meta_pb2

        if filters["target"]:
            kind, sep, name = filters["target"].partition("/")
            if sep:
                found = lookup_kind(kind)
                if found not in ("Agent", "Workflow"):
                    raise ValueError(f"target {filters['target']!r}: give agent/NAME, workflow/NAME or NAME")
                req.target.CopyFrom(meta_pb2.ResourceRef(kind=found, name=name.strip()))
            else:
                req.target.CopyFrom(await _resolve_target(filters["target"], principal))
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

    async def _resolve_target(name: str, principal: Principal) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2

        for kind in ("Agent", "Workflow"):
            ref = meta_pb2.ResourceRef(kind=kind, name=name)
            try:
                await gateway.call(principal, "Get", svc.GetRequest(ref=ref))
            except CallError as err:
                if err.code == "NOT_FOUND":
                    continue
                raise
            return ref
        raise ValueError(f"no agent or workflow named {name!r}")

    async def run_page(request: Request, principal: Principal, _session: Session) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        execution_id = request.path_params["id"]
        ex = await gateway.call(principal, "GetExecution", svc.GetExecutionRequest(id=execution_id))
        q = request.query_params
        if (
            q.get("partial")
            and q.get("seq") == str(ex.status.last_sequence)
            and q.get("phase") == phase_name(ex.status.phase)
        ):
            return Response(status_code=204, headers=headers())  # nothing new: the page stays as it is
        events = await _events(principal, ex)
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

    async def _events(principal: Principal, ex: Any) -> list[Any]:
        """The execution's latest events up to its current last sequence (without waiting for more)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        last = ex.status.last_sequence
        if last <= 0:
            return []
        after = max(0, last - EVENTS_SHOWN)
        out: list[Any] = []
        stream = gateway.watch(
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

    async def run_action(request: Request, principal: Principal, _session: Session) -> Response:
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import execution_pb2

        execution_id, action = request.path_params["id"], request.path_params["action"]
        form = request.state.form
        target = execution_id
        if action == "cancel":
            await gateway.call(
                principal,
                "CancelExecution",
                svc.CancelExecutionRequest(id=execution_id, reason=str(form.get("reason", ""))[:4000]),
            )
        elif action in ("approve", "reject"):
            await gateway.call(
                principal,
                "SubmitApproval",
                svc.SubmitApprovalRequest(
                    execution_id=execution_id,
                    approval_id=str(form.get("approval_id", "")),
                    approved=action == "approve",
                    reason=str(form.get("reason", ""))[:4000],
                ),
            )
        elif action in ("rerun", "retry"):
            old = await gateway.call(principal, "GetExecution", svc.GetExecutionRequest(id=execution_id))
            if action == "retry" and phase_name(old.status.phase) not in ("FAILED", "CANCELLED"):
                raise CallError(
                    "FAILED_PRECONDITION",
                    f"execution {execution_id} did not fail and was not cancelled: re-run it instead",
                )
            spec = execution_pb2.ExecutionSpec()
            spec.CopyFrom(old.spec)  # the same as the SDK's rerun/retry
            spec.ClearField("secret_refs")
            spec.resumed_from = spec.rerun_of = ""
            setattr(spec, "rerun_of" if action == "rerun" else "resumed_from", old.metadata.id)
            created = await gateway.call(
                principal,
                "CreateExecution",
                svc.CreateExecutionRequest(spec=spec, labels=old.metadata.labels),
            )
            target = created.metadata.id
        else:
            return PlainTextResponse(f"unknown action {action!r}\n", status_code=404, headers=headers())
        return RedirectResponse(f"{root(request)}/runs/{target}", status_code=303)

    # -- definitions ------------------------------------------------------------------------------

    def _kind(request: Request) -> str:
        found = lookup_kind(request.path_params["kind"])
        if found not in DEFINITION_KINDS:
            raise CallError("NOT_FOUND", f"no definitions of kind {request.path_params['kind']!r}")
        return found

    async def definitions(request: Request, principal: Principal, _session: Session) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        kind = _kind(request)
        resp = await gateway.call(
            principal,
            "List",
            svc.ListRequest(kind=kind, page_size=200, page_token=request.query_params.get("page_token", "")),
        )
        items = []
        for resource in resp.resources:
            unwrapped: Any = unwrap(resource)
            meta = unwrapped.metadata
            items.append(
                {
                    "name": meta.name,
                    "version": meta.version,
                    "updated": views.fmt_time(views.ts(meta.updated_at)),
                }
            )
        return "definitions.html", {
            "kind": kind,
            "cli": kind_info(kind).cli_name,
            "items": items,
            "kinds": DEFINITION_KINDS,
            "next_token": resp.next_page_token,
        }

    async def definition(request: Request, principal: Principal, _session: Session) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2

        kind = _kind(request)
        name = request.path_params["name"]
        ref = meta_pb2.ResourceRef(kind=kind, name=name)
        resource = await gateway.call(principal, "Get", svc.GetRequest(ref=ref))
        msg = unwrap(resource)
        manifest = dump_manifests([msg], "yaml", include_status=False)
        versions = (await gateway.call(principal, "ListVersions", svc.ListVersionsRequest(ref=ref))).versions
        by_number = {v.version: v for v in versions}
        diff: list[tuple[str, str]] = []
        q = request.query_params
        a, b = q.get("a", ""), q.get("b", "")
        if a.isdigit() and b.isdigit():
            va, vb = by_number.get(int(a)), by_number.get(int(b))
            if va is None or vb is None:
                raise CallError("NOT_FOUND", f"{kind} {name!r} has no version {a if va is None else b}")
            diff = views.diff_text(
                dump_manifests([unwrap(va.resource)], "yaml", include_status=False),
                dump_manifests([unwrap(vb.resource)], "yaml", include_status=False),
                f"{name} v{a}",
                f"{name} v{b}",
            )
        runs_req = svc.ListExecutionsRequest(page_size=20)
        runnable = kind in ("Agent", "Workflow")
        if runnable:
            runs_req.target.CopyFrom(ref)
        elif kind == "Schedule":
            runs_req.label_selector = f"{views.SCHEDULE_LABEL}={name}"
        recent = []
        if runnable or kind == "Schedule":
            recent = [
                views.run_row(ex)
                for ex in (await gateway.call(principal, "ListExecutions", runs_req)).executions
            ]
        schema_doc = _input_schema(kind, msg)
        schema = json.dumps(schema_doc, indent=2) if schema_doc else ""
        example = json.dumps(_skeleton(schema_doc)) if schema_doc else "{}"
        return "definition.html", {
            "kind": kind,
            "cli": kind_info(kind).cli_name,
            "name": name,
            "manifest": manifest,
            "versions": [
                {"version": v.version, "created": views.fmt_time(views.ts(v.created_at))} for v in versions
            ],
            "a": a,
            "b": b,
            "diff": diff,
            "recent": recent,
            "runnable": runnable,
            "schema": schema,
            "example": example,
            "kinds": DEFINITION_KINDS,
            "form_error": q.get("error", ""),
        }

    async def run_definition(request: Request, principal: Principal, _session: Session) -> Response:
        from google.protobuf import json_format, struct_pb2
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import execution_pb2, meta_pb2

        kind = _kind(request)
        name = request.path_params["name"]
        if kind not in ("Agent", "Workflow"):
            raise CallError("INVALID_ARGUMENT", f"a {kind} does not run; run an agent or a workflow")
        form = request.state.form
        spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind=kind, name=name))
        message = str(form.get("message", "")).strip()
        if message:
            spec.message = message
        raw = str(form.get("input", "")).strip()
        back = f"{root(request)}/definitions/{kind_info(kind).cli_name}/{name}"

        def refuse(problem: str) -> Response:
            return RedirectResponse(f"{back}?{urlencode({'error': problem[:500]})}", status_code=303)

        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                return refuse(f"input is not JSON: {exc}")
            value = struct_pb2.Value()
            json_format.ParseDict(data, value)
            spec.input.CopyFrom(value)
        if kind == "Workflow":
            target = await gateway.call(principal, "Get", svc.GetRequest(ref=spec.target))
            schema = _input_schema(kind, unwrap(target))
            problem = _schema_problem(schema, {} if data is None else data) if schema else ""
            if problem:
                return refuse(problem)
        created = await gateway.call(principal, "CreateExecution", svc.CreateExecutionRequest(spec=spec))
        return RedirectResponse(f"{root(request)}/runs/{created.metadata.id}", status_code=303)

    # -- secrets and tokens -----------------------------------------------------------------------

    async def secrets_page(request: Request, principal: Principal, _session: Session) -> Any:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        resp = await gateway.call(principal, "ListSecrets", svc.ListSecretsRequest())
        items = [
            {
                "name": s.name,
                "description": s.description,
                "version": s.version,
                "owner": s.owner,
                "updated": views.fmt_time(views.ts(s.updated_at)),
                "grants": [f"{g.token_name or '*'}{' (' + g.role + ')' if g.role else ''}" for g in s.grants],
            }
            for s in resp.secrets
        ]
        return "secrets.html", {"items": items}

    def _admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise CallError(
                "PERMISSION_DENIED",
                f"managing tokens requires the admin role; {principal.describe()} is not an admin",
            )

    async def tokens_page(request: Request, principal: Principal, _session: Session) -> Any:
        _admin(principal)
        items = await asyncio.to_thread(gateway.tokens.list)
        return "tokens.html", {"items": items, "issued": None}

    async def token_create(request: Request, principal: Principal, _session: Session) -> Any:
        _admin(principal)
        form = request.state.form
        role = str(form.get("role", "user"))
        name = str(form.get("name", "")).strip() or None
        try:
            issued = await asyncio.to_thread(gateway.tokens.create, role, name)
        except Exception as exc:
            raise CallError(
                getattr(exc, "grpc_code", "INVALID_ARGUMENT"), getattr(exc, "message", str(exc))
            ) from None
        items = await asyncio.to_thread(gateway.tokens.list)
        return "tokens.html", {"items": items, "issued": issued}

    async def token_revoke(request: Request, principal: Principal, _session: Session) -> Response:
        _admin(principal)
        try:
            await asyncio.to_thread(gateway.tokens.revoke, request.path_params["id"])
        except Exception as exc:
            raise CallError(
                getattr(exc, "grpc_code", "INVALID_ARGUMENT"), getattr(exc, "message", str(exc))
            ) from None
        gateway.forget()  # the revoked token stops working at once
        return RedirectResponse(f"{root(request)}/tokens", status_code=303)

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", page(logout, post=True), methods=["POST"]),
        Route("/runs", page(runs)),
        Route("/runs/{id}", page(run_page)),
        Route("/runs/{id}/{action}", page(run_action, post=True), methods=["POST"]),
        Route("/definitions/{kind}", page(definitions)),
        Route("/definitions/{kind}/{name}", page(definition)),
        Route("/definitions/{kind}/{name}/run", page(run_definition, post=True), methods=["POST"]),
        Route("/secrets", page(secrets_page)),
        Route("/tokens", page(tokens_page)),
        Route("/tokens", page(token_create, post=True), methods=["POST"]),
        Route("/tokens/{id}/revoke", page(token_revoke, post=True), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)


def _input_schema(kind: str, msg: Any) -> dict[str, Any] | None:
    """The JSON Schema a workflow declares for its input (``input.schema.document``), or None."""
    from google.protobuf import json_format

    if kind != "Workflow":
        return None
    data = json_format.MessageToDict(msg.spec)
    schema = (data.get("input") or {}).get("schema") or {}
    document = schema.get("document") if isinstance(schema, dict) else None
    return document if isinstance(document, dict) and document else None


def _skeleton(schema: Any, depth: int = 0) -> Any:
    """An example value of ``schema`` for the run form (its properties with empty values)."""
    if not isinstance(schema, dict) or depth > 4:
        return None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: _skeleton(v, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    return {"string": "", "number": 0, "integer": 0, "boolean": False, "array": []}.get(str(kind))


def _schema_problem(schema: dict[str, Any], value: Any) -> str:
    """Why ``value`` does not match ``schema`` (one line), or ''."""
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the workflow's input schema is not valid: {exc.message}"
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"input{' at /' + where if where else ''} does not match the input schema: {error.message}"


def _http_status(code: str) -> int:
    return {
        "PERMISSION_DENIED": 403,
        "UNAUTHENTICATED": 401,
        "NOT_FOUND": 404,
        "INVALID_ARGUMENT": 400,
        "FAILED_PRECONDITION": 409,
        "ALREADY_EXISTS": 409,
        "ABORTED": 409,
        "RESOURCE_EXHAUSTED": 429,
        "UNAVAILABLE": 503,
    }.get(code, 500)
