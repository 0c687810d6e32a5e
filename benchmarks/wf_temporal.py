"""wf_temporal: a one-task workflow run the way `stigmer run` runs it on the full stack
(CreateExecution through CloudBackend -> stigmer server -> Temporal -> workflow worker, then
WatchExecution until it ends), 30 sequential + 50 concurrent, against a raw temporalio
hello-world workflow (one activity, its own worker process) on the same Temporal dev server.

Prints latency (median of the sequential runs) and throughput (the concurrent batch) for both,
their ratios (targets: latency <= 1.5x, throughput >= 0.7x), and for information the median of
whole `stigmer run` CLI processes and the same latency and throughput with a second
`stigmer-workflow-runner` worker process polling the queue (two workers share the load). Last line: ``wf_temporal: ratio=<latency ratio> target<=1.5 PASS|FAIL``
(PASS needs both targets).

    uv run python benchmarks/wf_temporal.py [--sequential 30] [--concurrent 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LATENCY_TARGET = 1.5
THROUGHPUT_TARGET = 0.7

RAW_WORKER = r"""
import asyncio, os, sys
from datetime import timedelta
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"

@workflow.defn(name="hello")
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(say_hello, name, start_to_close_timeout=timedelta(seconds=10))

async def main() -> None:
    client = await Client.connect(sys.argv[1])
    async with Worker(client, task_queue="bench-hello", workflows=[Hello], activities=[say_hello]):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)
