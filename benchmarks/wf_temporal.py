"""wf_temporal: the same one-activity workflow — one HTTP call to a local server — run by Stigmer on
the full stack and by raw temporalio, on the same Temporal dev server, 30 sequential + 50 concurrent.

Stigmer's side is what `stigmer run bench-call` does once started, through the SDK: ``run`` (find
the target, CreateExecution through the stack's `stigmer server`, which starts the Temporal
workflow), then follow the execution's events until it ends. The workflow is one ``call: http``
task, run by the stack's `stigmer-workflow-runner` as an activity. Raw temporalio's side is a
workflow with one activity making the same request with httpx (one shared ``AsyncClient``, as the
Stigmer worker has), in its own worker process. Both call the same stdlib HTTP server (its own
process; keep-alive, ``TCP_NODELAY``, one buffered write per response, answers at once), and both
check the greeting it returns.

The two sides alternate (raw, Stigmer, raw, Stigmer … for ``--rounds`` rounds) so the machine's
noise hits both. Prints latency (median of the sequential runs) and throughput (runs per second of
the concurrent batches) for both, their ratios (targets: throughput >= 0.9x, latency <= 1.2x),
and for information whole `stigmer run` CLI processes and a second workflow worker. Last line:
``wf_temporal: ratio=<latency ratio> target<=1.2 PASS|FAIL`` (PASS needs both targets).

``--profile DIR`` (with ``PY_SPY`` naming a py-spy binary) records the server's and the workflow
worker's busy time during the comparison as collapsed stacks in DIR.

    uv run python benchmarks/wf_temporal.py [--sequential 30] [--concurrent 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stigmer.testing import free_port

LATENCY_TARGET = 1.2
THROUGHPUT_TARGET = 0.9

HTTP_SERVER = r"""
import http.server, json, socket, sys, urllib.parse

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    wbufsize = -1  # headers and body leave in one write (no Nagle + delayed-ACK stall)

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        body = json.dumps({"greeting": "Hello, " + query.get("name", [""])[0] + "!"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""

RAW_WORKER = r"""
import asyncio, os, sys
from datetime import timedelta
from temporalio import activity, workflow
with workflow.unsafe.imports_passed_through():
    import httpx
from temporalio.client import Client
from temporalio.worker import Worker

URL = sys.argv[2] if __name__ == "__main__" else ""
http = None

@activity.defn
async def greet(name: str) -> dict:
    response = await http.get(URL, params={"name": name})
    response.raise_for_status()
    return response.json()

@workflow.defn(name="bench-call")
class BenchCall:
    @workflow.run
    async def run(self, name: str) -> dict:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=30))

async def main() -> None:
    global http
    http = httpx.AsyncClient(timeout=30)
    client = await Client.connect(sys.argv[1])
    async with Worker(client, task_queue="bench-call", workflows=[BenchCall], activities=[greet]):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)
"""

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: bench-call}}
spec:
  document: {{dsl: 1.0.0, namespace: bench, name: bench-call, version: 1.0.0}}
  do:
    - greet:
        call: http
        with:
          method: get
          endpoint: {url}
          query: {{name: '${{ .name }}'}}
