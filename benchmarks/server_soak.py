"""server_soak: the resident memory of `stigmer server` over 5,000 workflow runs; flat after warm-up.

Starts the `stigmer-server` console script (what `stigmer server` runs) on a temporary
STIGMER_HOME and a free port, applies a small workflow (a `set` task, a jq expression and a
`for` over three items), then runs it through the server, a few at a time:

- most runs as a runner worker does (the "Lite on server" path: the workflow runner, in this
  process, reaches the server through CloudBackend: create, get, status updates, events,
  checkpoints, the end);
- every ``--child-every``-th run as a user's SDK run does: `AsyncStigmer.run` against the server,
  which dispatches it to a runner child process (a token scoped to the run, a spare child started
  ahead), and the SDK follows it to the end over WatchExecution.

The server's RSS (/proc/PID/status VmRSS) is sampled after ``--warmup`` runs (the baseline) and
then every few hundred runs; the figure is its growth after warm-up (target <= 10%).

``--trace`` starts the server under tracemalloc instead (a wrapper in this script; nothing is
shipped enabled) and prints the top allocation sites that grew between warm-up and the end: how
the growth seen in issue 18 was told apart as caches or leaks.

    uv run python benchmarks/server_soak.py [--runs 5000] [--warmup 300] [--trace]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 0.10

FLOW: dict[str, Any] = {
    "document": {"dsl": "1.0.0", "namespace": "bench", "name": "soak", "version": "1.0.0"},
    "input": {"from": "${ {total: 0} }"},
    "do": [
        {"start": {"set": {"total": "${ .total + 1 }", "items": [1, 2, 3]}}},
        {
            "each": {
                "for": {"each": "n", "in": "${ .items }"},
                "do": [{"add": {"set": {"total": "${ .total + $n }", "items": "${ .items }"}}}],
            }
        },
    ],
}

# Runs the server's own entry point under tracemalloc; SIGUSR1 writes a snapshot to the path in
# STIGMER_SOAK_SNAPSHOT (numbered). Only for --trace: the server ships nothing of this.
TRACE_WRAPPER = r"""
import os, signal, sys, tracemalloc
tracemalloc.start(12)
count = [0]
def dump(signum, frame):
    count[0] += 1
    tracemalloc.take_snapshot().dump(f"{os.environ['STIGMER_SOAK_SNAPSHOT']}.{count[0]}")
    open(f"{os.environ['STIGMER_SOAK_SNAPSHOT']}.{count[0]}.done", "w").close()
signal.signal(signal.SIGUSR1, dump)
from stigmer.server._main import main
sys.exit(main(sys.argv[1:]))
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def snapshot(pid: int, base: Path, number: int) -> Path:
    os.kill(pid, signal.SIGUSR1)
    done = Path(f"{base}.{number}.done")
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise SystemExit("server_soak: the traced server wrote no snapshot")
        time.sleep(0.1)
    return Path(f"{base}.{number}")


def print_growth(first: Path, last: Path) -> tuple[float, float]:
    """Print the allocation sites that grew most; the traced heap (MiB) at both snapshots."""
    import tracemalloc

    before = tracemalloc.Snapshot.load(str(first))
    after = tracemalloc.Snapshot.load(str(last))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"server_soak: traced Python heap growth after warm-up: {total / 1024:+.0f} KiB; top sites:")
    for stat in stats[:8]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format()[-6:]:
            print(f"      {line}")
    heap = [sum(s.size for s in snap.statistics("filename")) / (1 << 20) for snap in (before, after)]
    return heap[0], heap[1]


