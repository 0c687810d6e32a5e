"""Tables of the local store: one per concern. Timestamps are integer microseconds since the epoch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "artifacts",
    "ddl",
    "execution_events",
    "execution_leases",
    "execution_secrets",
    "executions",
    "memories",
    "metadata",
    "resource_labels",
    "resource_versions",
    "resources",
    "schedule_fires",
    "schema_version",
    "secret_grants",
    "secret_owners",
    "secrets",
]

metadata = MetaData()

# An auto-increment key that is INTEGER PRIMARY KEY (the rowid) on SQLite and BIGINT elsewhere.
_PK = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", BigInteger, nullable=False),
)

resources = Table(
    "resources",
    metadata,
    Column("pk", _PK, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(253), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False),  # JSON object
    Column("spec", Text, nullable=False),  # JSON (proto JSON mapping of the spec)
    Column("status", Text, nullable=False),  # JSON (proto JSON mapping of the status)
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("kind", "slug", name="uq_resources_kind_slug"),
    Index("ix_resources_kind_pk", "kind", "pk"),
)

resource_labels = Table(
    "resource_labels",
    metadata,
    Column("resource_pk", BigInteger, nullable=False),
    Column("key", String(253), nullable=False),
    Column("value", String(253), nullable=False),
    PrimaryKeyConstraint("resource_pk", "key", name="pk_resource_labels"),
    Index("ix_resource_labels_key_value", "key", "value"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("resource_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # JSON of the whole resource at that version
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("resource_id", "version", name="pk_resource_versions"),
)

executions = Table(
    "executions",
    metadata,
    Column("pk", _PK, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("phase", Integer, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("spec", LargeBinary, nullable=False),  # serialized stigmer.v1.ExecutionSpec
    Column("status", LargeBinary, nullable=False),  # serialized stigmer.v1.ExecutionStatus
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_executions_target", "target_id", "pk"),
    Index("ix_executions_phase", "phase", "pk"),
    Index("ix_executions_session", "session_id", "pk"),
    Index("ix_executions_kind", "kind", "pk"),
)

execution_events = Table(
    "execution_events",
    metadata,
    Column("execution_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # serialized stigmer.v1.ExecutionEvent
    PrimaryKeyConstraint("execution_id", "sequence", name="pk_execution_events"),
    sqlite_with_rowid=False,  # one b-tree clustered by (execution, sequence): one page per append
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("description", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # version byte + nonce + AES-256-GCM output
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(253), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Added by schema version 2: run-time secrets of one execution, encrypted like stored secrets.
execution_secrets = Table(
    "execution_secrets",
    metadata,
    Column("execution_id", String(64), nullable=False),
    Column("name", String(253), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    PrimaryKeyConstraint("execution_id", "name", name="pk_execution_secrets"),
)

# Added by schema version 3 (trust on a shared server): who owns a secret, who may use it, who
# wrote each resource version and created each execution, and which runner holds an execution.
secret_owners = Table(
    "secret_owners",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("owner", String(253), nullable=False),  # a token name; "" = the admins'
)

secret_grants = Table(
    "secret_grants",
    metadata,
    Column("name", String(253), nullable=False),
    Column("grantee_kind", String(16), nullable=False),  # "token" or "role"
    Column("grantee", String(253), nullable=False),
    PrimaryKeyConstraint("name", "grantee_kind", "grantee", name="pk_secret_grants"),
)

authors = Table(
    "authors",
    metadata,
    # A resource id with its version, or an execution id with version 0.
    Column("object_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("author", String(253), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("object_id", "version", name="pk_authors"),
)

execution_leases = Table(
    "execution_leases",
    metadata,
    Column("execution_id", String(64), primary_key=True),
    # How the execution may be run: "server" (dispatched by the server), "caller" (started by the
    # runner holding its parent), or "" (no runner may claim it).
    Column("dispatch", String(16), nullable=False),
    Column("holder", String(64), nullable=False),  # the token id of the runner holding it; "" = none
    Column("renewed_at", BigInteger, nullable=False),
)

memories = Table(
    "memories",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("agent", String(253), nullable=False),
    Column("subject", String(253), nullable=False),
    Column("fact", Text, nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("execution_id", String(64), nullable=False),
    Column("tool_call_id", String(128), nullable=False),
    Column("author", String(253), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_memories_agent_subject", "agent", "subject", "pk"),
)

# One row per slot a Schedule fired (or skipped): the unique key makes each slot fire once, however
# many scheduler processes share the database.
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("schedule_id", String(64), nullable=False),
    Column("slot", BigInteger, nullable=False),  # the nominal fire time, microseconds
    Column("execution_id", String(64), nullable=False),  # "" when the slot was skipped
    Column("outcome", String(16), nullable=False),  # fired, skipped, buffered
    Column("fired_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("schedule_id", "slot", name="pk_schedule_fires"),
)

V1_TABLES = (
    schema_version,
    resources,
    resource_labels,
    resource_versions,
    executions,
    execution_events,
    secrets,
    artifacts,
)
V2_TABLES = (execution_secrets,)
V3_TABLES = (secret_owners, secret_grants, authors, execution_leases)
V4_TABLES = (memories,)
V5_TABLES = (schedule_fires,)


def ddl(tables: tuple[Table, ...], sqlite: bool) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` and ``CREATE INDEX IF NOT EXISTS`` of ``tables``, as text
    for SQLite or PostgreSQL."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect: Any = sqlite_dialect.dialect() if sqlite else postgresql.dialect()  # type: ignore[no-untyped-call]
    out: list[str] = []
    for table in tables:
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return out
