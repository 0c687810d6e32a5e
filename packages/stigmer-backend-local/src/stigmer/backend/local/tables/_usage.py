"""Usage arithmetic: an execution's usage reports summed into its status and its session's."""

from __future__ import annotations

import json

from google.protobuf import json_format
from sqlalchemy import Connection, select, update
from stigmer.backend.local.tables import _schema as s
from stigmer.backend.local.tables._columns import dumps
from stigmer.proto.v1 import execution_pb2 as ex

__all__ = ["MAX_REQUEST_ENTRIES", "add_session_usage", "add_usage"]

#: Per-request usage entries kept in an execution's (or a session's) usage; the sums go on.
MAX_REQUEST_ENTRIES = 1000


def add_usage(into: ex.Usage, add: ex.Usage) -> None:
    """Add ``add`` to ``into``: counts and cost summed, per-request entries appended (the
    latest :data:`MAX_REQUEST_ENTRIES` kept)."""
    into.input_tokens += add.input_tokens
    into.output_tokens += add.output_tokens
    into.requests += add.requests
    into.tool_calls += add.tool_calls
    into.cost_usd += add.cost_usd
    into.cost_unknown = into.cost_unknown or add.cost_unknown
    if add.by_request:
        into.by_request.extend(add.by_request)
        if len(into.by_request) > MAX_REQUEST_ENTRIES:
            del into.by_request[: len(into.by_request) - MAX_REQUEST_ENTRIES]


def add_session_usage(conn: Connection, session_id: str, add: ex.Usage) -> None:
    """Add an execution's usage report to its session's ``status.usage`` (sums only: the
    per-request entries stay with each execution)."""
    row = conn.execute(select(s.resources.c.status).where(s.resources.c.id == session_id)).first()
    if row is None:
        return
    status = json.loads(row.status)
    usage = json_format.ParseDict(status.get("usage") or {}, ex.Usage(), ignore_unknown_fields=True)
    sums = ex.Usage()
    sums.CopyFrom(add)
    del sums.by_request[:]
    add_usage(usage, sums)
    status["usage"] = json_format.MessageToDict(usage)
    conn.execute(update(s.resources).where(s.resources.c.id == session_id).values(status=dumps(status)))
