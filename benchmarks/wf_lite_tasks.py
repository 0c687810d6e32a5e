"""wf_lite_tasks: a workflow of 1,000 `set` tasks, and one of a 1,000-iteration `for`, run in Lite
mode by the real ``WorkflowRunner.execute`` and persisted through a LocalBackend on a temporary
SQLite file, vs 1,000 single-row WAL commits with plain sqlite3 of comparable bytes (one row per
task: its completed event plus its checkpoint; same synchronous level as LocalBackend). The runner's
redactor holds a PEM key and an API token, so every record is masked against all their forms.

Rounds interleave the three measurements (the machine is shared and noisy) and the medians are
compared. The ratio is the worse of the two workflows.

Run: uv run python benchmarks/wf_lite_tasks.py
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from google.protobuf import json_format, struct_pb2
from stigmer.backend.local import LocalBackend
from stigmer.core import Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2
from stigmer.runner.workflow import WorkflowRunner

N = int(os.environ.get("STIGMER_BENCH_N", "1000"))
ROUNDS = int(os.environ.get("STIGMER_BENCH_ROUNDS", "5"))
TARGET = 3.0


def _pem() -> str:
    body = base64.b64encode(os.urandom(1200)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"


def manifests(n: int) -> str:
    tasks = "\n".join(f"    - s{i}: {{set: {{step: {i}, total: '${{ .total + 1 }}'}}}}" for i in range(n))
    return f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: sets}}
spec:
  document: {{dsl: 1.0.0, namespace: bench, name: sets, version: 1.0.0}}
  input: {{from: '${{ {{total: 0}} }}'}}
  do:
{tasks}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: loop}}
spec:
  document: {{dsl: 1.0.0, namespace: bench, name: loop, version: 1.0.0}}
  do:
    - start: {{set: {{total: 0}}}}
    - loop:
        for: {{each: n, in: '${{ [range({n})] }}'}}
        do:
          - add: {{set: {{step: '${{ $n }}', total: '${{ .total + 1 }}'}}}}
"""


async def run_once(runner: WorkflowRunner, backend: LocalBackend, name: str) -> tuple[float, ex.Execution]:
    spec = ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    start = time.perf_counter()
    finished = await runner.execute(backend, created.metadata.id)
    elapsed = time.perf_counter() - start
    if finished.status.phase != ex.PHASE_SUCCEEDED:
        raise SystemExit(f"wf_lite_tasks: {name} ended {ex.Phase.Name(finished.status.phase)}")
    return elapsed, finished


def row_bytes(finished: ex.Execution) -> int:
    """A task's record: its task.completed event (with output) plus its checkpoint."""
    output = json_format.MessageToDict(finished.status.output)
    event = ex.ExecutionEvent(execution_id=finished.metadata.id, sequence=1, type="task.completed")
    event.data.CopyFrom(json_format.ParseDict(output, struct_pb2.Value()))
    return len(event.SerializeToString()) + len(finished.status.checkpoint.encode())


def commits(conn: sqlite3.Connection, body: bytes, offset: int) -> float:
    start = time.perf_counter()
    for i in range(offset, offset + N):
        conn.execute("INSERT INTO rows VALUES (?, ?, ?)", ("wex_bench", i, body))
        conn.commit()
    return time.perf_counter() - start


async def measure(home: Path) -> dict[str, list[float]]:
    backend = LocalBackend(f"sqlite:///{home / 'stigmer.db'}", home=home, master_key=bytes(32))
    for loaded in parse_manifest(manifests(N), "bench.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))
    # One runner for every run, as a worker has; the first runs also validate the documents.
    # Its redactor holds two secrets (a PEM key and an API token), as after a run that read them:
    # every event, checkpoint and output is masked against all their forms.
    runner = WorkflowRunner(
        redactor=Redactor([_pem(), "sk-proj-" + base64.urlsafe_b64encode(os.urandom(27)).decode()])
    )
    cold_sets, warm_sets = await run_once(runner, backend, "sets")
    cold_loop, warm_loop = await run_once(runner, backend, "loop")
    print(
        f"wf_lite_tasks: first runs (schema validation of the document included): {cold_sets:.3f} s (sets), {cold_loop:.3f} s (loop)"
    )
    assert json_format.MessageToDict(warm_sets.status.output)["total"] == N
    assert json_format.MessageToDict(warm_loop.status.output)["total"] == N
    body = os.urandom(max(row_bytes(warm_sets), row_bytes(warm_loop)))
    print(f"wf_lite_tasks: baseline row {len(body)} bytes")

    conn = sqlite3.connect(home / "raw.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # what LocalBackend uses
    conn.execute("CREATE TABLE rows (owner TEXT, sequence INTEGER, body BLOB, PRIMARY KEY (owner, sequence))")
    conn.commit()
    times: dict[str, list[float]] = {"sqlite3": [], "sets": [], "loop": []}
    for r in range(ROUNDS):
        order = ["sqlite3", "sets", "loop"]
        order = order[r % 3 :] + order[: r % 3]  # rotate who goes first
        for what in order:
            if what == "sqlite3":
                times[what].append(commits(conn, body, r * N))
            else:
                times[what].append((await run_once(runner, backend, what))[0])
    conn.close()
    await backend.close()
    return times


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(measure(Path(tmp)))
    base = statistics.median(times["sqlite3"])
    print(f"wf_lite_tasks: plain sqlite3 {N} WAL commits: median {base:.3f} s ({N / base:,.0f}/s)")
    ratios = []
    for name, what in (("sets", f"{N} set tasks"), ("loop", f"{N}-iteration for")):
        median = statistics.median(times[name])
        ratios.append(median / base)
        print(
            f"wf_lite_tasks: workflow of {what}: median {median:.3f} s "
            f"({N / median:,.0f} tasks/s) ratio={median / base:.2f}"
        )
    ratio = max(ratios)
    print(f"wf_lite_tasks: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
