"""Schema migrations: a ``schema_version`` table and ordered migration functions.

Every database starts at version 0 and runs each pending migration in order, in one write
transaction (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so several
processes opening a new database at once migrate it exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, func, insert, select
from stigmer.backend.local._db import Database
from stigmer.backend.local.tables import _schema as s
from stigmer.core import FailedPrecondition

__all__ = ["MIGRATIONS", "current_version", "migrate"]

log = logging.getLogger(__name__)

_PG_LOCK_KEY = 0x5715_3E12


def _v1_initial(conn: Connection) -> None:
    """The first schema: resources, versions, labels, executions, events, secrets, artifacts."""
    for table in s.V1_TABLES:
        table.create(conn, checkfirst=True)


def _v2_execution_secrets(conn: Connection) -> None:
    """Run-time secrets of one execution (``stigmer run --secret``), encrypted at rest."""
    for table in s.V2_TABLES:
        table.create(conn, checkfirst=True)


def _v3_trust(conn: Connection) -> None:
    """Secret owners and grants, authors of resource versions and executions, runner leases."""
    for table in s.V3_TABLES:
        table.create(conn, checkfirst=True)


def _v4_memories(conn: Connection) -> None:
    """Agents' memories, with a full-text index of their facts (FTS5 on SQLite, a GIN-indexed
    tsvector on PostgreSQL; English stemming on both)."""
    for table in s.V4_TABLES:
        table.create(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
            "fact, content='memories', content_rowid='pk', tokenize='porter unicode61')"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN "
            "INSERT INTO memories_fts(rowid, fact) VALUES (new.pk, new.fact); END"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN "
            "INSERT INTO memories_fts(memories_fts, rowid, fact) VALUES ('delete', old.pk, old.fact); END"
        )
    else:
        conn.exec_driver_sql(
            "ALTER TABLE memories ADD COLUMN IF NOT EXISTS fts tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', fact)) STORED"
        )
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_memories_fts ON memories USING GIN (fts)")


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_execution_secrets),
    (3, _v3_trust),
    (4, _v4_memories),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    return int(conn.execute(select(func.max(s.schema_version.c.version))).scalar() or 0)


def migrate(db: Database, target: int | None = None) -> int:
    """Bring the database to ``target`` (default: the latest version); returns the version."""
    goal = LATEST if target is None else target
    with db.read() as conn:  # the common case: already current, no write lock needed
        version = current_version(conn)
    if version == goal:
        return version
    with db.write() as conn:
        if not db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        version = current_version(conn)
        if version > LATEST:
            raise FailedPrecondition(
                f"the database is at schema version {version}, newer than this stigmer-backend-local "
                f"understands ({LATEST}); upgrade stigmer-backend-local"
            )
        for number, step in MIGRATIONS:
            if version < number <= goal:
                log.info("migrating the database to schema version %d (%s)", number, step.__name__)
                step(conn)
                conn.execute(
                    insert(s.schema_version).values(version=number, applied_at=int(time.time() * 1e6))
                )
                version = number
    return version
