"""Schema migrations: a database created with the first schema is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from stigmer.backend.local import SCHEMA_VERSION, LocalBackend
from stigmer.backend.local._db import Database
from stigmer.backend.local.tables._migrations import MIGRATIONS, migrate
from stigmer.core import FailedPrecondition
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex


def test_migrations_are_ordered_and_end_at_the_schema_version() -> None:
    numbers = [n for n, _ in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] == SCHEMA_VERSION


async def test_first_schema_is_upgraded_with_data_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stigmer.db'}"
    db = Database(url)
    assert migrate(db, target=1) == 1
    with db.read() as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
    assert "resources" in tables and "execution_secrets" not in tables
    db.dispose()
    # Data written by a version-1 store: a resource created through the v1 tables.
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    raw.execute(
        "INSERT INTO resources (id, kind, slug, name, version, labels, annotations, spec, status, created_at, "
        "updated_at) VALUES ('agt_old', 'Agent', 'old-bot', 'old-bot', 1, '{\"team\":\"a\"}', '{}', "
        "'{\"instructions\":\"from v1\"}', '{}', 1, 1)"
    )
    raw.execute(
        "INSERT INTO resource_versions VALUES ('agt_old', 1, "
        '\'{"apiVersion":"stigmer.ai/v1","kind":"Agent","metadata":{"name":"old-bot"},'
        '"spec":{"instructions":"from v1"}}\', 1)'
    )
    raw.commit()
    raw.close()

    backend = LocalBackend(url, home=tmp_path, master_key=bytes(32))
    assert backend.schema_version == SCHEMA_VERSION
    got = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="old-bot")))
    assert got.agent.spec.instructions == "from v1" and dict(got.agent.metadata.labels) == {"team": "a"}
    # The table added by version 2 works: a run-time secret of an execution of the old agent.
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="old-bot")),
            runtime_secrets={"TOKEN": "value"},
        )
    )
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=ex.PHASE_RUNNING)
    )
    ctx = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=run.metadata.id))
    assert dict(ctx.secrets) == {"TOKEN": "value"}
    await backend.close()
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    versions = [r[0] for r in raw.execute("SELECT version FROM schema_version ORDER BY version")]
    raw.close()
    assert versions == [1, 2, 3, 4, 5]


async def test_opening_twice_does_not_migrate_again(tmp_path: Path) -> None:
    for _ in range(2):
        backend = LocalBackend(home=tmp_path, master_key=bytes(32))
        await backend.close()
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    assert [r[0] for r in raw.execute("SELECT version FROM schema_version")] == [1, 2, 3, 4, 5]
    raw.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    LocalBackend(home=tmp_path, master_key=bytes(32))
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    raw.execute("INSERT INTO schema_version VALUES (99, 0)")
    raw.commit()
    raw.close()
    with pytest.raises(FailedPrecondition, match="newer than this stigmer-backend-local"):
        LocalBackend(home=tmp_path, master_key=bytes(32))


async def test_new_database_gets_wal_and_indexes(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    agent = agent_pb2.Agent(metadata=meta_pb2.Metadata(name="a"))
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    raw.close()
    assert {"ix_resource_labels_key_value", "ix_executions_target", "ix_resources_kind_pk"} <= indexes
    await backend.close()
