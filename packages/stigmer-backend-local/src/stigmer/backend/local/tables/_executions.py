"""Executions: create (pinning the target and computing secret refs), read, list, cancel, approve."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import struct_pb2
from stigmer.backend.local._db import Conn, in_list
from stigmer.backend.local.tables import _grants, _secrets
from stigmer.backend.local.tables import _resources as res
from stigmer.backend.local.tables._columns import dumps, now_us
from stigmer.backend.local.tables._events import P, load, save, to_execution
from stigmer.backend.local.tables._input import check_secret_name, q
from stigmer.backend.local.tables._paging import decode_token, encode_token, page_size
from stigmer.backend.local.tables._selectors import check_labels, matches, parse_selector
from stigmer.core import (
    TERMINAL_PHASES,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Principal,
    new_id,
    phase_name,
    slugify,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2

if TYPE_CHECKING:
    from stigmer.backend.local._crypto import SecretBox

__all__ = [
    "cancel",
    "context",
    "create",
    "get",
    "list_executions",
    "submit_approval",
]

_EXEC_KIND = {"Agent": "AgentExecution", "Workflow": "WorkflowExecution"}

_INSERT = (
    "INSERT INTO executions (id, kind, target_kind, target_id, session_id, phase, last_sequence, "
    "labels, spec, status, created_at, updated_at) VALUES (:id, :kind, :target_kind, :target_id, "
    ":session_id, :phase, :last_sequence, :labels, :spec, :status, :created_at, :updated_at)"
)
# Every column of ``executions``, in the table's order.
_COLUMNS = (
    "pk, id, kind, target_kind, target_id, session_id, phase, last_sequence, labels, spec, status, "
    "created_at, updated_at"
)


def _target(conn: Conn, ref: meta_pb2.ResourceRef) -> Any:
    if ref.kind and ref.kind not in _EXEC_KIND:
        raise InvalidArgument(
            f"an execution runs an Agent or a Workflow, not a {q(ref.kind)}", ["spec.target.kind"]
        )
    if not (ref.id or ref.name):
        raise InvalidArgument("spec.target needs the name (or id) of an Agent or Workflow", ["spec.target"])
    if ref.kind or ref.id:
        row = res.find(conn, ref)
    else:
        rows = [r for k in _EXEC_KIND if (r := res.find(conn, ref, k)) is not None]
        if len(rows) > 1:
            raise InvalidArgument(
                f"both an Agent and a Workflow are named {q(ref.name)}; set spec.target.kind",
                ["spec.target.kind"],
            )
        row = rows[0] if rows else None
    if row is None or row.kind not in _EXEC_KIND:
        what = f"with id {q(ref.id)}" if ref.id else q(ref.name)
        raise NotFound(
            f"no {ref.kind or 'Agent or Workflow'} {what} exists; apply it first (`stigmer apply -f ...`)"
        )
    return row


def _lower_to(limits: Any, ceiling: Mapping[str, float]) -> None:
    """Lower each of an agent run's ``limits`` to the server's ``ceiling`` (an unset one takes it)."""
    for name, top in ceiling.items():
        given = getattr(limits, name)
        if top and (not given or given > top):
            setattr(limits, name, type(given)(top))


def _variables(conn: Conn, target_kind: str, body: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    if target_kind == "Agent":
        for env in body.get("spec", {}).get("environments", []):
            row = res.find(conn, meta_pb2.ResourceRef(kind="Environment", name=env))
            if row is not None:
                out.update(json.loads(row.spec).get("variables", {}))
    return out


def create(
    conn: Conn,
    box: SecretBox,
    request: svc.CreateExecutionRequest,
    principal: Principal | None = None,
    offer_to_runners: bool = True,
    server_id: str = "",
    agent_ceiling: Mapping[str, float] | None = None,
) -> ex.Execution:
    """Create an execution in PENDING, pinning its target's version and computing its secrets.

    With a ``principal`` (a server's caller): a runner may only start children of an execution it
    holds; the stored secrets the run would receive must be granted to the author of the pinned
    version (see ``_grants``). ``offer_to_runners`` says whether runner workers may claim it (a
    server that runs executions itself gives them only to the process it starts for them);
    ``server_id`` is that server, which holds the lease of an execution it will run (``_holds``).
    """
    if principal is not None and principal.role == "user" and request.dispatch_by_caller:
        raise PermissionDenied(
            f"{principal.describe()} may not set dispatch_by_caller: only the runner of a parent "
            "execution starts a run itself"
        )
    spec = ex.ExecutionSpec()
    spec.CopyFrom(request.spec)
    check_labels(dict(request.labels), "labels")
    for name in request.runtime_secrets:
        check_secret_name(name, f"runtime_secrets.{name}")
    row = _target(conn, spec.target)
    source = _source(conn, spec, row.id, principal)
    if spec.target_version and spec.target_version != row.version:
        body = res.version_body(conn, row.id, spec.target_version)
        if body is None:
            raise NotFound(
                f"{row.kind} '{row.name}' has no version {spec.target_version} (latest: {row.version})"
            )
    else:
        spec.target_version = row.version
        body = res.version_body(conn, row.id, row.version)
    if body is None:  # pragma: no cover - every stored version has a body
        raise FailedPrecondition(f"{row.kind} '{row.name}' has no stored version {spec.target_version}")
    spec.target.CopyFrom(meta_pb2.ResourceRef(kind=row.kind, name=row.name, id=row.id))
    if spec.session_id:
        session = res.find(conn, meta_pb2.ResourceRef(kind="Session", id=spec.session_id))
        if session is None:
            raise NotFound(f"session {spec.session_id!r} does not exist; create the Session first")
    if spec.parent_execution_id:
        load(conn, spec.parent_execution_id, lock=False)
    kind = _EXEC_KIND[row.kind]
    eid = new_id(kind)
    if row.kind == "Agent":
        res.check_agent_controls(spec, "spec")
        _lower_to(spec.limits, agent_ceiling or {})
    elif spec.HasField("limits") or spec.HasField("output_schema"):
        raise InvalidArgument("limits and outputSchema are for agent runs", ["spec.limits"])
    if row.kind == "Agent" and not spec.session_id and not spec.parent_execution_id:
        spec.session_id = _new_session(conn, row.name, eid, principal)
    _grants.check_parent_held(conn, principal, spec.parent_execution_id)
    if row.kind == "Agent":
        names = res.agent_secret_refs(conn, body)
    else:
        names = res.workflow_secrets(body.get("spec", {}))  # the stored JSON, as it was applied
    starter = _starter(conn, principal, spec.parent_execution_id)
    if principal is not None:
        _check_grants(
            conn, row.id, spec.target_version, starter, principal, names, f"{row.kind} {row.name!r}"
        )
    names.extend(request.runtime_secrets)
    if source is not None:
        kept = _secrets.runtime_secrets(conn, source.metadata.id)
        names.extend(kept)
        # the old run's run-time secrets: its secret refs that are not stored secrets
        missing = sorted(
            set(source.spec.secret_refs) - res.secret_names(conn) - set(kept) - set(request.runtime_secrets)
        )
        if missing:
            raise FailedPrecondition(
                f"execution {source.metadata.id} was given run-time secret(s) {', '.join(missing)}, which "
                "are not kept after a run ends: give them again"
            )
    del spec.secret_refs[:]
    spec.secret_refs.extend(sorted(set(names)))
    now = now_us()
    status = ex.ExecutionStatus(phase=P.PHASE_PENDING)
    if source is not None and spec.resumed_from:
        # A retry starts where the failed run stopped: its checkpoint and its finished tasks.
        status.checkpoint = source.status.checkpoint
        status.tasks.extend(t for t in source.status.tasks if t.phase == P.PHASE_SUCCEEDED)
    conn.execute(
        _INSERT,
        {
            "id": eid,
            "kind": kind,
            "target_kind": row.kind,
            "target_id": row.id,
            "session_id": spec.session_id,
            "phase": P.PHASE_PENDING,
            "last_sequence": 0,
            "labels": dumps(dict(request.labels)),
            "spec": spec.SerializeToString(),
            "status": status.SerializeToString(),
            "created_at": now,
            "updated_at": now,
        },
    )
    _secrets.store_runtime_secrets(conn, box, eid, dict(request.runtime_secrets))
    if source is not None and box is not None:
        _secrets.copy_runtime_secrets(conn, box, source.metadata.id, eid, set(request.runtime_secrets))
    _grants.record_author(conn, eid, 0, starter)
    dispatch = "caller" if request.dispatch_by_caller else ("runners" if offer_to_runners else "server")
    if spec.parent_execution_id and _grants.dispatch_of(conn, spec.parent_execution_id) == "server":
        dispatch = "server"  # a child of a run the server runs itself is never offered to runner tokens
    # The server that creates a run it runs itself holds it from the start (see _holds).
    holder = server_id if dispatch == "server" and not request.dispatch_by_caller else ""
    _grants.record_lease(conn, eid, dispatch, holder)
    res.bump_status(conn, row.id, {"executionCount+": 1, "lastExecutionId": eid})
    if spec.session_id:
        res.bump_status(conn, spec.session_id, {"lastExecutionId": eid})
    return _get(conn, eid)


def _source(
    conn: Conn, spec: ex.ExecutionSpec, target_id: str, principal: Principal | None = None
) -> ex.Execution | None:
    """The execution a retry (``resumed_from``) or a re-run (``rerun_of``) starts from, checked:
    the same target and version; a retry only of a FAILED or CANCELLED run (finished runs never
    change: the retry is a new execution that starts from a copy of the old one's checkpoint)."""
    if spec.resumed_from and spec.rerun_of:
        raise InvalidArgument("an execution is a retry (resumedFrom) or a re-run (rerunOf), not both")
    source_id = spec.resumed_from or spec.rerun_of
    if not source_id:
        return None
    field = "spec.resumedFrom" if spec.resumed_from else "spec.rerunOf"
    source = to_execution(load(conn, source_id, lock=False).row)
    if principal is not None and principal.role != "admin" and _secrets.runtime_secrets(conn, source_id):
        # The new run receives the old one's run-time secrets: only whoever started it may.
        starter = _grants.author_of(conn, source_id, 0)
        if starter is None or starter.name != principal.name:
            raise PermissionDenied(
                f"execution {source_id} was given run-time secrets by another token; only the token "
                "that started it (or an admin) may retry or re-run it"
            )
    if source.spec.target.id != target_id:
        raise InvalidArgument(f"{field}: execution {source_id} ran another target", [field])
    if spec.target_version and spec.target_version != source.spec.target_version:
        raise InvalidArgument(
            f"{field}: execution {source_id} ran version {source.spec.target_version}, "
            f"not {spec.target_version}",
            [field],
        )
    spec.target_version = source.spec.target_version
    if spec.resumed_from and source.status.phase not in (P.PHASE_FAILED, P.PHASE_CANCELLED):
        raise FailedPrecondition(
            f"execution {source_id} is {phase_name(source.status.phase)}: only a FAILED or CANCELLED "
            "run is retried (`stigmer execution rerun` runs any again from the start)"
        )
    return source


def _new_session(conn: Conn, agent: str, eid: str, principal: Principal | None) -> str:
    """A Session of ``agent`` for a run started without one (named after the agent and the run),
    so every conversation can be continued; its id."""
    from stigmer.proto.v1 import resource_pb2, session_pb2

    name = f"{slugify(agent)[:40].rstrip('-')}-{eid[-8:]}"
    created = session_pb2.Session(
        api_version="stigmer.ai/v1",
        kind="Session",
        metadata=meta_pb2.Metadata(name=name),
        spec=session_pb2.SessionSpec(agent=meta_pb2.ResourceRef(kind="Agent", name=agent)),
    )
    response = res.apply(conn, svc.ApplyRequest(resource=resource_pb2.Resource(session=created)), principal)
    return str(response.resource.session.metadata.id)


def _starter(conn: Conn, principal: Principal | None, parent_id: str) -> Principal | _grants.Author | None:
    """Who a new execution is started by: the caller, or for a runner's child, the parent's starter."""
    if principal is None or principal.role != "runner":
        return principal
    return _grants.author_of(conn, parent_id, 0) if parent_id else None


def _check_grants(
    conn: Conn,
    target_id: str,
    version: int,
    starter: Principal | _grants.Author | None,
    principal: Principal,
    names: list[str],
    what: str,
) -> None:
    """The stored secrets a run receives must be granted to the author of the version it pins (or,
    when that version has no recorded author, to whoever started the run)."""
    subject = _grants.author_of(conn, target_id, version) or starter or principal
    _grants.check_may_use(conn, subject, names, f"a run of {what}")


def _get(conn: Conn, execution_id: str) -> ex.Execution:
    item = load(conn, execution_id, lock=False)
    return to_execution(item.row)


def get(conn: Conn, request: svc.GetExecutionRequest) -> ex.Execution:
    return _get(conn, request.id)


def list_executions(conn: Conn, request: svc.ListExecutionsRequest) -> svc.ListExecutionsResponse:
    size = page_size(request.page_size)
    # The caller's numbers are cast to BIGINT: on PostgreSQL one out of that range is refused (a
    # DataError, so InvalidArgument) instead of being compared as a numeric.
    conds: list[str] = []
    params: dict[str, object] = {}
    if request.page_token:
        conds.append("pk < CAST(:page AS BIGINT)")
        params["page"] = decode_token(request.page_token, "x")
    if request.kind:
        if request.kind not in _EXEC_KIND.values():
            raise InvalidArgument("kind must be AgentExecution, WorkflowExecution or empty", ["kind"])
        conds.append("kind = :kind")
        params["kind"] = request.kind
    if request.target.id or request.target.name:
        conds.append("target_id = :target_id")
        params["target_id"] = _target(conn, request.target).id
    phases = {int(x) for x in request.phases} | ({int(request.phase)} if request.phase else set())
    phases.discard(0)
    if phases:
        listed, listed_params = in_list("phase", sorted(phases))
        conds.append(f"phase IN {listed}")
        params.update(listed_params)
    if request.session_id:
        conds.append("session_id = :session_id")
        params["session_id"] = request.session_id
    if request.HasField("created_after"):
        conds.append("created_at >= CAST(:created_after AS BIGINT)")
        params["created_after"] = request.created_after.ToMicroseconds()
    if request.HasField("created_before"):
        conds.append("created_at < CAST(:created_before AS BIGINT)")
        params["created_before"] = request.created_before.ToMicroseconds()
    requirements = parse_selector(request.label_selector)
    if not requirements:
        rows = conn.execute(_list_sql(conds), {**params, "limit": size + 1}).all()
    else:  # labels are a JSON column: filtered here, a batch at a time, newest first
        rows = []
        batch = max(size + 1, 200)
        sql = _list_sql(conds)
        while len(rows) <= size:
            found = conn.execute(sql, {**params, "limit": batch}).all()
            rows.extend(r for r in found if matches(requirements, json.loads(r.labels)))
            if len(found) < batch:
                break
            sql = _list_sql([*conds, "pk < :before"])
            params["before"] = found[-1].pk
        rows = rows[: size + 1]
    more = len(rows) > size
    rows = rows[:size]
    return svc.ListExecutionsResponse(
        executions=[to_execution(r) for r in rows],
        next_page_token=encode_token("x", rows[-1].pk) if more else "",
    )


def _list_sql(conds: list[str]) -> str:
    """The page of ``executions`` rows (newest first, ``:limit`` of them) matching ``conds``."""
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return f"SELECT {_COLUMNS} FROM executions{where} ORDER BY pk DESC LIMIT :limit"


def cancel(conn: Conn, request: svc.CancelExecutionRequest) -> ex.Execution:
    item = load(conn, request.id)
    if item.phase in TERMINAL_PHASES:
        raise FailedPrecondition(
            f"execution {item.id} already finished ({phase_name(item.phase)}); nothing to cancel"
        )
    item.append("cancel.requested", text=request.reason)
    item.set_phase(P.PHASE_CANCELLED, request.reason)
    return save(conn, item)


def submit_approval(conn: Conn, request: svc.SubmitApprovalRequest) -> ex.Execution:
    item = load(conn, request.execution_id)
    if item.phase != P.PHASE_WAITING_APPROVAL:
        raise FailedPrecondition(
            f"execution {item.id} is {phase_name(item.phase)}, not waiting for an approval"
        )
    pending = item.status.pending_approval
    if request.approval_id and pending.id and request.approval_id != pending.id:
        raise FailedPrecondition(
            f"execution {item.id} waits for approval {pending.id!r}, not {request.approval_id!r}"
        )
    data = struct_pb2.Value()
    data.struct_value.update({"approved": request.approved, "reason": request.reason, "tool": pending.tool})
    item.append(
        "approval.resolved",
        subject=pending.id or request.approval_id,
        text=request.reason,
        data=data,
    )
    item.set_phase(P.PHASE_RUNNING)
    return save(conn, item)


def context(
    conn: Conn,
    box: SecretBox,
    request: svc.GetExecutionContextRequest,
    principal: Principal | None = None,
) -> svc.ExecutionContext:
    item = load(conn, request.execution_id, lock=False)
    if principal is not None:
        _grants.claim(conn, principal, item.id, "read the context of")
    if item.phase not in (P.PHASE_RUNNING, P.PHASE_WAITING_APPROVAL):
        raise FailedPrecondition(
            f"execution {item.id} is {phase_name(item.phase)}; its context (variables and secrets) is only "
            "available while it is RUNNING or WAITING_APPROVAL"
        )
    spec = ex.ExecutionSpec.FromString(item.row.spec)
    runtime = _secrets.runtime_secrets(conn, item.id) if spec.secret_refs else {}
    if principal is not None:
        stored = [n for n in spec.secret_refs if n not in runtime]
        starter = _grants.author_of(conn, item.id, 0)
        _check_grants(
            conn,
            spec.target.id,
            spec.target_version,
            starter,
            principal,
            stored,
            f"{spec.target.kind} {spec.target.name!r}",
        )
    body = res.version_body(conn, spec.target.id, spec.target_version) or {}
    variables = _variables(conn, spec.target.kind, body)
    variables.update(spec.env)
    values = _secrets.resolve_values(conn, box, item.id, spec.secret_refs, runtime)
    return svc.ExecutionContext(execution_id=item.id, variables=variables, secrets=values)
