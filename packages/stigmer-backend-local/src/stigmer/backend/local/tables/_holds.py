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

from sqlalchemy import Connection, and_, or_, select, update
from stigmer.backend.local.tables import _schema as s
from stigmer.backend.local.tables._columns import now_us
from stigmer.proto.v1 import execution_pb2 as ex

__all__ = ["SERVER_ID_PREFIX", "Held", "expired", "hold", "renew", "take"]

#: The ids of servers: ``srv_`` and a ULID.
SERVER_ID_PREFIX = "srv_"

_leases = s.execution_leases
_ACTIVE = (ex.PHASE_PENDING, ex.PHASE_RUNNING)


@dataclass(frozen=True)
class Held:
    """A server's lease on an execution, as read before taking it over."""

    execution_id: str
    holder: str
    renewed_at: int


def hold(conn: Connection, execution_id: str, server: str, ttl_us: int, *, force: bool = False) -> bool:
    """Make ``server`` the holder of an execution the server runs: when nobody holds it, when
    ``server`` already does, when the lease has expired, or always with ``force`` (a server that
    resumes a paused run, e.g. after an approval it received). False when another server holds a
    live lease, or when the execution is not run by a server (then there is no lease to hold)."""
    now = now_us()
    condition = and_(_leases.c.execution_id == execution_id, _leases.c.dispatch == "server")
    if not force:
        condition = and_(
            condition,
            or_(
                _leases.c.holder.in_(("", server)),
                _leases.c.renewed_at < now - ttl_us,
            ),
        )
    result = conn.execute(update(_leases).where(condition).values(holder=server, renewed_at=now))
    return bool(result.rowcount == 1)


def renew(conn: Connection, server: str, execution_ids: Sequence[str]) -> set[str]:
    """Renew ``server``'s leases on ``execution_ids``; the ones it still holds (a missing one was
    taken over by another server while this one did not renew it in time)."""
    if not execution_ids:
        return set()
    ids = list(execution_ids)
    mine = and_(_leases.c.execution_id.in_(ids), _leases.c.holder == server)
    conn.execute(update(_leases).where(mine).values(renewed_at=now_us()))
    return {str(row[0]) for row in conn.execute(select(_leases.c.execution_id).where(mine))}


def expired(conn: Connection, server: str, ttl_us: int, *, own: bool = False) -> list[Held]:
    """The PENDING and RUNNING executions run by a server whose lease has expired (not renewed
    for ``ttl_us``), not held by ``server``; with ``own``, also every one ``server`` holds (it
    restarted: nothing of its former life runs them any more)."""
    stale = and_(_leases.c.holder != server, _leases.c.renewed_at < now_us() - ttl_us)
    rows = conn.execute(
        select(_leases.c.execution_id, _leases.c.holder, _leases.c.renewed_at)
        .select_from(_leases.join(s.executions, s.executions.c.id == _leases.c.execution_id))
        .where(
            _leases.c.dispatch == "server",
            _leases.c.holder.startswith(SERVER_ID_PREFIX, autoescape=True),
            s.executions.c.phase.in_(_ACTIVE),
            or_(stale, _leases.c.holder == server) if own else stale,
        )
        .order_by(_leases.c.renewed_at)
    ).all()
    return [Held(str(r.execution_id), str(r.holder), int(r.renewed_at)) for r in rows]


def take(conn: Connection, lease: Held, server: str) -> bool:
    """Take over ``lease`` for ``server`` if it is still as it was read: of all the servers that
    try at once, exactly one succeeds."""
    result = conn.execute(
        update(_leases)
        .where(
            _leases.c.execution_id == lease.execution_id,
            _leases.c.holder == lease.holder,
            _leases.c.renewed_at == lease.renewed_at,
        )
        .values(holder=server, renewed_at=now_us())
    )
    return bool(result.rowcount == 1)
