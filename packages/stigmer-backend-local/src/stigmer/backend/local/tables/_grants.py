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

from stigmer.backend.local._db import Conn, in_list
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


def owner_of(conn: Conn, name: str) -> str:
    """The owner (token name) of secret ``name``; ``""`` for the admins'."""
    return _owners(conn, [name]).get(name, "")


def _owners(conn: Conn, names: Iterable[str]) -> dict[str, str]:
    """``name -> owner`` of the secrets among ``names`` that have one (the rest are the admins')."""
    wanted, params = in_list("name", names)
    return {
        r.name: str(r.owner)
        for r in conn.execute(f"SELECT name, owner FROM secret_owners WHERE name IN {wanted}", params)
    }


def set_owner(conn: Conn, name: str, owner: str) -> None:
    conn.execute("DELETE FROM secret_owners WHERE name = :name", {"name": name})
    if owner:
        conn.execute(
            "INSERT INTO secret_owners (name, owner) VALUES (:name, :owner)", {"name": name, "owner": owner}
        )


def forget_secret(conn: Conn, name: str) -> None:
    """Drop the owner and grants of a deleted secret (a later secret of that name starts afresh)."""
    conn.execute("DELETE FROM secret_owners WHERE name = :name", {"name": name})
    conn.execute("DELETE FROM secret_grants WHERE name = :name", {"name": name})


