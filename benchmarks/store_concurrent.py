"""store_concurrent: 4 processes x 1,000 UpdateExecutionStatus calls on one SQLite file at once,
vs the single-process run (1 process x 1,000 calls). Needs 0 errors and throughput >= 0.5x.

Run: uv run python benchmarks/store_concurrent.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import (
    agent_pb2,
    meta_pb2,
    resource_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)
from stigmer.proto.v1 import (
    execution_pb2 as ex,
)

PROCESSES = 4
CALLS = int(os.environ.get("STIGMER_BENCH_N", "1000"))
TARGET = 0.5
ROUNDS = 3


async def child(url: str, eid: str, calls: int) -> None:
    """Wait for GO on stdin, then write; print a JSON line with start/end times and errors."""
    backend = LocalBackend(url, home=".", master_key=bytes(32))
    requests = [
        svc.UpdateExecutionStatusRequest(
            execution_id=eid, events=[ex.ExecutionEvent(type="log", subject="/do/0/step", text=f"step {i}")]
        )
        for i in range(calls)
    ]
    print("READY", flush=True)
    sys.stdin.readline()
    errors = 0
    start = time.time()
    for req in requests:
        try:
            await backend.update_execution_status(req)
        except Exception as exc:
            errors += 1
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    end = time.time()
    await backend.close()
    print(json.dumps({"start": start, "end": end, "errors": errors}), flush=True)


async def prepare(url: str, home: Path, count: int) -> list[str]:
    backend = LocalBackend(url, home=home, master_key=bytes(32))
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bench"), spec=agent_pb2.AgentSpec(instructions="hi")
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    ids = []
    for _ in range(count):
        run = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bench"))
            )
        )
        await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=ex.PHASE_RUNNING)
        )
        ids.append(run.metadata.id)
    await backend.close()
    return ids


def run(url: str, ids: list[str], home: Path) -> tuple[float, int]:
    """Start one writer per execution id at once; returns (calls per second, errors)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", url, eid, str(CALLS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=home,
        )
        for eid in ids
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("GO\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate()
        results.append(json.loads(out.strip().splitlines()[-1]))
        if p.returncode != 0:
            raise SystemExit(f"a writer exited with {p.returncode}")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return len(ids) * CALLS / wall, sum(r["errors"] for r in results)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        single_url = f"sqlite:///{home / 'single.db'}"
        multi_url = f"sqlite:///{home / 'multi.db'}"
        single_ids = asyncio.run(prepare(single_url, home, ROUNDS))
        multi_ids = asyncio.run(prepare(multi_url, home, PROCESSES * ROUNDS))
        singles, multis, errors = [], [], 0
        for r in range(ROUNDS):  # alternate, so load from other processes hits both alike
            rate, e1 = run(single_url, single_ids[r : r + 1], home)
            singles.append(rate)
            rate, e2 = run(multi_url, multi_ids[r * PROCESSES : (r + 1) * PROCESSES], home)
            multis.append(rate)
            errors += e1 + e2
    single, multi = statistics.median(singles), statistics.median(multis)
    print(f"store_concurrent: 1 process x {CALLS} status updates: {single:,.0f}/s (median of {ROUNDS} runs)")
    print(
        f"store_concurrent: {PROCESSES} processes x {CALLS} status updates at once: {multi:,.0f}/s "
        f"(median of {ROUNDS} runs), errors={errors}"
    )
    ratio = multi / single
    ok = ratio >= TARGET and errors == 0
    print(f"store_concurrent: ratio={ratio:.2f} target>={TARGET:g} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        sys.exit(main())
