"""Which server runs an execution: a server's lease on the executions it runs itself.

A server without Temporal runs each execution it creates (``execution_leases.dispatch ==
"server"``) in a process of its own. Several such servers may share one database; each has an id
(``srv_…``) and holds the executions it runs with a lease in ``execution_leases`` (``holder`` =
its id, ``renewed_at`` = its last heartbeat). A server renews its leases periodically; another
server takes over a RUNNING (or PENDING) execution whose lease was not renewed for the lease's
time to live, with one conditional update (``… WHERE holder = old AND renewed_at = old``), so
exactly one server wins it; the runner it starts resumes from the execution's checkpoint.

Runner tokens hold executions offered to runner workers through the same table (see
``_grants.claim``); a server's id never looks like a token id (``tok_…``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stigmer.backend.local._db import Conn, in_list
from stigmer.backend.local.tables._columns import now_us
from stigmer.proto.v1 import execution_pb2 as ex

__all__ = ["SERVER_ID_PREFIX", "Held", "expired", "hold", "renew", "take"]

#: The ids of servers: ``srv_`` and a ULID.
SERVER_ID_PREFIX = "srv_"

#: ``holder LIKE`` this (with ``ESCAPE '/'``): the holders that are servers (``_`` is a wildcard
#: of LIKE, so it is escaped). A parameter, not a literal: a ``%`` is kept out of the SQL text.
_SERVER_HOLDER = SERVER_ID_PREFIX.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
_ACTIVE = (ex.PHASE_PENDING, ex.PHASE_RUNNING)


@dataclass(frozen=True)
class Held:
    """A server's lease on an execution, as read before taking it over."""

    execution_id: str
    holder: str
    renewed_at: int


def hold(conn: Conn, execution_id: str, server: str, ttl_us: int, *, force: bool = False) -> bool:
    """Make ``server`` the holder of an execution the server runs: when nobody holds it, when
    ``server`` already does, when the lease has expired, or always with ``force`` (a server that
    resumes a paused run, e.g. after an approval it received). False when another server holds a
    live lease, or when the execution is not run by a server (then there is no lease to hold)."""
    now = now_us()
    params: dict[str, object] = {"eid": execution_id, "server": server, "now": now}
    sql = (
        "UPDATE execution_leases SET holder = :server, renewed_at = :now "
        "WHERE execution_id = :eid AND dispatch = 'server'"
    )
    if not force:
        sql += " AND (holder IN ('', :server) OR renewed_at < :stale_before)"
        params["stale_before"] = now - ttl_us
    result = conn.execute(sql, params)
    return bool(result.rowcount == 1)


def renew(conn: Conn, server: str, execution_ids: Sequence[str]) -> set[str]:
    """Renew ``server``'s leases on ``execution_ids``; the ones it still holds (a missing one was
    taken over by another server while this one did not renew it in time)."""
    if not execution_ids:
        return set()
    ids, params = in_list("eid", execution_ids)
    mine = f"execution_id IN {ids} AND holder = :server"
    params["server"] = server
    conn.execute(f"UPDATE execution_leases SET renewed_at = :now WHERE {mine}", {**params, "now": now_us()})
    return {
        str(eid)
        for eid in conn.execute(f"SELECT execution_id FROM execution_leases WHERE {mine}", params).scalars()
    }


def expired(conn: Conn, server: str, ttl_us: int, *, own: bool = False) -> list[Held]:
    """The PENDING and RUNNING executions run by a server whose lease has expired (not renewed
    for ``ttl_us``), not held by ``server``; with ``own``, also every one ``server`` holds (it
    restarted: nothing of its former life runs them any more)."""
    phases, params = in_list("phase", _ACTIVE)
    params.update(server=server, stale_before=now_us() - ttl_us, server_holder=_SERVER_HOLDER)
    which = "l.holder != :server AND l.renewed_at < :stale_before"  # stale
    if own:
        which = f"{which} OR l.holder = :server"
    rows = conn.execute(
        "SELECT l.execution_id, l.holder, l.renewed_at "
        "FROM execution_leases AS l JOIN executions AS e ON e.id = l.execution_id "
        "WHERE l.dispatch = 'server' AND l.holder LIKE :server_holder ESCAPE '/' "
        f"AND e.phase IN {phases} AND ({which}) "
        "ORDER BY l.renewed_at",
        params,
    ).all()
    return [Held(str(r.execution_id), str(r.holder), int(r.renewed_at)) for r in rows]


def take(conn: Conn, lease: Held, server: str) -> bool:
    """Take over ``lease`` for ``server`` if it is still as it was read: of all the servers that
    try at once, exactly one succeeds."""
    result = conn.execute(
        "UPDATE execution_leases SET holder = :server, renewed_at = :now "
        "WHERE execution_id = :eid AND holder = :holder AND renewed_at = :renewed_at",
        {
            "server": server,
            "now": now_us(),
            "eid": lease.execution_id,
            "holder": lease.holder,
            "renewed_at": lease.renewed_at,
        },
    )
    return bool(result.rowcount == 1)