def grants_of(conn: Conn, names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``name -> [(kind, grantee), ...]`` for the given secrets."""
    wanted = list(dict.fromkeys(names))
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in wanted}
    if not wanted:
        return out
    names_in, params = in_list("name", wanted)
    rows = conn.execute(
        "SELECT name, grantee_kind, grantee FROM secret_grants "
        f"WHERE name IN {names_in} ORDER BY name, grantee_kind, grantee",
        params,
    )
    for row in rows:
        out[row.name].append((row.grantee_kind, row.grantee))
    return out


def describe_metadata(conn: Conn, metas: Sequence[secret_pb2.SecretMetadata]) -> None:
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


def denied_secrets(conn: Conn, who: Principal | Author, names: Iterable[str]) -> list[str]:
    """The stored secrets among ``names`` that ``who`` may not use (secrets not stored are skipped:
    there is nothing to read yet, and a run checks again when it starts)."""
    wanted = sorted(set(names))
    if not wanted or who.role == "admin":
        return []
    names_in, params = in_list("name", wanted)
    stored = set(conn.execute(f"SELECT name FROM secrets WHERE name IN {names_in}", params).scalars())
    if not stored:
        return []
    owners = _owners(conn, stored)
    grants = grants_of(conn, stored)
    return [n for n in wanted if n in stored and not may_use(who, owners.get(n, ""), grants[n])]


def check_may_use(conn: Conn, who: Principal | Author, names: Iterable[str], what: str) -> None:
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


def check_owner(conn: Conn, principal: Principal | None, name: str, action: str) -> None:
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


def _existing(conn: Conn, name: str) -> str:
    name = check_secret_name(name)
    if conn.execute("SELECT name FROM secrets WHERE name = :name", {"name": name}).first() is None:
        raise NotFound(f"secret {name} does not exist; list them with `stigmer secret list`")
    return name


def grant(conn: Conn, principal: Principal | None, name: str, who: secret_pb2.SecretGrant) -> str:
    """Add a grant (idempotent); returns the secret's name."""
    return _change_grant(conn, principal, name, who, add=True)


def revoke(conn: Conn, principal: Principal | None, name: str, who: secret_pb2.SecretGrant) -> str:
    """Remove a grant (idempotent); returns the secret's name."""
    return _change_grant(conn, principal, name, who, add=False)


def _change_grant(
    conn: Conn, principal: Principal | None, name: str, who: secret_pb2.SecretGrant, add: bool
) -> str:
    name = _existing(conn, name)
    kind, grantee = _grantee(who)
    check_owner(conn, principal, name, "grant" if add else "revoke grants of")
    row = {"name": name, "grantee_kind": kind, "grantee": grantee}
    conn.execute(
        "DELETE FROM secret_grants "
        "WHERE name = :name AND grantee_kind = :grantee_kind AND grantee = :grantee",
        row,
    )
    if add:
        conn.execute(
            "INSERT INTO secret_grants (name, grantee_kind, grantee) VALUES (:name, :grantee_kind, :grantee)",
            row,
        )
    return name


# ---------------------------------------------------------------------------------------------
# authors


def record_author(conn: Conn, object_id: str, version: int, who: Principal | Author | None) -> None:
    if who is None:
        return
    key = {"object_id": object_id, "version": version}  # every CreateExecution writes one
    conn.execute(_DELETE_AUTHOR, key)
    conn.execute(_INSERT_AUTHOR, {**key, "author": who.name, "role": who.role})


_DELETE_AUTHOR = "DELETE FROM authors WHERE object_id = :object_id AND version = :version"
_INSERT_AUTHOR = (
    "INSERT INTO authors (object_id, version, author, role) VALUES (:object_id, :version, :author, :role)"
)
_SELECT_AUTHOR = "SELECT author, role FROM authors WHERE object_id = :object_id AND version = :version"


def author_of(conn: Conn, object_id: str, version: int) -> Author | None:
    # every CreateExecution asks
    row = conn.execute(_SELECT_AUTHOR, {"object_id": object_id, "version": version}).first()
    return None if row is None else Author(row[0], row[1])


def authors_of(conn: Conn, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
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
        ids, params = in_list("object_id", sorted({k[0] for k in missing}))
        rows = conn.execute(
            f"SELECT object_id, version, author FROM authors WHERE object_id IN {ids}", params
        )
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


def record_lease(conn: Conn, execution_id: str, dispatch: str, holder: str = "") -> None:
    values = {"execution_id": execution_id, "dispatch": dispatch, "holder": holder, "renewed_at": now_us()}
    conn.execute(_INSERT_LEASE, values)


def dispatch_of(conn: Conn, execution_id: str) -> str:
    """How an execution may be run (see ``execution_leases.dispatch``); "" when unrecorded."""
    row = conn.execute(
        "SELECT dispatch FROM execution_leases WHERE execution_id = :eid", {"eid": execution_id}
    ).first()
    return "" if row is None else str(row.dispatch)


def _in_tree(conn: Conn, execution_id: str, root: str) -> bool:
    """Whether ``execution_id`` is ``root`` or one of the executions it started (at any depth)."""
    from stigmer.proto.v1 import execution_pb2 as ex

    current, seen = execution_id, 0
    while current and seen < 64:
        if current == root:
            return True
        row = conn.execute("SELECT spec FROM executions WHERE id = :id", {"id": current}).first()
        if row is None:
            return False
        current = ex.ExecutionSpec.FromString(row.spec).parent_execution_id
        seen += 1
    return False


_LEASE = "SELECT dispatch, holder, renewed_at FROM execution_leases WHERE execution_id = :eid"
_RENEW = "UPDATE execution_leases SET renewed_at = :now WHERE execution_id = :eid"
_TAKE = "UPDATE execution_leases SET holder = :holder, renewed_at = :now WHERE execution_id = :eid"
_INSERT_LEASE = (
    "INSERT INTO execution_leases (execution_id, dispatch, holder, renewed_at) "
    "VALUES (:execution_id, :dispatch, :holder, :renewed_at)"
)


def claim(conn: Conn, principal: Principal | None, execution_id: str, action: str) -> None:
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
    # Every progress report of a runner passes here: one short read, and a write only when due.
    lease = conn.execute(_LEASE, {"eid": execution_id}).first()
    now = now_us()
    if lease is None or lease[0] not in ("runners", "caller"):
        raise PermissionDenied(
            f"{principal.describe()} may not {action} execution {execution_id}: it was not offered to runner "
            "workers (the server runs it itself, or it predates runner leases)"
        )
    _dispatch, holder, renewed_at = lease
    if holder == principal.token_id:
        if now - renewed_at > 5_000_000:  # renew at most every 5 s: leases are coarse
            conn.execute(_RENEW, {"eid": execution_id, "now": now})
        return
    if holder and now - renewed_at < LEASE_SECONDS * 1_000_000:
        raise PermissionDenied(
            f"execution {execution_id} is held by another runner ({holder}); {principal.describe()} "
            f"may take it over only after {LEASE_SECONDS} s without word from that runner"
        )
    conn.execute(_TAKE, {"eid": execution_id, "holder": principal.token_id, "now": now})


def check_parent_held(conn: Conn, principal: Principal | None, parent_id: str) -> None:
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
