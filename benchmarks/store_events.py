"""store_events: 5,000 UpdateExecutionStatus calls through LocalBackend, one event each,
vs 5,000 single-row WAL commits of the same bytes with plain sqlite3 (same synchronous level).

Run: uv run python benchmarks/store_events.py [--floor]

``--floor`` also times, in the same rounds, the transaction of one status update written directly
on ``sqlite3`` (the same statements on a database LocalBackend made, the same sync), for
information: how far the disk alone lets that work go against the baseline on this machine.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

N = int(os.environ.get("STIGMER_BENCH_N", "5000"))
TARGET = 3.0


def event(i: int) -> ex.ExecutionEvent:
    return ex.ExecutionEvent(type="log", subject="/do/0/step", text=f"step {i} finished")


async def prepare(backend: LocalBackend) -> str:
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bench"), spec=agent_pb2.AgentSpec(instructions="hi")
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bench"))
        )
    )
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=ex.PHASE_RUNNING)
    )
    return run.metadata.id


ROUNDS = 10  # the two measurements alternate in rounds, so load from other processes hits both alike


def floor_update(conn: sqlite3.Connection, lock: int, eid: str, event: ex.ExecutionEvent) -> None:
    """One status update's transaction written directly on sqlite3: lock, read the row, append the
    event, write the row back, commit (synchronous=FULL)."""
    fcntl.flock(lock, fcntl.LOCK_EX)
    conn.execute("BEGIN IMMEDIATE")
    pk, last, status = conn.execute(
        "SELECT pk, last_sequence, status FROM executions WHERE id = ?", (eid,)
    ).fetchone()
    state = ex.ExecutionStatus.FromString(status)
    copy = ex.ExecutionEvent()
    copy.CopyFrom(event)
    copy.execution_id, copy.sequence = eid, last + 1
    copy.time.FromMicroseconds(time.time_ns() // 1000)
    conn.execute(
        "INSERT INTO execution_events (execution_id, sequence, type, body) VALUES (?, ?, ?, ?)",
        (eid, last + 1, copy.type, copy.SerializeToString()),
    )
    state.last_sequence = last + 1
    conn.execute(
        "UPDATE executions SET last_sequence = ?, status = ?, updated_at = ? WHERE pk = ?",
        (last + 1, state.SerializeToString(), time.time_ns() // 1000, pk),
    )
    conn.execute("COMMIT")
    fcntl.flock(lock, fcntl.LOCK_UN)


async def measure(home: Path, n: int, floor: bool = False) -> tuple[float, float, float]:
    """(plain sqlite3 seconds, LocalBackend seconds, floor seconds or 0) for n single-event commits each."""
    floor_conn: sqlite3.Connection | None = None
    if floor:  # a database of its own, made by LocalBackend, with an execution running
        other = LocalBackend(f"sqlite:///{home / 'floor.db'}", home=home, master_key=bytes(32))
        floor_eid = await prepare(other)
        await other.close()
        floor_conn = sqlite3.connect(home / "floor.db", isolation_level=None)
        floor_conn.execute("PRAGMA journal_mode=WAL")
        floor_conn.execute("PRAGMA synchronous=FULL")
        floor_lock = os.open(home / "floor.lock", os.O_RDWR | os.O_CREAT)
    backend = LocalBackend(home=home, master_key=bytes(32))
    eid = await prepare(backend)
    requests = [svc.UpdateExecutionStatusRequest(execution_id=eid, events=[event(i)]) for i in range(n)]
    conn = sqlite3.connect(home / "raw.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # what LocalBackend uses
    conn.execute(
        "CREATE TABLE events (execution_id TEXT, sequence INTEGER, type TEXT, body BLOB, "
        "PRIMARY KEY (execution_id, sequence))"
    )
    conn.commit()
    bodies = [event(i).SerializeToString() for i in range(n)]
    base = ours = least = 0.0
    size = n // ROUNDS
    for r in range(ROUNDS):
        part = range(r * size, (r + 1) * size)
        start = time.perf_counter()
        for i in part:
            conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", ("aex_bench", i + 1, "log", bodies[i]))
            conn.commit()
        base += time.perf_counter() - start
        start = time.perf_counter()
        for i in part:
            await backend.update_execution_status(requests[i])
        ours += time.perf_counter() - start
        if floor_conn is not None:
            start = time.perf_counter()
            for i in part:
                floor_update(floor_conn, floor_lock, floor_eid, requests[i].events[0])
            least += time.perf_counter() - start
    conn.close()
    if floor_conn is not None:
        floor_conn.close()
        os.close(floor_lock)
    await backend.close()
    return base, ours, least


def main() -> int:
    floor = "--floor" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        base, ours, least = asyncio.run(measure(Path(tmp), N, floor))
    print(f"store_events: plain sqlite3 {N} WAL commits: {base:.3f} s ({N / base:,.0f}/s)")
    print(f"store_events: LocalBackend {N} UpdateExecutionStatus: {ours:.3f} s ({N / ours:,.0f}/s)")
    if floor:
        print(
            f"store_events: the same transactions written on sqlite3 (--floor): {least:.3f} s "
            f"(ratio {least / base:.2f}, for information)"
        )
    ratio = ours / base
    print(f"store_events: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
