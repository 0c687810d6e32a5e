"""Several processes writing one SQLite file at once; a writer killed with SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.backend.local.tables._migrations import LATEST
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

CHILD = str(Path(__file__).with_name("writer_child.py"))


async def _running_execution(backend: LocalBackend) -> str:
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bot"), spec=agent_pb2.AgentSpec(instructions="hi")
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
        )
    )
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=ex.PHASE_RUNNING)
    )
    return run.metadata.id


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_four_processes_write_one_database_and_a_watcher_sees_everything(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'stigmer.db'}"
        if store == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    backend = LocalBackend(url, home=tmp_path, master_key=bytes(32))
    eid = await _running_execution(backend)
    per_process = 150

    async def watch() -> list[ex.ExecutionEvent]:
        return [e async for e in backend.watch_execution(svc.WatchExecutionRequest(execution_id=eid))]

    watcher = asyncio.create_task(watch())
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            CHILD,
            url,
            eid,
            str(per_process),
            f"p{n}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        for n in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
        assert b"ERROR" not in out
    final = await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, phase=ex.PHASE_SUCCEEDED)
    )
    events = await asyncio.wait_for(watcher, 30)
    written = [e for e in events if e.type == "log"]
    assert len(written) == 4 * per_process
    assert sorted(e.text for e in written) == sorted(
        f"p{n}-{i}" for n in range(4) for i in range(per_process)
    )
    assert [e.sequence for e in events] == list(range(1, final.status.last_sequence + 1))
    for n in range(4):  # each writer's own events stay in its order
        mine = [int(e.text.split("-")[1]) for e in written if e.subject == f"p{n}"]
        assert mine == list(range(per_process))
    acked = {int(line.split()[1]) for out, _ in outputs for line in out.decode().splitlines()}
    assert len(acked) == 4 * per_process, "every call got its own sequence number"
    await backend.close()


async def test_sigkilled_writer_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "stigmer.db"
    url = f"sqlite:///{db}"
    backend = LocalBackend(url, home=tmp_path, master_key=bytes(32))
    eid = await _running_execution(backend)
    await backend.close()
    proc = subprocess.Popen(
        [sys.executable, CHILD, url, eid, "100000", "k"], stdout=subprocess.PIPE, cwd=tmp_path, text=True
    )
    assert proc.stdout is not None
    acked: list[int] = []
    for line in proc.stdout:
        if line.startswith("ACK"):
            acked.append(int(line.split()[1]))
        if len(acked) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.stdout.close()
    proc.wait()
    acked += [int(line.split()[1]) for line in rest.splitlines() if line.startswith("ACK")]
    assert proc.returncode == -signal.SIGKILL
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {
        row[0] for row in raw.execute("SELECT sequence FROM execution_events WHERE execution_id = ?", (eid,))
    }
    raw.close()
    missing = set(acked) - stored
    assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
    reopened = LocalBackend(url, home=tmp_path, master_key=bytes(32))
    current = await reopened.get_execution(svc.GetExecutionRequest(id=eid))
    assert current.status.last_sequence >= max(acked)
    more = await reopened.update_execution_status(
        svc.UpdateExecutionStatusRequest(
            execution_id=eid, events=[ex.ExecutionEvent(type="log", text="after")]
        )
    )
    assert more.status.last_sequence == current.status.last_sequence + 1
    await reopened.close()


OPEN_AND_APPLY = """
import asyncio, sys
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import agent_pb2, backend_service_pb2 as svc, meta_pb2, resource_pb2

async def main():
    backend = LocalBackend(sys.argv[1], home=".", master_key=bytes(32))
    for i in range(20):
        agent = agent_pb2.Agent(metadata=meta_pb2.Metadata(name=f"{sys.argv[2]}-{i}"))
        await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    await backend.close()

