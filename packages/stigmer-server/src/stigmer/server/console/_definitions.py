"""Definitions: a kind's list, one definition's manifest, versions and diff, recent runs, run form."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from stigmer.core import (
    Principal,
    dump_manifests,
    dump_yaml,
    kind_info,
    lookup_kind,
    message_to_manifest,
    unwrap,
)
from stigmer.server.console import _views as views
from stigmer.server.console._gateway import CallError
from stigmer.server.console._sessions import Session
from stigmer.server.console._web import DEFINITION_KINDS, Web

__all__ = ["definition", "definitions", "run_definition"]


def _kind(request: Request) -> str:
    found = lookup_kind(request.path_params["kind"])
    if found not in DEFINITION_KINDS:
        raise CallError("NOT_FOUND", f"no definitions of kind {request.path_params['kind']!r}")
    return found


async def definitions(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    kind = _kind(request)
    resp = await web.gateway.call(
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


async def definition(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2

    kind = _kind(request)
    name = request.path_params["name"]
    ref = meta_pb2.ResourceRef(kind=kind, name=name)
    resource = await web.gateway.call(principal, "Get", svc.GetRequest(ref=ref))
    msg = unwrap(resource)
    manifest = dump_manifests([msg], "yaml", include_status=False)
    versions = (await web.gateway.call(principal, "ListVersions", svc.ListVersionsRequest(ref=ref))).versions
    by_number = {v.version: v for v in versions}
    diff: list[tuple[str, str]] = []
    q = request.query_params
    a, b = q.get("a", ""), q.get("b", "")
    if a.isdigit() and b.isdigit():
        va, vb = by_number.get(int(a)), by_number.get(int(b))
        if va is None or vb is None:
            raise CallError("NOT_FOUND", f"{kind} {name!r} has no version {a if va is None else b}")
        diff = views.diff_text(
            _for_diff(va.resource),
            _for_diff(vb.resource),
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
            for ex in (await web.gateway.call(principal, "ListExecutions", runs_req)).executions
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


async def run_definition(web: Web, request: Request, principal: Principal, _session: Session) -> Response:
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
    back = f"{web.root(request)}/definitions/{kind_info(kind).cli_name}/{name}"

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
        target = await web.gateway.call(principal, "Get", svc.GetRequest(ref=spec.target))
        schema = _input_schema(kind, unwrap(target))
        problem = _schema_problem(schema, {} if data is None else data) if schema else ""
        if problem:
            return refuse(problem)
    created = await web.gateway.call(principal, "CreateExecution", svc.CreateExecutionRequest(spec=spec))
    return RedirectResponse(f"{web.root(request)}/runs/{created.metadata.id}", status_code=303)


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


def _for_diff(resource: Any) -> str:
    """A version's manifest without what differs in every version (its number, its write time)."""
    manifest = message_to_manifest(unwrap(resource), include_status=False)
    metadata = manifest.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("version", None)
        metadata.pop("updatedAt", None)
    return dump_yaml([manifest])
