"""The status-update write path: the fixed parts of an execution kept per database, and a lone
writer on SQLite committing without a turn of the event loop while the loop still turns."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend, _backend
from stigmer.backend.local.tables import _events
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

KEY = bytes(range(32))


@pytest.fixture
def backend(store: LocalBackend) -> LocalBackend:
    return store


async def _start(backend: LocalBackend, labels: dict[str, str] | None = None, text: str = "") -> str:
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bot"), spec=agent_pb2.AgentSpec(instructions="hi")
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    spec = ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message=text)
    run = await backend.create_execution(svc.CreateExecutionRequest(spec=spec, labels=labels or {}))
    return run.metadata.id


def _log(text: str) -> svc.UpdateExecutionStatusRequest:
    return svc.UpdateExecutionStatusRequest(events=[ex.ExecutionEvent(type="log", text=text)])


async def test_an_update_returns_the_execution_as_stored(backend: LocalBackend) -> None:
    """Every update answers with what a Get reads afterwards: labels, spec, times and status, the
    first update (the memo is empty) and the ones after (made from the memo) alike."""
    eid = await _start(backend, {"team": "a", "tier": "gold"}, "hello")
    for i, request in enumerate(
        [
            svc.UpdateExecutionStatusRequest(phase=ex.PHASE_RUNNING, runner="test"),
            _log("one"),
            _log("two"),
            svc.UpdateExecutionStatusRequest(phase=ex.PHASE_SUCCEEDED),
        ]
    ):
        request.execution_id = eid
        answered = await backend.update_execution_status(request)
        stored = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert answered == stored, i
        assert dict(answered.metadata.labels) == {"team": "a", "tier": "gold"}
        assert (
            answered.spec.message == "hello" and answered.status.last_sequence == stored.status.last_sequence
        )
    assert stored.status.phase == ex.PHASE_SUCCEEDED


async def test_the_memo_of_fixed_parts_is_bounded_and_per_database(
    backend: LocalBackend, tmp_path: Path
) -> None:
    ids = [await _start(backend, {"n": str(i)}) for i in range(_events._MEMO_MAX + 20)]
    for i, eid in enumerate(ids):
        answered = await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, events=[ex.ExecutionEvent(type="log")])
        )
        assert answered.metadata.labels["n"] == str(i) and answered.metadata.id == eid
    memo = backend._db.memo[_events._MEMO]
    assert 0 < len(memo) <= _events._MEMO_MAX
    # another store in the same process keeps its own
    other = LocalBackend(f"sqlite:///{tmp_path / 'other.db'}", home=tmp_path, master_key=KEY)
    try:
        assert other._db.memo[_events._MEMO] == {}
        mine = await _start(other, {"store": "other"})
        answered = await other.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=mine, runner="r")
        )
        assert dict(answered.metadata.labels) == {"store": "other"}
        assert mine in other._db.memo[_events._MEMO] and mine not in memo
    finally:
        await other.close()


async def test_a_large_spec_is_read_each_time_instead_of_kept(backend: LocalBackend) -> None:
    eid = await _start(backend, text="x" * (_events._MEMO_SPEC_MAX + 1))
    answered = await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, runner="r")
    )
    assert len(answered.spec.message) == _events._MEMO_SPEC_MAX + 1
    assert eid not in backend._db.memo[_events._MEMO]


async def test_a_lone_writer_in_a_tight_loop_still_lets_the_loop_turn(tmp_path: Path) -> None:
    """On SQLite a write that nothing could join commits without a turn of the event loop, but a
    caller that only writes still gives timers and other tasks their turn every 10 ms."""
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    eid = await _start(backend)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.001)
            ticks.append(time.monotonic())

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.01)
    ticks.clear()
    start = time.monotonic()
    writes = 0
    try:
        while time.monotonic() - start < 0.4:
            request = _log(str(writes))
            request.execution_id = eid
            await backend.update_execution_status(request)
            writes += 1
    finally:
        ticker.cancel()
    stored = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    await backend.close()
    assert stored.status.last_sequence == writes  # every write landed
    assert len(ticks) >= 20, (len(ticks), writes)  # timers ran while the writer wrote
    gaps = [b - a for a, b in zip([start, *ticks], ticks, strict=False)]
    assert max(gaps) < 0.2, max(gaps)


async def test_a_write_nothing_could_join_commits_without_a_turn_of_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    eid = await _start(backend)
    monkeypatch.setattr(_backend, "_TURN_AT_LEAST", 60.0)  # the loop turned just now (below)
    request = _log("first")
    request.execution_id = eid
    await backend.update_execution_status(request)  # the first write in a while takes its turn
    request = _log("second")
    request.execution_id = eid
    step = backend.update_execution_status(request).__await__()
    with pytest.raises(StopIteration) as done:  # finished at its first step: it never suspended
        step.send(None)
    assert done.value.value.status.last_sequence == 2
    # with another task ready to run, a write waits for the rest of the turn (its group)
    other = asyncio.ensure_future(asyncio.sleep(0))
    request = _log("third")
    request.execution_id = eid
    step = backend.update_execution_status(request).__await__()
    step.send(None)  # suspended: the group's turn
    with pytest.raises(StopIteration):
        while True:
            step.send(None)
    await other
    await backend.close()


async def test_a_retried_update_transaction_numbers_and_stamps_its_events_afresh(tmp_path: Path) -> None:
    """A status update's transaction may run again (a conflict, on PostgreSQL): the events checked
    before it are numbered and stamped by the run that commits, not by the one rolled back."""
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    eid = await _start(backend)
    request = _log("a")
    request.execution_id = eid
    await backend.update_execution_status(request)
    request = svc.UpdateExecutionStatusRequest(
        execution_id=eid, events=[ex.ExecutionEvent(type="log", text=t) for t in ("b", "c")]
    )
    prepared = _events.prepare_update(request)

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), backend._db.write() as conn:
        first = _events.apply_update(conn, request, prepared)
        assert isinstance(first, _events.Loaded) and first.last == 3
        raise RolledBack
    time.sleep(0.002)
    other = _log("other")
    other.execution_id = eid
    await backend.update_execution_status(other)  # takes sequence 2 meanwhile
    with backend._db.write() as conn:
        applied = _events.apply_update(conn, request, prepared)
    done = _events.answer(backend._db.memo, applied)
    with backend._db.read() as conn:
        events = _events.events_after(conn, eid, 0)
    await backend.close()
    assert [(e.sequence, e.text) for e in events] == [(1, "a"), (2, "other"), (3, "b"), (4, "c")]
    assert (
        events[2].time == events[3].time and events[2].time.ToMicroseconds() > events[1].time.ToMicroseconds()
    )
    assert done.status.last_sequence == 4


async def test_a_write_waits_for_its_log_on_disk_after_letting_other_writers_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite in WAL mode: a committed write syncs the write-ahead log before it is acknowledged
    (what synchronous=FULL does in the commit), but after releasing the write lock, so another
    process's writer can take it meanwhile; a read, or a write that changed nothing, syncs nothing."""
    import fcntl
    import os

    from stigmer.backend.local import _db

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    eid = await _start(backend)
    assert backend._db._raw is not None
    assert backend._db._raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, synced after
    other = os.open(tmp_path / "stigmer.db-writer.lock", os.O_RDWR)
    synced: list[tuple[str, bool]] = []
    real = _db._datasync

    def datasync(fd: int) -> None:
        try:  # as another process's writer would, while this one syncs
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
            free = True
        except BlockingIOError:
            free = False
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), free))
        real(fd)

    monkeypatch.setattr(_db, "_datasync", datasync)
    request = _log("one")
    request.execution_id = eid
    await backend.update_execution_status(request)
    assert synced == [(str(tmp_path / "stigmer.db-wal"), True)]
    await backend.get_execution(svc.GetExecutionRequest(id=eid))  # a read
    await backend.update_execution_status(svc.UpdateExecutionStatusRequest(execution_id=eid))  # no change
    assert len(synced) == 1
    await backend.update_execution_status(request)
    assert len(synced) == 2
    os.close(other)
    await backend.close()


async def test_a_failed_log_sync_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.backend.local import _db
    from stigmer.core import Unavailable

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    eid = await _start(backend)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_db, "_datasync", broken)
    request = _log("one")
    request.execution_id = eid
    with pytest.raises(Unavailable, match="was committed but may not be on disk: syncing its log failed"):
        await backend.update_execution_status(request)
    monkeypatch.undo()
    await backend.close()


async def test_an_in_memory_database_syncs_in_the_commit_as_before() -> None:
    backend = LocalBackend("sqlite:///:memory:", home="/nonexistent", master_key=KEY)
    assert backend._db._raw is not None
    assert backend._db._raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert backend._db._sync_after is False
    await backend.close()