"""

Run = Callable[[str], Awaitable[float]]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stigmer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


async def stigmer_run(client: Any, name: str) -> float:
    """What `stigmer run bench-call` does once started: run, then follow the events to the end."""
    from stigmer.core import from_value, phase_name

    started = time.perf_counter()
    handle = await client.run("bench-call", input={"name": name})
    done = await handle.follow()
    if phase_name(done.status.phase) != "SUCCEEDED":
        raise RuntimeError(f"execution {handle.id} ended {phase_name(done.status.phase)}")
    elapsed = time.perf_counter() - started
    output = from_value(done.status.output) if done.status.HasField("output") else None
    if output != {"greeting": f"Hello, {name}!"}:
        raise RuntimeError(f"execution {handle.id} returned {output!r}")
    return elapsed


async def raw_run(client: Any, name: str) -> float:
    started = time.perf_counter()
    result = await client.execute_workflow(
        "bench-call", name, id=f"bench-{name}-{time.time_ns()}", task_queue="bench-call"
    )
    elapsed = time.perf_counter() - started
    if result != {"greeting": f"Hello, {name}!"}:
        raise RuntimeError(f"raw workflow returned {result!r}")
    return elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Side:
    """One side's sequential latencies and concurrent batches over all rounds, and the CPU time
    each process used while this side ran."""

    def __init__(self, run: Run, pids: dict[str, int]) -> None:
        self.run = run
        self.pids = pids
        self.latencies: list[float] = []
        self.batch_runs = 0
        self.batch_seconds = 0.0
        self.rounds = 0
        self.runs = 0
        self.cpu: dict[str, float] = dict.fromkeys(pids, 0.0)

    async def measure(self, sequential: int, concurrent: int) -> None:
        tag = f"r{self.rounds}"
        self.rounds += 1
        for i in range(2):
            await self.run(f"warm{tag}{i}")
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.latencies += [await self.run(f"s{tag}{i}") for i in range(sequential)]
        began = time.perf_counter()
        await asyncio.gather(*(self.run(f"c{tag}{i}") for i in range(concurrent)))
        self.batch_seconds += time.perf_counter() - began
        self.batch_runs += concurrent
        self.runs += sequential + concurrent
        for name, pid in self.pids.items():
            self.cpu[name] += cpu_seconds(pid) - before[name]

    def cpu_per_run(self) -> dict[str, float]:
        """Milliseconds of CPU per run, by process (those that used any)."""
        return {name: used / max(self.runs, 1) * 1000 for name, used in self.cpu.items() if used >= 0.005}

    def cpu_line(self) -> str:
        per_run = self.cpu_per_run()
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in per_run.items())
        return f"{sum(per_run.values()):.1f} ms ({parts})"

    @property
    def latency(self) -> float:
        return statistics.median(self.latencies)

    @property
    def throughput(self) -> float:
        return self.batch_runs / self.batch_seconds


def component_pids(home: Path) -> dict[str, int]:
    state = json.loads((home / "local" / "state.json").read_text(encoding="utf-8"))
    return {name: c["pid"] for name, c in state["components"].items() if c.get("pid")}


def start_profilers(home: Path, out: Path) -> list[subprocess.Popen[bytes]]:
    binary = os.environ.get("PY_SPY", "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    pids = component_pids(home)
    profilers = []
    for name in ("server", "workflow-runner"):
        profilers.append(
            subprocess.Popen(
                [
                    *(binary, "record", "--pid", str(pids[name]), "--format", "raw", "--rate", "200"),
                    *("--output", str(out / f"{name}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)
    return profilers


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        try:
            profiler.wait(timeout=60)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()


async def bench(
    endpoint: str,
    token: str,
    temporal: str,
    sequential: int,
    concurrent: int,
    rounds: int,
    pids: dict[str, int],
) -> tuple[Side, Side]:
    from stigmer.sdk import AsyncStigmer
    from temporalio.client import Client

    ours_client = AsyncStigmer(endpoint=endpoint, token=token)
    client = await Client.connect(temporal)
    raw = Side(lambda n: raw_run(client, n), pids)
    ours = Side(lambda n: stigmer_run(ours_client, n), pids)
    each = [sequential // rounds + (1 if i < sequential % rounds else 0) for i in range(rounds)]
    try:
        for count in each:  # raw, stigmer, raw, stigmer, ...
            await raw.measure(count, concurrent)
            await ours.measure(count, concurrent)
    finally:
        await ours_client.aclose()
    return raw, ours


async def bench_stigmer(endpoint: str, token: str, sequential: int, concurrent: int) -> Side:
    from stigmer.sdk import AsyncStigmer

    client = AsyncStigmer(endpoint=endpoint, token=token)
    side = Side(lambda n: stigmer_run(client, n), {})
    try:
        await side.measure(sequential, concurrent)
    finally:
        await client.aclose()
    return side


def start_second_worker(
    env: dict[str, str], home: Path, temporal: str, endpoint: str
) -> subprocess.Popen[bytes]:
    """Another workflow worker, started the way a worker machine starts one; returns once Temporal
    lists it among the queue's workflow and activity pollers."""
    import shutil

    token = (home / "local" / "runner.token").read_text(encoding="utf-8").strip()
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "stigmer-workflow-runner"),
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


