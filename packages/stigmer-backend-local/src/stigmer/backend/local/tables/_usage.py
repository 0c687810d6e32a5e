"""Usage arithmetic: an execution's usage reports summed into its status and its session's."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from stigmer.backend.local._db import Conn
from stigmer.backend.local.tables._resources import edit_status
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


def add_session_usage(conn: Conn, session_id: str, add: ex.Usage) -> None:
    """Add an execution's usage report to its session's ``status.usage`` (sums only: the
    per-request entries stay with each execution)."""
    sums = ex.Usage()
    sums.CopyFrom(add)
    del sums.by_request[:]

    def add_to(status: dict[str, Any]) -> None:
        usage = json_format.ParseDict(status.get("usage") or {}, ex.Usage(), ignore_unknown_fields=True)
        add_usage(usage, sums)
        status["usage"] = json_format.MessageToDict(usage)

    edit_status(conn, session_id, add_to)
