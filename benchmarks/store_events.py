"""store_events: 5,000 UpdateExecutionStatus calls through LocalBackend, one event each,
vs 5,000 single-row WAL commits of the same bytes with plain sqlite3 (same synchronous level).

Run: uv run python benchmarks/store_events.py
"""

from __future__ import annotations

import asyncio
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


async def measure(home: Path, n: int) -> tuple[float, float]:
    """(plain sqlite3 seconds, LocalBackend seconds) for n single-event commits each."""
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
    base = ours = 0.0
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
    conn.close()
    await backend.close()
    return base, ours


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base, ours = asyncio.run(measure(Path(tmp), N))
    print(f"store_events: plain sqlite3 {N} WAL commits: {base:.3f} s ({N / base:,.0f}/s)")
    print(f"store_events: LocalBackend {N} UpdateExecutionStatus: {ours:.3f} s ({N / ours:,.0f}/s)")
    ratio = ours / base
    print(f"store_events: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
