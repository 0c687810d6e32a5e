"""Schema migrations: a ``schema_version`` table and ordered migration functions.

Every database starts at version 0 and runs each pending migration in order, in one write
transaction (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so several
processes opening a new database at once migrate it exactly once.

The tables are declared in ``_schema`` (SQLAlchemy ``Table`` objects, imported only to migrate),
from which each migration's ``CREATE TABLE``/``CREATE INDEX`` text is compiled for the database.
Opening a current database reads one row with plain SQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stigmer.backend.local._db import Conn, Database
from stigmer.core import FailedPrecondition

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = ["MIGRATIONS", "current_version", "migrate"]

log = logging.getLogger(__name__)

_PG_LOCK_KEY = 0x5715_3E12


def _v1_initial(conn: Conn) -> None:
    """The first schema: resources, versions, labels, executions, events, secrets, artifacts."""
    _create(conn, "V1_TABLES")


def _v2_execution_secrets(conn: Conn) -> None:
    """Run-time secrets of one execution (``stigmer run --secret``), encrypted at rest."""
    _create(conn, "V2_TABLES")


def _v3_trust(conn: Conn) -> None:
    """Secret owners and grants, authors of resource versions and executions, runner leases."""
    _create(conn, "V3_TABLES")


def _v4_memories(conn: Conn) -> None:
    """Agents' memories, with a full-text index of their facts (FTS5 on SQLite, a GIN-indexed
    tsvector on PostgreSQL; English stemming on both)."""
    _create(conn, "V4_TABLES")
    if conn.is_sqlite:
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
            "fact, content='memories', content_rowid='pk', tokenize='porter unicode61')"
        )
        conn.execute(
            "CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN "
            "INSERT INTO memories_fts(rowid, fact) VALUES (new.pk, new.fact); END"
        )
        conn.execute(
            "CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN "
            "INSERT INTO memories_fts(memories_fts, rowid, fact) VALUES ('delete', old.pk, old.fact); END"
        )
    else:
        conn.execute(
            "ALTER TABLE memories ADD COLUMN IF NOT EXISTS fts tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', fact)) STORED"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS ix_memories_fts ON memories USING GIN (fts)")


def _v5_schedule_fires(conn: Conn) -> None:
    """The slots Schedules fired, one row per (schedule, slot)."""
    _create(conn, "V5_TABLES")


MIGRATIONS: list[tuple[int, Callable[[Conn], None]]] = [
    (1, _v1_initial),
    (2, _v2_execution_secrets),
    (3, _v3_trust),
    (4, _v4_memories),
    (5, _v5_schedule_fires),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Conn) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    if conn.is_sqlite:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    else:
        sql = "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_version'"
    if conn.execute(sql).scalar() is None:
        return 0
    return int(conn.execute("SELECT max(version) FROM schema_version").scalar() or 0)


def _create(conn: Conn, group: str) -> None:
    """Create the tables of ``_schema.<group>`` and their indexes, where they do not exist yet."""
    from stigmer.backend.local.tables import _schema

    tables: tuple[Table, ...] = getattr(_schema, group)
    for sql in _schema.ddl(tables, sqlite=conn.is_sqlite):
        conn.execute(sql)


def migrate(db: Database, target: int | None = None) -> int:
    """Bring the database to ``target`` (default: the latest version); returns the version."""
    goal = LATEST if target is None else target
    with db.read() as conn:  # the common case: already current, no write lock needed
        version = current_version(conn)
    if version == goal:
        return version
    with db.write() as conn:
        if not db.is_sqlite:
            conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
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
                    "INSERT INTO schema_version (version, applied_at) VALUES (:version, :at)",
                    {"version": number, "at": int(time.time() * 1e6)},
                )
                version = number
    return version
