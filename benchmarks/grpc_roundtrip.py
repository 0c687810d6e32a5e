"""grpc_roundtrip: 5,000 `Get` calls through CloudBackend -> `stigmer server` -> LocalBackend,
against 5,000 calls of a trivial grpc.aio echo service on the same machine (both servers in their
own process, calls one at a time, in interleaved blocks). Also prints the server's idle RSS (target <= 150 MB).

The server runs at its default log level (`info`: no line per call; the echo service logs nothing
either). The median time a `Get` spends in the server's handler is read, for information, from the
per-call lines of a second, shorter run at `debug` (`--log-level debug` times that run instead).

    uv run python benchmarks/grpc_roundtrip.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CALLS = 5_000
WARMUP = 300
ROUNDS = 10
TARGET = 2.0
RSS_TARGET_MB = 150.0

ECHO_SERVER = r"""
import asyncio, sys
import grpc

async def main():
    async def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


async def measure(endpoint: str, home: Path, echo_port: int, calls: int, rounds: int) -> tuple[float, float]:
    """Total seconds for ``calls`` echo calls and ``calls`` Get calls, interleaved in ``rounds``
    blocks (alternating which goes first) so that machine noise hits both sides alike."""
    import grpc
    from stigmer.backend.cloud import CloudBackend
    from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
    from stigmer.proto.v1 import backend_service_pb2 as svc

    backend = CloudBackend(endpoint, home=home)
    agent = resource_pb2.Resource(
        agent=agent_pb2.Agent(
            api_version="stigmer.ai/v1",
            kind="Agent",
            metadata=meta_pb2.Metadata(name="support-bot", labels={"team": "support"}),
            spec=agent_pb2.AgentSpec(
                instructions="You answer questions about Acme's product, briefly.",
                model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini"),
            ),
        )
    )
    await backend.apply(svc.ApplyRequest(resource=agent))
    request = svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="support-bot"))
    payload = request.SerializeToString()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}")
    echo = channel.unary_unary("/bench.Echo/Echo")

    async def run_echo(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await echo(payload, timeout=30)
        return time.perf_counter() - start

    async def run_get(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await backend.get(request)
        return time.perf_counter() - start

    await run_echo(WARMUP)
    await run_get(WARMUP)
    echo_s = get_s = 0.0
    block = calls // rounds
    for i in range(rounds):
        if i % 2:
            echo_s += await run_echo(block)
            get_s += await run_get(block)
        else:
            get_s += await run_get(block)
            echo_s += await run_echo(block)
    await channel.close()
    await backend.close()
    return echo_s, get_s


async def get_calls(endpoint: str, home: Path, calls: int) -> None:
    """``calls`` `Get` calls of the benchmark's agent (applied by :func:`measure`), one at a time."""
    from stigmer.backend.cloud import CloudBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2

    backend = CloudBackend(endpoint, home=home)
    request = svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="support-bot"))
    for _ in range(WARMUP + calls):
        await backend.get(request)
    await backend.close()


async def time_local_get(database_url: str, home: Path, calls: int) -> float:
    """Seconds for ``calls`` in-process LocalBackend.get calls on the same database (for context)."""
    from stigmer.backend.local import LocalBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2

    backend = LocalBackend(database_url, home=home)
    request = svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="support-bot"))
    for _ in range(WARMUP):
        await backend.get(request)
    start = time.perf_counter()
    for _ in range(calls):
        await backend.get(request)
    elapsed = time.perf_counter() - start
    await backend.close()
    return elapsed


def handler_median_us(log: Path) -> float:
    """Median server-side duration of the Get calls, from the server's request log."""
    durations = sorted(
        float(line.split("duration_ms=")[1].split()[0])
        for line in log.read_text().splitlines()
        if "rpc method=Get code=OK" in line
    )
    return durations[len(durations) // 2] * 1000.0 if durations else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument(
        "--log-level", default="INFO", help="the timed server's log level (DEBUG logs every call)"
    )
    args = parser.parse_args()
    calls: int = args.calls - args.calls % ROUNDS

    from stigmer.server import ServerProcess

    with tempfile.TemporaryDirectory(prefix="stigmer-bench-") as tmp:
        home = Path(tmp)
        server = ServerProcess(
            home=home,
            database_url=f"sqlite:///{home / 'stigmer.db'}",
            args=["--log-level", args.log_level],
        )
        server.start()
        echo_proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
        try:
            assert echo_proc.stdout is not None
            echo_port = int(echo_proc.stdout.readline())
            assert server.pid is not None
            time.sleep(1.0)
            idle_rss = rss_mb(server.pid)
            echo_s, cloud_s = asyncio.run(measure(server.endpoint, home, echo_port, calls, ROUNDS))
            local_s = asyncio.run(time_local_get(f"sqlite:///{home / 'stigmer.db'}", home, calls))
            time.sleep(1.0)
            after_rss = rss_mb(server.pid)
        finally:
            echo_proc.terminate()
            echo_proc.wait(10)
            server.stop()
            handler_us = handler_median_us(server.log_path)
        if args.log_level.upper() != "DEBUG":  # the handler's time, from a run that logs each call
            logged = ServerProcess(
                home=home, database_url=f"sqlite:///{home / 'stigmer.db'}", args=["--log-level", "DEBUG"]
            )
            logged.start()
            try:
                asyncio.run(get_calls(logged.endpoint, home, min(calls, 1_000)))
            finally:
                logged.stop()
                handler_us = handler_median_us(logged.log_path)

    ratio = cloud_s / echo_s
    print(
        f"echo: {calls} calls in {echo_s:.3f} s ({calls / echo_s:,.0f} calls/s, {echo_s / calls * 1e6:.0f} us/call)"
    )
    print(
        f"cloud_get: {calls} calls in {cloud_s:.3f} s ({calls / cloud_s:,.0f} calls/s, "
        f"{cloud_s / calls * 1e6:.0f} us/call)"
    )
    print(f"local_get (in-process LocalBackend.get, for context): {local_s / calls * 1e6:.0f} us/call")
    print(f"server_get_handler (median, from the request log): {handler_us:.0f} us")
    rss_ok = idle_rss <= RSS_TARGET_MB
    print(
        f"server_idle_rss: {idle_rss:.1f} MB at start, {after_rss:.1f} MB after the run "
        f"target<={RSS_TARGET_MB:.0f} {'PASS' if rss_ok else 'FAIL'}"
    )
    print(f"grpc_roundtrip: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    os._exit(code)
