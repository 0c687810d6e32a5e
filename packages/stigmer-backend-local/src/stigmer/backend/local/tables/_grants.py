"""Trust on a shared server: secret owners and grants, authors, and runner leases.

Every check here takes the caller from :func:`stigmer.core.current_principal`. Without one (the
embedded store in Lite mode: one person, no tokens) every check passes and nothing is recorded,
as before there were principals. The rules (docs/security.md):

- A secret has an owner (the token name that first set it; ``""`` for the admins') and grants (a
  token name or a role). Admins may use every secret; others only what they own or are granted.
- Applying a definition that declares a stored secret needs a grant for the principal applying it;
  the version it writes is authored by that principal. Starting a run checks again, against the
  author of the version the run pins (or, for a version with no recorded author, against the
  principal who starts the run).
- A runner gets an execution's context, reports its progress and starts child executions only for
  an execution it holds: a lease taken by its first call about an execution the server offered to
  runners, renewed by every call, and taken over by another runner only once it went stale.
  A token the server issued for one execution holds that execution and the executions it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from stigmer.backend.local._db import Prepared, prepared_for
from stigmer.backend.local.tables import _schema as s
from stigmer.backend.local.tables._columns import now_us
from stigmer.backend.local.tables._input import check_secret_name
from stigmer.core import InvalidArgument, NotFound, PermissionDenied, Principal
from stigmer.proto.v1 import secret_pb2

__all__ = [
    "LEASE_SECONDS",
    "Author",
    "author_of",
    "authors_of",
    "check_may_use",
    "check_owner",
    "check_parent_held",
    "claim",
    "denied_secrets",
    "describe_metadata",
    "dispatch_of",
    "forget_secret",
    "grant",
    "grants_of",
    "may_use",
    "owner_for_new_secret",
    "owner_of",
    "record_author",
    "record_lease",
    "revoke",
    "set_owner",
]

#: A runner's lease on an execution lapses when it has not called about it for this long; then
#: another runner (a Temporal worker that took over the work) may take it.
LEASE_SECONDS = 120

_ROLES = ("admin", "user", "runner")


@dataclass(frozen=True)
class Author:
    """Who wrote a resource version or created an execution."""

    name: str
    role: str


# ---------------------------------------------------------------------------------------------
# owners and grants


def owner_of(conn: Connection, name: str) -> str:
    """The owner (token name) of secret ``name``; ``""`` for the admins'."""
    return _owners(conn, [name]).get(name, "")


def _owners(conn: Connection, names: Iterable[str]) -> dict[str, str]:
    """``name -> owner`` of the secrets among ``names`` that have one (the rest are the admins')."""
    o = s.secret_owners
    return {
        r.name: str(r.owner)
        for r in conn.execute(select(o.c.name, o.c.owner).where(o.c.name.in_(list(names))))
    }


def set_owner(conn: Connection, name: str, owner: str) -> None:
    t = s.secret_owners
    conn.execute(delete(t).where(t.c.name == name))
    if owner:
        conn.execute(insert(t).values(name=name, owner=owner))


def forget_secret(conn: Connection, name: str) -> None:
    """Drop the owner and grants of a deleted secret (a later secret of that name starts afresh)."""
    conn.execute(delete(s.secret_owners).where(s.secret_owners.c.name == name))
    conn.execute(delete(s.secret_grants).where(s.secret_grants.c.name == name))