def stop(process: subprocess.Popen[Any] | None, *, kill: bool = False) -> None:
    if process is None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="raw/Stigmer alternations")
    parser.add_argument("--cli-runs", type=int, default=5, help="whole `stigmer run` processes (0: skip)")
    parser.add_argument("--second-worker", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", type=Path, help="record py-spy profiles ($PY_SPY) into this folder")
    args = parser.parse_args()

    cli_times: list[float] = []
    two_workers: Side | None = None
    with tempfile.TemporaryDirectory(prefix="wf-temporal-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        env.update({"STIGMER_HOME": str(home), "NO_COLOR": "1"})
        server_port, temporal_port = free_port(), free_port()
        temporal = f"127.0.0.1:{temporal_port}"
        endpoint = f"grpc://127.0.0.1:{server_port}"
        http_server = raw_worker = second_worker = None
        profilers: list[subprocess.Popen[bytes]] = []
        try:
            http_script = Path(tmp) / "http_server.py"
            http_script.write_text(HTTP_SERVER, encoding="utf-8")
            http_server = subprocess.Popen(
                [sys.executable, str(http_script)], stdout=subprocess.PIPE, text=True
            )
            assert http_server.stdout is not None
            url = f"http://127.0.0.1:{int(http_server.stdout.readline())}/greet"
            cli(
                env,
                "local",
                "start",
                "--port",
                str(server_port),
                "--temporal-port",
                str(temporal_port),
                "--no-ui",
                "--http-port",
                "0",
            )
            manifest = home / "bench.yaml"
            manifest.write_text(WORKFLOW.format(url=url), encoding="utf-8")
            cli(env, "apply", "-f", str(manifest))
            token = (home / "tokens" / "admin").read_text(encoding="utf-8").strip()
            script = Path(tmp) / "raw_worker.py"
            script.write_text(RAW_WORKER, encoding="utf-8")
            raw_worker = subprocess.Popen(
                [sys.executable, str(script), temporal, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert raw_worker.stdout is not None
            if raw_worker.stdout.readline().strip() != "ready":
                raise RuntimeError("the raw temporalio worker did not start")
            if args.profile:
                profilers = start_profilers(home, args.profile)
            pids = {"client": os.getpid(), **component_pids(home)}
            pids.pop("agent-runner", None)
            pids.update({"raw-worker": raw_worker.pid, "http": http_server.pid})
            raw, ours = asyncio.run(
                bench(endpoint, token, temporal, args.sequential, args.concurrent, args.rounds, pids)
            )
            stop_profilers(profilers)
            profilers = []
            for i in range(args.cli_runs):
                began = time.perf_counter()
                done = cli(env, "run", "bench-call", "--input", json.dumps({"name": f"cli{i}"}), "-o", "json")
                cli_times.append(time.perf_counter() - began)
                assert json.loads(done.stdout)["phase"] == "SUCCEEDED"
            if args.second_worker:
                second_worker = start_second_worker(env, home, temporal, endpoint)
                two_workers = asyncio.run(bench_stigmer(endpoint, token, args.sequential, args.concurrent))
        finally:
            stop_profilers(profilers)
            stop(second_worker)
            stop(raw_worker, kill=True)
            subprocess.run(
                [sys.executable, "-m", "stigmer.cli", "local", "stop"],
                env=env,
                capture_output=True,
                timeout=120,
            )
            stop(http_server, kill=True)

    latency_ratio = ours.latency / raw.latency
    throughput_ratio = ours.throughput / raw.throughput
    print(
        f"raw temporalio, one httpx activity: latency {raw.latency * 1000:.0f} ms "
        f"(median of {len(raw.latencies)}), throughput {raw.throughput:.1f}/s "
        f"({args.concurrent} concurrent x {args.rounds})"
    )
    print(
        f"stigmer run (SDK) on the full stack, one call: http: latency {ours.latency * 1000:.0f} ms, "
        f"throughput {ours.throughput:.1f}/s"
    )
    print(f"CPU per run, raw side (ms): {raw.cpu_line()}")
    print(f"CPU per run, Stigmer side (ms): {ours.cpu_line()}")
    cpu_ratio = sum(ours.cpu_per_run().values()) / max(sum(raw.cpu_per_run().values()), 1e-9)
    print(
        f"CPU per run ratio {cpu_ratio:.2f} (for information: steadier than wall time on a loaded "
        "machine; where CPU is what limits, throughput follows its inverse)"
    )
    if two_workers is not None:
        print(
            f"stigmer run with two workflow workers: latency {two_workers.latency * 1000:.0f} ms, "
            f"throughput {two_workers.throughput:.1f}/s "
            f"({two_workers.throughput / ours.throughput:.2f}x one worker)"
        )
    if cli_times:
        print(
            f"`stigmer run` CLI process end to end: median {statistics.median(cli_times) * 1000:.0f} ms "
            f"over {len(cli_times)} runs (includes interpreter start and imports)"
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