asyncio.run(main())
"""


async def test_processes_creating_a_new_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPEN_AND_APPLY, url, f"p{n}", stderr=asyncio.subprocess.PIPE, cwd=tmp_path
        )
        for n in range(4)
    ]
    for p in procs:
        _, err = await p.communicate()
        assert p.returncode == 0, err.decode()[-2000:]
    raw = sqlite3.connect(tmp_path / "new.db")
    versions = [r[0] for r in raw.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST + 1))  # each migration recorded exactly once
    assert raw.execute("SELECT count(*) FROM resources").fetchone() == (80,)
    raw.close()


async def test_a_watch_is_woken_only_by_changes_to_its_own_execution(tmp_path: Path) -> None:
    """Fifty concurrent runs each woke all fifty watches with every change (two reads each)."""
    from stigmer.backend.local import _backend

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=bytes(32))
    busy = await _running_execution(backend)
    watched = await _running_execution(backend)
    reads: list[object] = []
    plain_read = backend._read

    async def counted(fn: object) -> object:
        reads.append(fn)
        return await plain_read(fn)  # type: ignore[arg-type]

    backend._read = counted  # type: ignore[assignment,method-assign]

    async def watch() -> list[ex.ExecutionEvent]:
        request = svc.WatchExecutionRequest(execution_id=watched)
        return [e async for e in backend.watch_execution(request)]

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)  # it has read what there is and waits
    reads.clear()
    for i in range(5):
        await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=busy, events=[ex.ExecutionEvent(type="log", text=f"{i}")]
            )
        )
        await asyncio.sleep(0.01)
    poll = getattr(_backend, "_data_version", None)  # the one poller of other processes' commits
    assert [fn for fn in reads if fn is not poll] == []
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=watched, phase=ex.PHASE_SUCCEEDED)
    )
    events = await asyncio.wait_for(watcher, 10)
    assert events[-1].type == "phase" and events[-1].phase == ex.PHASE_SUCCEEDED
    await backend.close()


async def test_writes_that_arrive_together_commit_together_and_a_failing_one_alone_is_undone(
    tmp_path: Path,
) -> None:
    """Group commit: concurrent writes on one event loop share one transaction (one fsync), each in a
    savepoint, so the one that fails leaves the others written."""
    from stigmer.core import NotFound

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=bytes(32))
    groups: list[int] = []
    real = backend._db.write_many

    def counted(fns):  # type: ignore[no-untyped-def]
        groups.append(len(fns))
        return real(fns)

    backend._db.write_many = counted  # type: ignore[method-assign]

    def agent(name: str) -> svc.ApplyRequest:
        return svc.ApplyRequest(
            resource=resource_pb2.Resource(
                agent=agent_pb2.Agent(
                    metadata=meta_pb2.Metadata(name=name), spec=agent_pb2.AgentSpec(instructions="hi")
                )
            )
        )

    missing = svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="nobody"))
    results = await asyncio.gather(
        *(backend.apply(agent(f"bot-{i}")) for i in range(3)),
        backend.delete(missing),
        *(backend.apply(agent(f"bot-{i}")) for i in range(3, 6)),
        return_exceptions=True,
    )
    assert isinstance(results[3], NotFound), results[3]
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 3), results
    assert max(groups) == 7, groups  # all seven in one transaction
    listed = await backend.list(svc.ListRequest(kind="Agent"))
    assert sorted(r.agent.metadata.name for r in listed.resources) == [f"bot-{i}" for i in range(6)]
    # a lone write takes the ordinary path
    groups.clear()
    await backend.apply(agent("bot-6"))
    assert groups == []
    await backend.close()


def _agent(name: str) -> svc.ApplyRequest:
    return svc.ApplyRequest(
        resource=resource_pb2.Resource(
            agent=agent_pb2.Agent(
                metadata=meta_pb2.Metadata(name=name), spec=agent_pb2.AgentSpec(instructions="hi")
            )
        )
    )


async def test_a_group_whose_first_write_is_cancelled_commits_the_others(tmp_path: Path) -> None:
    """The first write of a loop turn leads its group; cancelled before the group's turn, it is not
    written and the writes that joined it still commit."""
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=bytes(32))
    first = asyncio.ensure_future(backend.apply(_agent("first")))
    others = [asyncio.ensure_future(backend.apply(_agent(name))) for name in ("second", "third")]
    await asyncio.sleep(0)  # all three reach the store; the first waits for the rest of the turn
    first.cancel()
    await asyncio.wait_for(asyncio.gather(*others), 10)
    with pytest.raises(asyncio.CancelledError):
        await first
    listed = await backend.list(svc.ListRequest(kind="Agent"))
    assert sorted(r.agent.metadata.name for r in listed.resources) == ["second", "third"]
    await backend.close()