def grants_of(conn: Connection, names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``name -> [(kind, grantee), ...]`` for the given secrets."""
    wanted = list(dict.fromkeys(names))
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in wanted}
    if not wanted:
        return out
    g = s.secret_grants
    rows = conn.execute(
        select(g.c.name, g.c.grantee_kind, g.c.grantee)
        .where(g.c.name.in_(wanted))
        .order_by(g.c.name, g.c.grantee_kind, g.c.grantee)
    )
    for row in rows:
        out[row.name].append((row.grantee_kind, row.grantee))
    return out


def describe_metadata(conn: Connection, metas: Sequence[secret_pb2.SecretMetadata]) -> None:
    """Fill ``owner`` and ``grants`` of each secret's metadata in place."""
    if not metas:
        return
    names = [m.name for m in metas]
    owners = _owners(conn, names)
    grants = grants_of(conn, names)
    for meta in metas:
        meta.owner = owners.get(meta.name, "")
        for kind, grantee in grants.get(meta.name, []):
            if kind == "token":
                meta.grants.add(token_name=grantee)
            else:
                meta.grants.add(role=grantee)


def may_use(principal: Principal | Author, owner: str, grants: Sequence[tuple[str, str]]) -> bool:
    if principal.role == "admin":
        return True
    if owner and owner == principal.name:
        return True
    return ("token", principal.name) in grants or ("role", principal.role) in grants


def denied_secrets(conn: Connection, who: Principal | Author, names: Iterable[str]) -> list[str]:
    """The stored secrets among ``names`` that ``who`` may not use (secrets not stored are skipped:
    there is nothing to read yet, and a run checks again when it starts)."""
    wanted = sorted(set(names))
    if not wanted or who.role == "admin":
        return []
    t = s.secrets
    stored = {r.name for r in conn.execute(select(t.c.name).where(t.c.name.in_(wanted)))}
    if not stored:
        return []
    owners = _owners(conn, stored)
    grants = grants_of(conn, stored)
    return [n for n in wanted if n in stored and not may_use(who, owners.get(n, ""), grants[n])]


def check_may_use(conn: Connection, who: Principal | Author, names: Iterable[str], what: str) -> None:
    """Raise PermissionDenied naming the first secret ``who`` may not use for ``what``."""
    denied = denied_secrets(conn, who, names)
    if denied:
        name = denied[0]
        subject = (
            who.describe() if isinstance(who, Principal) else f"its author {who.name!r} (role {who.role})"
        )
        raise PermissionDenied(
            f"{what} uses secret {name}, which is not granted to {subject}; the secret's owner or an admin "
            f"can grant it with `stigmer secret grant {name} --to {who.name or '<token name>'}`"
            + (f" (also denied: {', '.join(denied[1:])})" if len(denied) > 1 else "")
        )


def check_owner(conn: Connection, principal: Principal | None, name: str, action: str) -> None:
    """Only the owner of a secret or an admin may ``action`` it (set, delete, grant, revoke)."""
    if principal is None or principal.is_admin:
        return
    owner = owner_of(conn, name)
    if owner != principal.name:
        whose = f"token {owner!r}" if owner else "the admins"
        raise PermissionDenied(
            f"secret {name} belongs to {whose}; {principal.describe()} may not {action} it "
            "(ask its owner or an admin)"
        )


def _grantee(grant: secret_pb2.SecretGrant) -> tuple[str, str]:
    if bool(grant.token_name) == bool(grant.role):
        raise InvalidArgument("a grant names either a token name or a role, not both or neither", ["grant"])
    if grant.role:
        if grant.role not in _ROLES:
            raise InvalidArgument(
                f"unknown role {grant.role!r}; choose one of: {', '.join(_ROLES)}", ["grant.role"]
            )
        return "role", grant.role
    name = grant.token_name.strip()
    if not name or len(name) > 253 or not name.isprintable():
        raise InvalidArgument("the token name of a grant must be printable text", ["grant.token_name"])
    return "token", name


def _existing(conn: Connection, name: str) -> str:
    name = check_secret_name(name)
    if conn.execute(select(s.secrets.c.name).where(s.secrets.c.name == name)).first() is None:
        raise NotFound(f"secret {name} does not exist; list them with `stigmer secret list`")
    return name


def grant(conn: Connection, principal: Principal | None, name: str, who: secret_pb2.SecretGrant) -> str:
    """Add a grant (idempotent); returns the secret's name."""
    return _change_grant(conn, principal, name, who, add=True)


def revoke(conn: Connection, principal: Principal | None, name: str, who: secret_pb2.SecretGrant) -> str:
    """Remove a grant (idempotent); returns the secret's name."""
    return _change_grant(conn, principal, name, who, add=False)


def _change_grant(
    conn: Connection, principal: Principal | None, name: str, who: secret_pb2.SecretGrant, add: bool
) -> str:
    name = _existing(conn, name)
    kind, grantee = _grantee(who)
    check_owner(conn, principal, name, "grant" if add else "revoke grants of")
    g = s.secret_grants
    match = (g.c.name == name, g.c.grantee_kind == kind, g.c.grantee == grantee)
    conn.execute(delete(g).where(*match))
    if add:
        conn.execute(insert(g).values(name=name, grantee_kind=kind, grantee=grantee))
    return name


# ---------------------------------------------------------------------------------------------
# authors


def record_author(conn: Connection, object_id: str, version: int, who: Principal | Author | None) -> None:
    if who is None:
        return
    st = prepared_for(conn, _AuthorStatements)  # every CreateExecution writes one
    st.delete.run(conn, {"b_object": object_id, "b_version": version}).close()  # type: ignore[attr-defined]
    st.insert.run(  # type: ignore[attr-defined]
        conn, {"object_id": object_id, "version": version, "author": who.name, "role": who.role}
    ).close()


_DELETE_AUTHOR = delete(s.authors).where(
    s.authors.c.object_id == bindparam("b_object"), s.authors.c.version == bindparam("b_version")
)


_SELECT_AUTHOR = select(s.authors.c.author, s.authors.c.role).where(
    s.authors.c.object_id == bindparam("b_object"), s.authors.c.version == bindparam("b_version")
)


class _AuthorStatements:
    def __init__(self, dialect: Any) -> None:
        self.delete = Prepared(_DELETE_AUTHOR, dialect)
        self.insert = Prepared(insert(s.authors), dialect, ["object_id", "version", "author", "role"])
        self.select = Prepared(_SELECT_AUTHOR, dialect)


def author_of(conn: Connection, object_id: str, version: int) -> Author | None:
    st = prepared_for(conn, _AuthorStatements)  # every CreateExecution asks
    cur: Any = st.select.run(conn, {"b_object": object_id, "b_version": version})
    try:
        row = cur.fetchone()
    finally:
        cur.close()
    return None if row is None else Author(row[0], row[1])


def authors_of(conn: Connection, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """``(object id, version) -> author name`` for those that have one.

    A version's author is written in the transaction that writes the version and never changes
    (ids are never reused), so answers, "no author" included, are remembered for the process.
    """
    if not keys:
        return {}
    out: dict[tuple[str, int], str] = {}
    missing: set[tuple[str, int]] = set()
    for key in keys:
        known = _AUTHORS.get(key)
        if known is None:
            missing.add(key)
        elif known:
            out[key] = known
    if missing:
        a = s.authors
        ids = sorted({k[0] for k in missing})
        rows = conn.execute(select(a.c.object_id, a.c.version, a.c.author).where(a.c.object_id.in_(ids)))
        found = {(r.object_id, r.version): str(r.author) for r in rows}
        if len(_AUTHORS) + len(missing) > _AUTHORS_MAX:
            _AUTHORS.clear()
        for key in missing:
            author = found.get(key, "")
            _AUTHORS[key] = author
            if author:
                out[key] = author
    return out


_AUTHORS: dict[tuple[str, int], str] = {}
_AUTHORS_MAX = 16384


# ---------------------------------------------------------------------------------------------
# runner leases


def record_lease(conn: Connection, execution_id: str, dispatch: str, holder: str = "") -> None:
    values = {"execution_id": execution_id, "dispatch": dispatch, "holder": holder, "renewed_at": now_us()}
    prepared_for(conn, _LeaseStatements).insert.run(conn, values).close()  # type: ignore[attr-defined]


def dispatch_of(conn: Connection, execution_id: str) -> str:
    """How an execution may be run (see ``execution_leases.dispatch``); "" when unrecorded."""
    row = conn.execute(
        select(s.execution_leases.c.dispatch).where(s.execution_leases.c.execution_id == execution_id)
    ).first()
    return "" if row is None else str(row.dispatch)


def _in_tree(conn: Connection, execution_id: str, root: str) -> bool:
    """Whether ``execution_id`` is ``root`` or one of the executions it started (at any depth)."""
    from stigmer.proto.v1 import execution_pb2 as ex

    current, seen = execution_id, 0
    while current and seen < 64:
        if current == root:
            return True
        row = conn.execute(select(s.executions.c.spec).where(s.executions.c.id == current)).first()
        if row is None:
            return False
        current = ex.ExecutionSpec.FromString(row.spec).parent_execution_id
        seen += 1
    return False


_leases = s.execution_leases
_LEASE = select(_leases.c.dispatch, _leases.c.holder, _leases.c.renewed_at).where(
    _leases.c.execution_id == bindparam("eid")
)
_RENEW = (
    update(_leases).where(_leases.c.execution_id == bindparam("eid")).values(renewed_at=bindparam("b_now"))
)
_TAKE = (
    update(_leases)
    .where(_leases.c.execution_id == bindparam("eid"))
    .values(holder=bindparam("b_holder"), renewed_at=bindparam("b_now"))
)


class _LeaseStatements:
    """The lease statements, compiled once per dialect."""

    def __init__(self, dialect: Any) -> None:
        self.select = Prepared(_LEASE, dialect)
        self.renew = Prepared(_RENEW, dialect)
        self.take = Prepared(_TAKE, dialect)
        columns = ["execution_id", "dispatch", "holder", "renewed_at"]
        self.insert = Prepared(insert(s.execution_leases), dialect, columns)


def claim(conn: Connection, principal: Principal | None, execution_id: str, action: str) -> None:
    """Let a runner ``action`` an execution only while it holds it (taking a free lease)."""
    if principal is None or principal.role != "runner":
        return
    if principal.execution_id:
        if not _in_tree(conn, execution_id, principal.execution_id):
            raise PermissionDenied(
                f"{principal.describe()} may not {action} execution {execution_id}: "
                "a run's token reaches only its own execution and the executions it started"
            )
        return
    # Every progress report of a runner passes here: prepared statements (see _LeaseStatements).
    st = prepared_for(conn, _LeaseStatements)
    cur: Any = st.select.run(conn, {"eid": execution_id})
    lease = cur.fetchone()
    cur.close()
    now = now_us()
    if lease is None or lease[0] not in ("runners", "caller"):
        raise PermissionDenied(
            f"{principal.describe()} may not {action} execution {execution_id}: it was not offered to runner "
            "workers (the server runs it itself, or it predates runner leases)"
        )
    _dispatch, holder, renewed_at = lease
    if holder == principal.token_id:
        if now - renewed_at > 5_000_000:  # renew at most every 5 s: leases are coarse
            st.renew.run(conn, {"eid": execution_id, "b_now": now}).close()  # type: ignore[attr-defined]
        return
    if holder and now - renewed_at < LEASE_SECONDS * 1_000_000:
        raise PermissionDenied(
            f"execution {execution_id} is held by another runner ({holder}); {principal.describe()} "
            f"may take it over only after {LEASE_SECONDS} s without word from that runner"
        )
    st.take.run(conn, {"eid": execution_id, "b_holder": principal.token_id, "b_now": now}).close()  # type: ignore[attr-defined]


def check_parent_held(conn: Connection, principal: Principal | None, parent_id: str) -> None:
    """A runner starts executions only under an execution it holds."""
    if principal is None or principal.role != "runner":
        return
    if not parent_id:
        raise PermissionDenied(
            f"{principal.describe()} may start an execution only as the child of an execution it runs "
            "(spec.parent_execution_id)"
        )
    claim(conn, principal, parent_id, "start children of")


def owner_for_new_secret(principal: Principal | None) -> str:
    return "" if principal is None or principal.is_admin else principal.name
