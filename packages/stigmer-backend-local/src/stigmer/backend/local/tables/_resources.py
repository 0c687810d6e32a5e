"""Definition resources (Agent, Skill, McpServer, Environment, Workflow, Session): apply, read, list."""

from __future__ import annotations

import functools
import json
import sys
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from stigmer.backend.local._db import Conn
from stigmer.backend.local.tables import _grants
from stigmer.backend.local.tables._columns import dumps, now_us, timestamp
from stigmer.backend.local.tables._input import check_secret_name, q
from stigmer.backend.local.tables._paging import decode_token, encode_token, page_size
from stigmer.backend.local.tables._selectors import check_labels, parse_selector
from stigmer.core import (
    API_VERSION,
    KIND_TABLE,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Principal,
    new_id,
    output_schema_problem,
    slugify,
    unwrap,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import meta_pb2, resource_pb2

__all__ = [
    "DEFINITION_KINDS",
    "SELECT_ROWS",
    "ResourceRow",
    "agent_secret_refs",
    "apply",
    "declared_secrets",
    "delete_resource",
    "find",
    "list_resources",
    "list_versions",
    "require",
    "same_name",
    "to_message",
    "workflow_secrets",
]

DEFINITION_KINDS: dict[str, tuple[type[Message], str]] = {
    k.name: (k.message_class(), k.field) for k in KIND_TABLE if not k.is_execution
}
_FIELD_TO_KIND = {field: kind for kind, (_cls, field) in DEFINITION_KINDS.items()}
_SLUG_MAX = 63


# ---------------------------------------------------------------------------------------------
# row <-> message


class ResourceRow(NamedTuple):
    """A ``resources`` row, in the table's column order (what ``find`` and ``list_resources`` return)."""

    pk: int
    id: str
    kind: str
    slug: str
    name: str
    version: int
    labels: str
    annotations: str
    spec: str
    status: str
    created_at: int
    updated_at: int


class _Converted:
    """Serialized ``Resource`` of recently converted rows: one entry per resource (and, for an
    Environment, per set of missing secret names), holding the last row converted and its bytes.

    ``to_message`` is a pure function of the row (and, for an Environment, of the missing secret
    names), so a hit, the same row as the one kept, gives exactly what converting again would:
    ``FromString`` of the bytes takes microseconds where the JSON mapping (``json_format.ParseDict``)
    takes hundreds. A changed row (a workflow's status changes with every execution) replaces the
    entry of its resource rather than adding one beside it, so a busy server keeps one copy of each
    definition, not one per execution. Bounded by entries and by bytes (the row texts plus the
    serialized message); thread-safe (PostgreSQL reads run in worker threads).
    """

    MAX_ENTRIES = 1024
    MAX_BYTES = 8 << 20
    MAX_ENTRY_BYTES = 256 << 10

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, frozenset[str] | None], tuple[ResourceRow, bytes, int]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[ResourceRow, frozenset[str] | None]) -> bytes | None:
        row, missing = key
        slot = (row.id, missing)
        with self._lock:
            found = self._items.get(slot)
            if found is None or found[0] != row:
                return None
            self._items.move_to_end(slot)
            return found[1]

    def put(self, key: tuple[ResourceRow, frozenset[str] | None], data: bytes) -> None:
        row, missing = key
        texts = (row.spec, row.status, row.labels, row.annotations)
        size = len(data) + sum(map(sys.getsizeof, texts)) + 200
        slot = (row.id, missing)
        with self._lock:
            old = self._items.pop(slot, None)
            if old is not None:
                self._bytes -= old[2]
            if size > self.MAX_ENTRY_BYTES:
                return
            self._items[slot] = (row, data, size)
            self._bytes += size
            while len(self._items) > self.MAX_ENTRIES or self._bytes > self.MAX_BYTES:
                _, (_, _, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_converted = _Converted()


def to_message(row: Any, missing_secrets: set[str] | None = None) -> resource_pb2.Resource:
    """Build the ``Resource`` for a ``resources`` row."""
    if type(row) is not ResourceRow:
        return _to_message(row, missing_secrets)
    missing = (
        frozenset(missing_secrets) if missing_secrets is not None and row.kind == "Environment" else None
    )
    key = (row, missing)
    data = _converted.get(key)
    if data is None:
        out = _to_message(row, missing_secrets)
        _converted.put(key, out.SerializeToString())
        return out
    return resource_pb2.Resource.FromString(data)


def _to_message(row: Any, missing_secrets: set[str] | None) -> resource_pb2.Resource:
    cls, field = DEFINITION_KINDS[row.kind]
    msg: Any = cls(api_version=API_VERSION, kind=row.kind)
    md = msg.metadata
    md.name, md.slug, md.id, md.version = row.name, row.slug, row.id, row.version
    md.labels.update(json.loads(row.labels))
    md.annotations.update(json.loads(row.annotations))
    md.created_at.CopyFrom(timestamp(row.created_at))
    md.updated_at.CopyFrom(timestamp(row.updated_at))
    if len(row.spec) <= _SPEC_CACHE_MAX_CHARS:
        msg.spec.MergeFromString(_spec_bytes(row.kind, row.spec))
    else:
        _parse_spec(row.spec, msg.spec)
    if "status" in msg.DESCRIPTOR.fields_by_name:  # a Trigger has none
        json_format.ParseDict(json.loads(row.status), msg.status)
    if row.kind == "Environment" and missing_secrets is not None:
        del msg.status.missing_secrets[:]
        msg.status.missing_secrets.extend(n for n in msg.spec.secrets if n in missing_secrets)
    out = resource_pb2.Resource()
    getattr(out, field).CopyFrom(msg)
    return out


#: Specs up to this many characters are kept parsed (a definition's spec only changes with its
#: version, while its status changes with every execution, so whole rows are cached less often).
_SPEC_CACHE_MAX_CHARS = 256 << 10


@functools.lru_cache(maxsize=256)
def _spec_bytes(kind: str, spec: str) -> bytes:
    """The ``spec`` JSON of a ``kind`` definition as its serialized spec message."""
    cls, _ = DEFINITION_KINDS[kind]
    message: Any = cls()
    _parse_spec(spec, message.spec)
    data: bytes = message.spec.SerializeToString()
    return data


def _parse_spec(text: str, spec: Any) -> None:
    """Fill ``spec`` from its JSON: a Workflow's spec is a ``Struct``, whose own ``update`` builds
    it in half the time of the generic JSON mapping (the same message either way)."""
    if isinstance(spec, struct_pb2.Struct):
        spec.update(json.loads(text))
    else:
        json_format.ParseDict(json.loads(text), spec)


def _spec_json(msg: Any) -> str:
    return dumps(json_format.MessageToDict(msg.spec))


# ---------------------------------------------------------------------------------------------
# lookups


#: Every column of ``resources``, in the table's order (the fields of ``ResourceRow``).
_COLUMNS = "pk, id, kind, slug, name, version, labels, annotations, spec, status, created_at, updated_at"
#: Whole rows of ``resources`` (a ``WHERE`` follows).
SELECT_ROWS = f"SELECT {_COLUMNS} FROM resources"
_BY_ID = f"{SELECT_ROWS} WHERE id = :rid"
_BY_SLUG = f"{SELECT_ROWS} WHERE kind = :kind AND slug = :slug"
_BY_PK = f"{SELECT_ROWS} WHERE pk = :pk"
_SECRET_NAMES = "SELECT name FROM secrets"
_ARTIFACT_SIZE = 'SELECT size FROM artifacts WHERE "key" = :key'
_INSERT = (
    "INSERT INTO resources (id, kind, slug, name, version, labels, annotations, spec, status, created_at,"
    " updated_at) VALUES (:id, :kind, :slug, :name, :version, :labels, :annotations, :spec, :status,"
    " :created_at, :updated_at) RETURNING pk"
)
_UPDATE = (
    "UPDATE resources SET name = :name, version = :version, labels = :labels, annotations = :annotations,"
    " spec = :spec, status = :status, updated_at = :updated_at WHERE pk = :pk"
)
_DELETE_LABELS = "DELETE FROM resource_labels WHERE resource_pk = :pk"
_INSERT_LABEL = 'INSERT INTO resource_labels (resource_pk, "key", value) VALUES (:resource_pk, :key, :value)'
_INSERT_VERSION = (
    "INSERT INTO resource_versions (resource_id, version, body, created_at)"
    " VALUES (:resource_id, :version, :body, :created_at)"
)
_DELETE_VERSIONS = "DELETE FROM resource_versions WHERE resource_id = :rid"
_DELETE = "DELETE FROM resources WHERE pk = :pk"
_DELETE_FIRES = "DELETE FROM schedule_fires WHERE schedule_id = :rid"
_VERSIONS = (
    "SELECT resource_id, version, body, created_at FROM resource_versions WHERE resource_id = :rid"
    " ORDER BY version DESC"
)
_VERSION_BODY = "SELECT body FROM resource_versions WHERE resource_id = :b_id AND version = :b_version"
_STATUS = "SELECT status FROM resources WHERE id = :b_id"
_SET_STATUS = "UPDATE resources SET status = :status WHERE id = :b_id"
_LIST_SHAPES_MAX = 64


@functools.lru_cache(maxsize=_LIST_SHAPES_MAX)
def _list_sql(ops: tuple[str, ...]) -> str:
    """One page of a kind, after a pk, filtered by label requirements with these operators (the
    text of the few shapes in use is kept).

    Parameters: ``kind``, ``after``, ``limit``, and per requirement ``k<i>`` (and ``v<i>`` for
    ``=`` and ``!=``).
    """
    conds = ["kind = :kind", "pk > :after"]
    for i, op in enumerate(ops):
        has_key = (
            "EXISTS (SELECT * FROM resource_labels WHERE resource_labels.resource_pk = resources.pk"
            f' AND resource_labels."key" = :k{i}'
        )
        if op == "exists":
            conds.append(f"{has_key})")
        elif op == "!exists":
            conds.append(f"NOT {has_key})")
        elif op == "=":
            conds.append(f"{has_key} AND resource_labels.value = :v{i})")
        else:
            conds.append(f"NOT {has_key} AND resource_labels.value = :v{i})")
    return f"{SELECT_ROWS} WHERE {' AND '.join(conds)} ORDER BY pk LIMIT :limit"


@functools.lru_cache(maxsize=4096)
def _slug(name: str) -> str:
    """``slugify`` of a looked-up name, remembered (the same few names are looked up again and again)."""
    return slugify(name)


def _rows(conn: Conn, sql: str, values: Mapping[str, object]) -> list[ResourceRow]:
    return [ResourceRow._make(found) for found in conn.execute(sql, values).tuples()]


def find(conn: Conn, ref: meta_pb2.ResourceRef, kind: str = "", lock: bool = False) -> ResourceRow | None:
    """The row a reference points at (by id, else kind + name or slug), or None."""
    want = ref.kind or kind
    if want and want not in DEFINITION_KINDS:
        raise InvalidArgument(f"unknown kind {q(want)} (one of: {', '.join(DEFINITION_KINDS)})", ["ref.kind"])
    locked = conn.for_update if lock else ""
    if ref.id:
        rows = _rows(conn, _BY_ID + locked, {"rid": ref.id})
    elif ref.name:
        if not want:
            raise InvalidArgument(f"say which kind {q(ref.name)} is (ref.kind, e.g. Agent)", ["ref.kind"])
        try:
            slug = _slug(ref.name)
        except InvalidArgument:
            return None
        rows = _rows(conn, _BY_SLUG + locked, {"kind": want, "slug": slug})
    else:
        raise InvalidArgument("give a resource id, or a kind and a name", ["ref"])
    row = rows[0] if rows else None
    if row is None or (want and row.kind != want):
        return None
    return row


def _describe(ref: meta_pb2.ResourceRef, kind: str = "") -> str:
    k = q(ref.kind or kind) if (ref.kind or kind) not in DEFINITION_KINDS else (ref.kind or kind)
    k = k or "resource"
    return f"{k} with id {q(ref.id)}" if ref.id else f"{k} {q(ref.name)}"


def require(conn: Conn, ref: meta_pb2.ResourceRef, kind: str = "", lock: bool = False) -> ResourceRow:
    row = find(conn, ref, kind, lock)
    if row is None:
        raise NotFound(f"{_describe(ref, kind)} does not exist; check the name with `stigmer get`")
    return row


def secret_names(conn: Conn) -> set[str]:
    return set(conn.execute(_SECRET_NAMES).scalars())


# ---------------------------------------------------------------------------------------------
# validation


def _validate(resource: resource_pb2.Resource) -> tuple[str, Any]:
    field = resource.WhichOneof("kind")
    if field is None:
        raise InvalidArgument("the resource is empty: set one of agent, skill, mcp_server, ...", ["resource"])
    kind = _FIELD_TO_KIND[field]
    msg: Any = unwrap(resource)
    if msg.api_version and msg.api_version != API_VERSION:
        raise InvalidArgument(f"apiVersion must be '{API_VERSION}', got {q(msg.api_version)}", ["apiVersion"])
    if msg.kind and msg.kind != kind:
        raise InvalidArgument(f"kind {q(msg.kind)} does not match the {kind} message it is in", ["kind"])
    name = msg.metadata.name
    if not name.strip():
        raise InvalidArgument(f"metadata.name is required for a {kind}", ["metadata.name"])
    if len(name) > 253:
        raise InvalidArgument("metadata.name is longer than 253 characters", ["metadata.name"])
    if not name.isprintable():
        raise InvalidArgument(
            f"metadata.name {name[:80]!r} contains control characters; use printable text", ["metadata.name"]
        )
    check_labels(dict(msg.metadata.labels), "metadata.labels")
    if kind == "Agent" or kind in ("Environment", "McpServer"):
        for i, n in enumerate(msg.spec.secrets):
            check_secret_name(n, f"spec.secrets[{i}]")
    elif kind == "Workflow":
        workflow_secrets(msg.spec)
        from stigmer.core import schedule_on_filters

        schedule_on_filters(json_format.MessageToDict(msg.spec))
    elif kind == "Schedule":
        _check_schedule(msg)
    elif kind == "Trigger":
        _check_trigger(msg)
    return kind, msg


def _check_trigger(msg: Any) -> None:
    target = msg.spec.target
    if target.kind not in ("Workflow", "Agent") or not (target.name or target.id):
        raise InvalidArgument(
            "a Trigger needs spec.target: {kind: Workflow or Agent, name: ...}", ["spec.target"]
        )
    if not msg.spec.secret:
        raise InvalidArgument(
            "a Trigger needs spec.secret: the stored secret holding the webhook's HMAC key "
            "(`stigmer secret set NAME`)",
            ["spec.secret"],
        )
    check_secret_name(msg.spec.secret, "spec.secret")


def _check_schedule(msg: Any) -> None:
    from stigmer.core import Timetable

    Timetable.of(msg.spec)
    target = msg.spec.target
    if target.kind not in ("Workflow", "Agent") or not (target.name or target.id):
        raise InvalidArgument(
            "a Schedule needs spec.target: {kind: Workflow or Agent, name: ...}", ["spec.target"]
        )
    if target.kind == "Agent" and not msg.spec.message:
        raise InvalidArgument("a Schedule of an agent needs spec.message", ["spec.message"])
    if target.kind == "Workflow" and msg.spec.message:
        raise InvalidArgument("spec.message is for agents; give a workflow spec.input", ["spec.message"])


def workflow_secrets(spec: Any) -> list[str]:
    """Secret names a Serverless Workflow document declares under ``use.secrets``."""
    data = json_format.MessageToDict(spec) if isinstance(spec, Message) else spec
    use = data.get("use") if isinstance(data, dict) else None
    names = use.get("secrets", []) if isinstance(use, dict) else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidArgument("use.secrets must be a list of secret names", ["spec.use.secrets"])
    for i, n in enumerate(names):
        check_secret_name(n, f"spec.use.secrets[{i}]")
    return list(names)


def references(kind: str, msg: Any) -> list[tuple[str, meta_pb2.ResourceRef]]:
    """(field path, reference) of every other resource this one names."""
    out: list[tuple[str, meta_pb2.ResourceRef]] = []

    def skills(prefix: str, refs: Sequence[meta_pb2.ResourceRef]) -> None:
        for i, r in enumerate(refs):
            out.append(
                (f"{prefix}.skills[{i}]", meta_pb2.ResourceRef(kind=r.kind or "Skill", name=r.name, id=r.id))
            )

    def mcps(prefix: str, usages: Sequence[Any]) -> None:
        for i, u in enumerate(usages):
            out.append((f"{prefix}.mcpServers[{i}]", meta_pb2.ResourceRef(kind="McpServer", name=u.name)))

    if kind == "Agent":
        spec = msg.spec
        for i, env in enumerate(spec.environments):
            out.append((f"spec.environments[{i}]", meta_pb2.ResourceRef(kind="Environment", name=env)))
        skills("spec", spec.skills)
        mcps("spec", spec.mcp_servers)
        for i, sub in enumerate(spec.sub_agents):
            if sub.agent:
                out.append((f"spec.subAgents[{i}].agent", meta_pb2.ResourceRef(kind="Agent", name=sub.agent)))
            skills(f"spec.subAgents[{i}]", sub.skills)
            mcps(f"spec.subAgents[{i}]", sub.mcp_servers)
    elif kind in ("Schedule", "Trigger"):
        t = msg.spec.target
        out.append(("spec.target", meta_pb2.ResourceRef(kind=t.kind, name=t.name, id=t.id)))
    elif kind == "Session":
        agent = msg.spec.agent
        if not (agent.name or agent.id):
            raise InvalidArgument("a Session needs spec.agent (the agent it talks to)", ["spec.agent"])
        out.append(("spec.agent", meta_pb2.ResourceRef(kind="Agent", name=agent.name, id=agent.id)))
    return out


def check_agent_controls(spec: Any, where: str) -> None:
    """An agent's (or an agent run's) ``limits`` are not negative and its ``outputSchema`` is a
    JSON Schema."""
    if spec.HasField("limits"):
        for field, value in spec.limits.ListFields():
            if value < 0:
                path = f"{where}.limits.{field.json_name}"
                raise InvalidArgument(f"{path} must not be negative (got {value:g})", [path])
    if spec.HasField("output_schema"):
        problem = output_schema_problem(json_format.MessageToDict(spec.output_schema))
        if problem:
            raise InvalidArgument(f"{where}.{problem}", [f"{where}.outputSchema"])


def _check_references(conn: Conn, kind: str, msg: Any, self_slug: str) -> None:
    for path, ref in references(kind, msg):
        if not (ref.name or ref.id):
            raise InvalidArgument(f"{path} needs a name", [path])
        if ref.kind == kind and not ref.id and _safe_slug(ref.name) == self_slug:
            continue
        if find(conn, ref) is None:
            raise NotFound(
                f"{kind} '{msg.metadata.name}' references {_describe(ref)} at {path}, which does not exist; "
                f"apply the {ref.kind} first (or fix the name)"
            )


def _safe_slug(name: str) -> str:
    try:
        return slugify(name)
    except InvalidArgument:
        return ""


# ---------------------------------------------------------------------------------------------
# apply


def same_name(a: str, b: str) -> bool:
    """Whether two names are the same name: equal after Unicode NFC normalisation, nothing more.

    Case, width and anything past the slug's 63 characters count: ``WF``, ``ｗｆ`` and ``wf`` are
    three names, even though they share the slug ``wf``.
    """
    return a == b or unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def _check_same_name(kind: str, name: str, slug: str, row: ResourceRow | Any) -> None:
    """Refuse to let a distinct name take over the resource that owns its slug."""
    if not same_name(row.name, name):
        raise AlreadyExists(
            f"{kind} {name!r} has the slug {slug!r} of the existing {kind} {row.name!r}; "
            f"names that differ only in case, width, accents, punctuation or after {_SLUG_MAX} characters "
            f"share a slug: choose a name with a different slug, or apply the name {row.name!r} to change "
            "that one"
        )


def _initial_status(conn: Conn, kind: str, msg: Any, old_status: str | None) -> str:
    status: dict[str, Any] = json.loads(old_status) if old_status else {}
    if kind == "Workflow":
        names = workflow_secrets(msg.spec)
        if names:
            status["secrets"] = names
        else:
            status.pop("secrets", None)
    elif kind == "Skill" and msg.spec.artifact:
        size = conn.execute(_ARTIFACT_SIZE, {"key": msg.spec.artifact}).scalar()
        if size is None:
            raise NotFound(
                f"Skill '{msg.metadata.name}' names artifact {q(msg.spec.artifact)}, which is not stored; "
                "push it with PutArtifact first",
            )
        status["artifactSize"] = str(size)
    elif kind == "Environment":
        status.pop("missingSecrets", None)  # computed when read
    return dumps(status)


def declared_secrets(conn: Conn, kind: str, msg: Any) -> list[str]:
    """The stored-secret names a definition makes its runs receive."""
    if kind == "Workflow":
        return workflow_secrets(msg.spec)
    if kind in ("Environment", "McpServer"):
        return list(msg.spec.secrets)
    if kind == "Trigger":
        return [msg.spec.secret]
    if kind == "Agent":
        return agent_secret_refs(conn, {"spec": json_format.MessageToDict(msg.spec)})
    return []


def agent_secret_refs(conn: Conn, body: dict[str, Any]) -> list[str]:
    """An agent's secrets: its own, its environments' and its MCP servers' (sub-agents' included)."""
    spec = body.get("spec", {})
    names: list[str] = list(spec.get("secrets", []))
    for env in spec.get("environments", []):
        row = find(conn, meta_pb2.ResourceRef(kind="Environment", name=env))
        if row is not None:
            names.extend(json.loads(row.spec).get("secrets", []))
    usages = list(spec.get("mcpServers", []))
    for sub in spec.get("subAgents", []):
        usages.extend(sub.get("mcpServers", []))
    for usage in usages:
        row = find(conn, meta_pb2.ResourceRef(kind="McpServer", name=usage.get("name", "")))
        if row is not None:
            names.extend(json.loads(row.spec).get("secrets", []))
    return names


def apply(conn: Conn, request: svc.ApplyRequest, principal: Principal | None = None) -> svc.ApplyResponse:
    """Create or update by kind + slug; writes nothing when ``dry_run`` or when nothing changed.
    A Workflow whose document has ``schedule.every``, ``.cron`` or ``.after`` gets a Schedule of the
    same name owned by it (see ``_owned_schedule``), kept in step with the document."""
    response = _apply(conn, request, principal)
    if response.resource.WhichOneof("kind") == "workflow":
        from stigmer.backend.local.tables._owned import sync_owned_schedule

        sync_owned_schedule(conn, response.resource.workflow, principal, dry_run=request.dry_run)
    return response


def _apply(conn: Conn, request: svc.ApplyRequest, principal: Principal | None = None) -> svc.ApplyResponse:
    """Create or update by kind + slug; writes nothing when ``dry_run`` or when nothing changed.

    With a ``principal`` (a server's caller), every stored secret the definition declares must be
    one the principal may use, and the version written is authored by the principal.
    """
    kind, msg = _validate(request.resource)
    if principal is not None:
        _grants.check_may_use(
            conn, principal, declared_secrets(conn, kind, msg), f"{kind} {msg.metadata.name!r}"
        )
    md = msg.metadata
    slug = md.slug or slugify(md.name)
    if slugify(slug) != slug or len(slug) > _SLUG_MAX:
        raise InvalidArgument(
            f"invalid slug {slug!r}: lower-case letters, digits and dashes", ["metadata.slug"]
        )
    row = conn.execute(_BY_SLUG + conn.for_update, {"kind": kind, "slug": slug}).first()
    if row is not None:
        _check_same_name(kind, md.name, slug, row)
    _check_references(conn, kind, msg, slug)
    if kind == "Agent":
        check_agent_controls(msg.spec, "spec")
    spec = _spec_json(msg)
    labels, annotations = dumps(dict(md.labels)), dumps(dict(md.annotations))
    stored_secrets = secret_names(conn) if kind == "Environment" else set()
    missing_names = {
        n for n in (msg.spec.secrets if kind == "Environment" else ()) if n not in stored_secrets
    }
    now = now_us()
    if row is not None:
        previous = to_message(row, missing_names)
        _fill_authors(conn, [previous])
        if (row.spec, row.labels, row.annotations, row.name) == (spec, labels, annotations, md.name):
            return svc.ApplyResponse(resource=previous, action=svc.APPLY_ACTION_UNCHANGED, previous=previous)
        values = {
            "name": md.name,
            "version": row.version + 1,
            "labels": labels,
            "annotations": annotations,
            "spec": spec,
            "status": _initial_status(conn, kind, msg, row.status),
            "updated_at": now,
        }
        new_row: Any = _FakeRow(**{**row._asdict(), **values})
        result = to_message(new_row, missing_names)
        _set_author(result, principal)
        if not request.dry_run:
            conn.execute(_UPDATE, {**values, "pk": row.pk})
            _write_labels(conn, row.pk, dict(md.labels), replace=True)
            _write_version(conn, new_row.id, new_row.version, result, now)
            _grants.record_author(conn, new_row.id, new_row.version, principal)
        return svc.ApplyResponse(resource=result, action=svc.APPLY_ACTION_UPDATED, previous=previous)
    values = {
        "id": new_id(kind),
        "kind": kind,
        "slug": slug,
        "name": md.name,
        "version": 1,
        "labels": labels,
        "annotations": annotations,
        "spec": spec,
        "status": _initial_status(conn, kind, msg, None),
        "created_at": now,
        "updated_at": now,
    }
    if request.dry_run:
        fake: Any = _FakeRow(pk=0, **values)
        return svc.ApplyResponse(resource=to_message(fake, missing_names), action=svc.APPLY_ACTION_CREATED)
    pk = conn.execute(_INSERT, values).scalar()
    created = conn.execute(_BY_PK, {"pk": pk}).one()
    result = to_message(created, missing_names)
    _set_author(result, principal)
    _write_labels(conn, pk, dict(md.labels), replace=False)
    _write_version(conn, created.id, 1, result, now)
    _grants.record_author(conn, created.id, 1, principal)
    return svc.ApplyResponse(resource=result, action=svc.APPLY_ACTION_CREATED)


def _set_author(resource: resource_pb2.Resource, principal: Principal | None) -> None:
    if principal is not None:
        message: Any = unwrap(resource)
        message.metadata.author = principal.name


def _fill_authors(conn: Conn, resources: Sequence[resource_pb2.Resource]) -> None:
    """Set ``metadata.author`` of each resource from the author of its current version."""
    metas = [cast(Any, unwrap(r)).metadata for r in resources]
    found = _grants.authors_of(conn, [(m.id, m.version) for m in metas])
    for m in metas:
        author = found.get((m.id, m.version))
        if author:
            m.author = author


class _FakeRow:
    """Attribute access like a Row, for the would-be row of a dry-run create."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _write_labels(conn: Conn, pk: int, labels: dict[str, str], replace: bool) -> None:
    if replace:
        conn.execute(_DELETE_LABELS, {"pk": pk})
    if labels:
        conn.executemany(
            _INSERT_LABEL, [{"resource_pk": pk, "key": k, "value": v} for k, v in labels.items()]
        )


def _write_version(conn: Conn, rid: str, version: int, resource: resource_pb2.Resource, now: int) -> None:
    body = dumps(json_format.MessageToDict(unwrap(resource)))
    conn.execute(_INSERT_VERSION, {"resource_id": rid, "version": version, "body": body, "created_at": now})


# ---------------------------------------------------------------------------------------------
# read, list, delete


def get(conn: Conn, request: svc.GetRequest) -> resource_pb2.Resource:
    row = require(conn, request.ref)
    out = to_message(row, _missing(conn, [row]))
    _fill_authors(conn, [out])
    return out


def _missing(conn: Conn, rows: Sequence[Any]) -> set[str] | None:
    if not any(r.kind == "Environment" for r in rows):
        return None
    have = secret_names(conn)
    wanted: set[str] = set()
    for r in rows:
        if r.kind == "Environment":
            wanted.update(json.loads(r.spec).get("secrets", []))
    return wanted - have


def list_resources(conn: Conn, request: svc.ListRequest) -> svc.ListResponse:
    if request.kind not in DEFINITION_KINDS:
        raise InvalidArgument(
            f"unknown kind {q(request.kind)} (one of: {', '.join(DEFINITION_KINDS)})", ["kind"]
        )
    size = page_size(request.page_size)
    after = decode_token(request.page_token, "r") if request.page_token else 0
    requirements = parse_selector(request.label_selector)
    values: dict[str, object] = {"kind": request.kind, "after": after, "limit": size + 1}
    for i, req in enumerate(requirements):
        values[f"k{i}"] = req.key
        if req.op in ("=", "!="):
            values[f"v{i}"] = req.value
    rows = _rows(conn, _list_sql(tuple(req.op for req in requirements)), values)
    more = len(rows) > size
    rows = rows[:size]
    missing = _missing(conn, rows)
    out = [to_message(row, missing) for row in rows]
    _fill_authors(conn, out)
    return svc.ListResponse(resources=out, next_page_token=encode_token("r", rows[-1].pk) if more else "")


def delete_resource(conn: Conn, request: svc.DeleteRequest) -> resource_pb2.Resource:
    row = require(conn, request.ref, lock=True)
    result = to_message(row, _missing(conn, [row]))
    conn.execute(_DELETE_LABELS, {"pk": row.pk})
    conn.execute(_DELETE_VERSIONS, {"rid": row.id})
    conn.execute(_DELETE, {"pk": row.pk})
    if row.kind == "Schedule":
        conn.execute(_DELETE_FIRES, {"rid": row.id})
    elif row.kind == "Workflow":
        from stigmer.backend.local.tables._owned import delete_owned_schedule

        delete_owned_schedule(conn, row.name)
    return result


def list_versions(conn: Conn, request: svc.ListVersionsRequest) -> svc.ListVersionsResponse:
    row = require(conn, request.ref)
    cls, field = DEFINITION_KINDS[row.kind]
    out = svc.ListVersionsResponse()
    for item in conn.execute(_VERSIONS, {"rid": row.id}).all():
        msg = cls()
        json_format.ParseDict(json.loads(item.body), msg)
        entry = out.versions.add(version=item.version)
        getattr(entry.resource, field).CopyFrom(msg)
        entry.created_at.CopyFrom(timestamp(item.created_at))
    return out


def version_body(conn: Conn, resource_id: str, version: int) -> Any | None:
    """The kind message of ``resource_id`` as it was at ``version``, or None (every
    CreateExecution reads its target's)."""
    body = conn.execute(_VERSION_BODY, {"b_id": resource_id, "b_version": version}).scalar()
    return None if body is None else json.loads(body)


def bump_status(conn: Conn, resource_id: str, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into a resource's status JSON (no version bump: status is not spec);
    a key ending in ``+`` adds to a counter."""

    def merge(status: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key.endswith("+"):
                key = key[:-1]
                status[key] = str(int(status.get(key, 0)) + int(value))
            else:
                status[key] = value

    edit_status(conn, resource_id, merge)


def edit_status(conn: Conn, resource_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Read a resource's status JSON, let ``edit`` change it in place, write it back (in the
    caller's transaction); nothing when the resource is gone."""
    found = conn.execute(_STATUS, {"b_id": resource_id}).scalar()  # every CreateExecution bumps its target's
    if found is None:
        return
    status = json.loads(found)
    edit(status)
    conn.execute(_SET_STATUS, {"b_id": resource_id, "status": dumps(status)})