async def soak(args: argparse.Namespace) -> int:
    from stigmer.backend.cloud import CloudBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2, workflow_pb2
    from stigmer.runner.workflow import WorkflowRunner
    from stigmer.sdk import AsyncStigmer
    from stigmer.server import ServerProcess

    class TracedServer(ServerProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-c", TRACE_WRAPPER, *super().command()[1:]]

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        env = {**os.environ, "STIGMER_HOME": str(home), "STIGMER_SOAK_SNAPSHOT": str(Path(folder) / "heap")}
        kind = TracedServer if args.trace else ServerProcess
        server = kind(home=home, env=env)
        await asyncio.to_thread(server.start)
        pid = server.pid
        assert pid is not None
        print(f"server_soak: stigmer server pid {pid} at {server.endpoint}; idle RSS {rss_mib(pid):.1f} MiB")
        backend = CloudBackend(server.endpoint, home=home)
        client = AsyncStigmer(backend=backend)
        flow = resource_pb2.Resource(
            workflow=workflow_pb2.Workflow(
                api_version="stigmer.ai/v1", kind="Workflow", metadata=meta_pb2.Metadata(name="soak")
            )
        )
        flow.workflow.spec.update(FLOW)
        await backend.apply(svc.ApplyRequest(resource=flow))
        runner = WorkflowRunner()
        target = meta_pb2.ResourceRef(kind="Workflow", name="soak")
        counts = {"runner": 0, "child": 0}

        async def one(number: int) -> None:
            if args.child_every and number % args.child_every == 0:
                handle = await client.run("soak", kind="workflow")
                done = await handle.wait(timeout=120)
                counts["child"] += 1
            else:
                created = await backend.create_execution(
                    svc.CreateExecutionRequest(
                        spec=execution_pb2.ExecutionSpec(target=target), dispatch_by_caller=True
                    )
                )
                done = await runner.execute(backend, created.metadata.id)
                counts["runner"] += 1
            if done.status.phase != execution_pb2.PHASE_SUCCEEDED:
                raise SystemExit(
                    f"server_soak: run {number} ended {execution_pb2.Phase.Name(done.status.phase)}"
                )

        async def runs(start: int, stop: int) -> None:
            queue = iter(range(start, stop))

            async def lane() -> None:
                for number in queue:
                    await one(number)

            await asyncio.gather(*(lane() for _ in range(args.concurrency)))

        began = time.perf_counter()
        await runs(0, args.warmup)
        await asyncio.sleep(1.0)  # let the last child exit and the spare settle
        warm = rss_mib(pid)
        heaps: list[Path] = []
        if args.trace:
            heaps.append(snapshot(pid, Path(env["STIGMER_SOAK_SNAPSHOT"]), 1))
        print(
            f"server_soak: after {args.warmup} warm-up runs ({time.perf_counter() - began:.0f} s): RSS {warm:.1f} MiB"
        )
        samples: list[tuple[int, float]] = []
        step = max(1, args.runs // 10)
        done_runs = 0
        soak_began = time.perf_counter()
        while done_runs < args.runs:
            batch = min(step, args.runs - done_runs)
            await runs(args.warmup + done_runs, args.warmup + done_runs + batch)
            done_runs += batch
            samples.append((done_runs, rss_mib(pid)))
            elapsed = time.perf_counter() - soak_began
            print(
                f"server_soak: {done_runs:>6} runs ({elapsed:5.0f} s, {done_runs / elapsed:5.1f} runs/s): "
                f"RSS {samples[-1][1]:.1f} MiB"
            )
        await asyncio.sleep(1.0)
        final = rss_mib(pid)
        if args.trace:
            heaps.append(snapshot(pid, Path(env["STIGMER_SOAK_SNAPSHOT"]), 2))
        await client.aclose()  # closes its backend too
        await asyncio.to_thread(server.stop)
        heap = print_growth(heaps[0], heaps[-1]) if heaps else None
    peak = max(rss for _, rss in samples)
    print(
        f"server_soak: {args.runs} runs after warm-up ({counts['runner']} by a runner through the server, "
        f"{counts['child']} dispatched by the server to child processes, warm-up included)"
    )
    print(f"server_soak: RSS after warm-up {warm:.1f} MiB, peak {peak:.1f} MiB, at the end {final:.1f} MiB")
    verdict = ""
    if heap is not None:
        # tracemalloc's own snapshots inflate the RSS: under --trace the traced heap is what is compared
        warm, final = heap
        print(f"server_soak: traced Python heap after warm-up {warm:.1f} MiB, at the end {final:.1f} MiB")
        verdict = " (traced heap, not RSS)"
    growth = (final - warm) / warm
    verdict = ("PASS" if growth <= TARGET else "FAIL") + verdict
    print(
        f"server_soak: ratio={final / warm:.3f} growth={growth * 100:.1f}% target<={TARGET * 100:g}% {verdict}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5000, help="runs after warm-up (default 5000)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4, help="runs in flight at once")
    parser.add_argument(
        "--child-every",
        type=int,
        default=5,
        help="every Nth run is an SDK run the server dispatches to a child (0: none)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="run the server under tracemalloc, show what grew"
    )
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
