"""Memories: facts agents remember across sessions, found again by full-text search.

A memory belongs to an agent and may be about a subject (a user, a team). A runner may write,
search and forget only the memories of the agent its execution runs; users and admins read and
forget any. Search matches any word of the query (English stemming: FTS5 with the porter tokenizer
on SQLite, a ``tsvector`` on PostgreSQL) and orders by relevance (bm25 / ``ts_rank``).
"""

from __future__ import annotations

import re
from typing import Any

from stigmer.backend.local._db import Conn
from stigmer.backend.local.tables._columns import now_us, timestamp
from stigmer.backend.local.tables._grants import claim
from stigmer.backend.local.tables._input import q
from stigmer.backend.local.tables._paging import decode_token, encode_token, page_size
from stigmer.core import API_VERSION, InvalidArgument, NotFound, PermissionDenied, Principal
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import memory_pb2, meta_pb2

__all__ = ["create", "delete_memory", "get", "list_memories"]

MAX_FACT_CHARS = 4000
_WORD = re.compile(r"\w+", re.UNICODE)
#: Words too common to say what a query is about (ignored on both databases, as PostgreSQL's
#: English configuration ignores its own list).
_STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
#: Every column of ``memories`` (in the table's order; not PostgreSQL's generated ``fts``), each
#: named with its table, as the full-text search joins a table with a ``fact`` column of its own.
_COLUMNS = ", ".join(
    f"memories.{c}"
    for c in (
        "pk",
        "id",
        "agent",
        "subject",
        "fact",
        "session_id",
        "execution_id",
        "tool_call_id",
        "author",
        "created_at",
    )
)
_INSERT = (
    "INSERT INTO memories "
    "(id, agent, subject, fact, session_id, execution_id, tool_call_id, author, created_at) "
    "VALUES (:id, :agent, :subject, :fact, :session_id, :execution_id, :tool_call_id, :author, :created_at)"
)
_BY_ID = f"SELECT {_COLUMNS} FROM memories WHERE memories.id = :id"


def _new_id() -> str:
    from ulid import ULID

    return f"mem_{str(ULID()).lower()}"


def _runner_agent(conn: Conn, principal: Principal | None, execution_id: str) -> str | None:
    """The agent whose memories a runner principal may reach: that of the agent run it asks for
    (``execution_id``, or its token's own), which it must hold. None: not a runner, no restriction."""
    if principal is None or principal.role != "runner":
        return None
    eid = execution_id or principal.execution_id
    if not eid:
        raise PermissionDenied(
            f"{principal.describe()} uses memories on behalf of an agent run it holds: name the run (execution_id)"
        )
    claim(conn, principal, eid, "use the memories of")
    row = conn.execute("SELECT kind, spec FROM executions WHERE id = :id", {"id": eid}).first()
    if row is None or row.kind != "AgentExecution":
        raise PermissionDenied(f"memories belong to agents: execution {eid} is no agent run")
    return str(ex.ExecutionSpec.FromString(row.spec).target.name)


def _check_agent(conn: Conn, principal: Principal | None, agent: str, execution_id: str) -> None:
    allowed = _runner_agent(conn, principal, execution_id)
    if allowed is not None and agent != allowed:
        raise PermissionDenied(f"this runner may use the memories of agent {allowed!r} only, not {agent!r}")


def _message(row: Any, score: float = 0.0) -> memory_pb2.Memory:
    out = memory_pb2.Memory(
        api_version=API_VERSION,
        kind="Memory",
        metadata=meta_pb2.Metadata(id=row.id, author=row.author),
        spec=memory_pb2.MemorySpec(
            agent=row.agent,
            subject=row.subject,
            fact=row.fact,
            provenance=memory_pb2.MemoryProvenance(
                session_id=row.session_id, execution_id=row.execution_id, tool_call_id=row.tool_call_id
            ),
        ),
        score=score,
    )
    out.metadata.created_at.CopyFrom(timestamp(row.created_at))
    out.metadata.updated_at.CopyFrom(timestamp(row.created_at))
    return out