"""

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: bench-hello}
spec:
  document: {dsl: 1.0.0, namespace: bench, name: bench-hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }'}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stigmer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


async def stigmer_run(backend: Any, name: str) -> float:
    """What `stigmer run` does once started: create, then watch until the stream ends."""
    from google.protobuf import json_format
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2

    started = time.perf_counter()
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="bench-hello"))
    json_format.ParseDict({"name": name}, spec.input)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    async for _event in backend.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id)):
        pass
    done = await backend.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
    if done.status.phase != execution_pb2.PHASE_SUCCEEDED:
        raise RuntimeError(
            f"execution {created.metadata.id} ended {execution_pb2.Phase.Name(done.status.phase)}"
        )
    return time.perf_counter() - started


async def raw_run(client: Any, name: str) -> float:
    started = time.perf_counter()
    result = await client.execute_workflow(
        "hello", name, id=f"bench-{name}-{time.time_ns()}", task_queue="bench-hello"
    )
    assert result == f"Hello, {name}!"
    return time.perf_counter() - started


async def measure(run: Any, sequential: int, concurrent: int) -> tuple[float, float]:
    for i in range(3):
        await run(f"warm{i}")
    latencies = [await run(f"s{i}") for i in range(sequential)]
    began = time.perf_counter()
    await asyncio.gather(*(run(f"c{i}") for i in range(concurrent)))
    throughput = concurrent / (time.perf_counter() - began)
    return statistics.median(latencies), throughput


async def bench(
    endpoint: str, token: str, temporal: str, sequential: int, concurrent: int
) -> dict[str, float]:
    from stigmer.core import load_backend
    from temporalio.client import Client

    backend = load_backend("cloud", endpoint=endpoint, token=token)
    client = await Client.connect(temporal)
    figures: dict[str, float] = {}
    try:
        # Interleave: raw, stigmer, raw, stigmer — the machine's noise hits both.
        raw_a = await measure(lambda n: raw_run(client, n), sequential // 2, concurrent)
        ours_a = await measure(lambda n: stigmer_run(backend, n), sequential // 2, concurrent)
        raw_b = await measure(lambda n: raw_run(client, n), sequential - sequential // 2, concurrent)
        ours_b = await measure(lambda n: stigmer_run(backend, n), sequential - sequential // 2, concurrent)
        figures["raw_latency"] = (raw_a[0] + raw_b[0]) / 2
        figures["raw_throughput"] = (raw_a[1] + raw_b[1]) / 2
        figures["stigmer_latency"] = (ours_a[0] + ours_b[0]) / 2
        figures["stigmer_throughput"] = (ours_a[1] + ours_b[1]) / 2
    finally:
        await backend.close()
    return figures


def start_second_worker(
    env: dict[str, str], home: Path, temporal: str, endpoint: str
) -> subprocess.Popen[bytes]:
    """Another workflow worker, started the way a worker machine starts one; returns once Temporal
    lists it among the queue's workflow and activity pollers."""
    import shutil

    token = (home / "local" / "runner.token").read_text(encoding="utf-8").strip()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stigmer.runner.workflow._main",
            "--backend",
            endpoint,
            "--token",
            token,
            "--temporal",
            temporal,
            "--task-queue",
            "stigmer-workflows",
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    binary = shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the second workflow worker exited with code {worker.returncode}")
        described = subprocess.run(
            [
                binary,
                "task-queue",
                "describe",
                "--task-queue",
                "stigmer-workflows",
                "--address",
                temporal,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        try:
            pollers = json.loads(described.stdout or "{}").get("pollers") or []
        except ValueError:
            pollers = []
        kinds = {
            p.get("taskQueueType") for p in pollers if str(p.get("identity", "")).startswith(f"{worker.pid}@")
        }
        if {"workflow", "activity"} <= kinds:
            return worker
        time.sleep(0.5)
    worker.kill()
    worker.wait()
    raise RuntimeError("the second workflow worker did not start polling within 60 s")


async def bench_stigmer(endpoint: str, token: str, sequential: int, concurrent: int) -> tuple[float, float]:
    from stigmer.core import load_backend

    backend = load_backend("cloud", endpoint=endpoint, token=token)
    try:
        return await measure(lambda n: stigmer_run(backend, n), sequential, concurrent)
    finally:
        await backend.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wf-temporal-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        env.update({"STIGMER_HOME": str(home), "NO_COLOR": "1"})
        server_port, temporal_port = free_port(), free_port()
        temporal = f"127.0.0.1:{temporal_port}"
        endpoint = f"grpc://127.0.0.1:{server_port}"
        raw_worker = None
        second_worker = None
        try:
            cli(env, "local", "start", "--port", str(server_port), "--temporal-port", str(temporal_port))
            manifest = home / "bench.yaml"
            manifest.write_text(WORKFLOW, encoding="utf-8")
            cli(env, "apply", "-f", str(manifest))
            token = (home / "tokens" / "admin").read_text(encoding="utf-8").strip()
            script = Path(tmp) / "raw_hello_worker.py"
            script.write_text(RAW_WORKER, encoding="utf-8")
            raw_worker = subprocess.Popen(
                [sys.executable, str(script), temporal],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert raw_worker.stdout is not None
            if raw_worker.stdout.readline().strip() != "ready":
                raise RuntimeError("the raw temporalio worker did not start")
            figures = asyncio.run(bench(endpoint, token, temporal, args.sequential, args.concurrent))
            cli_times = []
            for i in range(args.cli_runs):
                began = time.perf_counter()
                done = cli(
                    env, "run", "bench-hello", "--input", json.dumps({"name": f"cli{i}"}), "-o", "json"
                )
                cli_times.append(time.perf_counter() - began)
                assert json.loads(done.stdout)["phase"] == "SUCCEEDED"
            second_worker = start_second_worker(env, home, temporal, endpoint)
            two_workers = asyncio.run(bench_stigmer(endpoint, token, args.sequential, args.concurrent))
        finally:
            if second_worker is not None:
                second_worker.terminate()
                try:
                    second_worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    second_worker.kill()
                    second_worker.wait()
            if raw_worker is not None:
                raw_worker.kill()
                raw_worker.wait()
            subprocess.run(
                [sys.executable, "-m", "stigmer.cli", "local", "stop"],
                env=env,
                capture_output=True,
                timeout=120,
            )

    latency_ratio = figures["stigmer_latency"] / figures["raw_latency"]
    throughput_ratio = figures["stigmer_throughput"] / figures["raw_throughput"]
    print(
        f"raw temporalio hello-world: latency {figures['raw_latency'] * 1000:.0f} ms (median of {args.sequential}), "
        f"throughput {figures['raw_throughput']:.1f}/s ({args.concurrent} concurrent)"
    )
    print(
        f"stigmer run on the full stack: latency {figures['stigmer_latency'] * 1000:.0f} ms, "
        f"throughput {figures['stigmer_throughput']:.1f}/s"
    )
    print(
        f"stigmer run with two workflow workers: latency {two_workers[0] * 1000:.0f} ms, "
        f"throughput {two_workers[1]:.1f}/s ({two_workers[1] / figures['stigmer_throughput']:.2f}x one worker)"
    )
    print(
        f"`stigmer run` CLI process end to end: median {statistics.median(cli_times) * 1000:.0f} ms "
        f"over {args.cli_runs} runs (includes interpreter start and imports)"
    )
    print(
        f"latency ratio {latency_ratio:.2f} (target <= {LATENCY_TARGET}), "
        f"throughput ratio {throughput_ratio:.2f} (target >= {THROUGHPUT_TARGET})"
    )
    passed = latency_ratio <= LATENCY_TARGET and throughput_ratio >= THROUGHPUT_TARGET
    print(f"wf_temporal: ratio={latency_ratio:.2f} target<={LATENCY_TARGET} {'PASS' if passed else 'FAIL'}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