def create(conn: Conn, request: svc.CreateMemoryRequest, principal: Principal | None) -> memory_pb2.Memory:
    spec = request.spec
    if not spec.agent:
        raise InvalidArgument("a memory needs spec.agent (the agent it belongs to)", ["spec.agent"])
    fact = spec.fact.strip()
    if not fact:
        raise InvalidArgument("a memory needs spec.fact", ["spec.fact"])
    if len(fact) > MAX_FACT_CHARS:
        raise InvalidArgument(
            f"spec.fact has {len(fact):,} characters; a memory holds at most {MAX_FACT_CHARS:,}",
            ["spec.fact"],
        )
    provenance = spec.provenance
    _check_agent(conn, principal, spec.agent, provenance.execution_id)
    if principal is not None and principal.role == "runner" and not provenance.execution_id:
        provenance.execution_id = principal.execution_id
    values = {
        "id": _new_id(),
        "agent": spec.agent,
        "subject": spec.subject,
        "fact": fact,
        "session_id": provenance.session_id,
        "execution_id": provenance.execution_id,
        "tool_call_id": provenance.tool_call_id,
        "author": principal.name if principal is not None else "",
        "created_at": now_us(),
    }
    conn.execute(_INSERT, values)
    row = conn.execute(_BY_ID, {"id": values["id"]}).one()
    return _message(row)


def _find(conn: Conn, memory_id: str, principal: Principal | None, execution_id: str) -> Any:
    allowed = _runner_agent(conn, principal, execution_id)
    row = conn.execute(_BY_ID, {"id": memory_id}).first()
    if row is None or (allowed is not None and row.agent != allowed):
        # another agent's memory is not there for this runner (its id says nothing more)
        raise NotFound(f"memory {q(memory_id)} does not exist; list them with `stigmer memory list`")
    return row


def get(conn: Conn, request: svc.GetMemoryRequest, principal: Principal | None) -> memory_pb2.Memory:
    return _message(_find(conn, request.id, principal, request.execution_id))


def delete_memory(
    conn: Conn, request: svc.DeleteMemoryRequest, principal: Principal | None
) -> memory_pb2.Memory:
    row = _find(conn, request.id, principal, request.execution_id)
    conn.execute("DELETE FROM memories WHERE pk = :pk", {"pk": row.pk})
    return _message(row)


def list_memories(
    conn: Conn, request: svc.ListMemoriesRequest, principal: Principal | None
) -> svc.ListMemoriesResponse:
    allowed = _runner_agent(conn, principal, request.execution_id)
    if allowed is not None:
        if request.agent and request.agent != allowed:
            raise PermissionDenied(
                f"this runner may use the memories of agent {allowed!r} only, not {request.agent!r}"
            )
        agent = allowed
    else:
        agent = request.agent
    size = page_size(request.page_size)
    conds: list[str] = []
    params: dict[str, Any] = {}
    if agent:
        conds.append("memories.agent = :agent")
        params["agent"] = agent
    if request.subject:
        subject = "memories.subject = :subject"
        conds.append(f"({subject} OR memories.subject = '')" if request.include_general else subject)
        params["subject"] = request.subject
    if request.query.strip():
        return _search(conn, request.query, conds, params, size)
    if request.page_token:
        conds.append("memories.pk < :before")
        params["before"] = decode_token(request.page_token, "m")
    where = " WHERE " + " AND ".join(conds) if conds else ""
    params["limit"] = size + 1
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM memories{where} ORDER BY memories.pk DESC LIMIT :limit", params
    ).all()
    more = len(rows) > size
    rows = rows[:size]
    return svc.ListMemoriesResponse(
        memories=[_message(r) for r in rows],
        next_page_token=encode_token("m", rows[-1].pk) if more else "",
    )


def _search(
    conn: Conn, query: str, conds: list[str], params: dict[str, Any], size: int
) -> svc.ListMemoriesResponse:
    """The memories matching any word of ``query`` (and ``conds``, with their ``params``), most
    relevant first."""
    words = [w for w in dict.fromkeys(w.lower() for w in _WORD.findall(query)) if w not in _STOP_WORDS][:32]
    if not words:
        return svc.ListMemoriesResponse()
    params = {**params, "limit": size}
    if conn.is_sqlite:
        params["match"] = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
        sql = (
            f"SELECT {_COLUMNS}, -bm25(memories_fts) AS score "
            "FROM memories JOIN memories_fts ON memories_fts.rowid = memories.pk "
            "WHERE " + " AND ".join(["memories_fts MATCH :match", *conds])
        )
    else:
        params.update({f"w{i}": w for i, w in enumerate(words)})
        tsquery = " || ".join(f"plainto_tsquery('english', :w{i})" for i in range(len(words)))
        sql = (
            f"SELECT {_COLUMNS}, ts_rank(memories.fts, {tsquery}) AS score FROM memories "
            "WHERE " + " AND ".join([f"memories.fts @@ ({tsquery})", *conds])
        )
    rows = conn.execute(sql + " ORDER BY score DESC, memories.pk DESC LIMIT :limit", params).all()
    return svc.ListMemoriesResponse(memories=[_message(r, float(r.score)) for r in rows])
