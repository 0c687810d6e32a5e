"""console_runs: the web console's runs page (HTML over HTTP, logged in) over 10,000 stored runs,
vs the same ListExecutions query (newest 50) made directly on the store; median of N requests each.

The page is bounded (50 runs a page, then "older runs"), so it stays fast however many runs are
stored. The runs are seeded straight into the store (LocalBackend.create_execution).

Run: uv run python benchmarks/console_runs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a `secrets.py` benchmark, which would shadow the standard library's module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

from stigmer.backend.local import LocalBackend  # noqa: E402
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2  # noqa: E402
from stigmer.proto.v1 import backend_service_pb2 as svc  # noqa: E402
from stigmer.proto.v1 import execution_pb2 as ex  # noqa: E402
from stigmer.server import NoDispatcher, TokenStore  # noqa: E402
from stigmer.server._http import HttpListener  # noqa: E402
from stigmer.server._metrics import ServerMetrics  # noqa: E402
from stigmer.server._servicer import BackendServicer  # noqa: E402
from stigmer.server.console import PAGE_SIZE, Gateway, console_app  # noqa: E402
from ulid import ULID  # noqa: E402

RUNS = int(os.environ.get("STIGMER_BENCH_RUNS", "10000"))
N = int(os.environ.get("STIGMER_BENCH_N", "100"))
TARGET = 3.0


SEEDS = 100  # runs created through the backend; the rest are copies of their rows


async def seed(backend: LocalBackend, database: Path) -> None:
    for name in ("alpha", "beta"):
        agent = agent_pb2.Agent(
            metadata=meta_pb2.Metadata(name=name), spec=agent_pb2.AgentSpec(instructions="hi")
        )
        await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    for i in range(min(SEEDS, RUNS)):
        labels = {"team": "data" if i % 3 else "web"}
        if i % 10 == 0:
            labels["stigmer.ai/schedule"] = "nightly"
        await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(
                    target=meta_pb2.ResourceRef(kind="Agent", name="alpha" if i % 2 else "beta"),
                    message=f"run {i}",
                ),
                labels=labels,
            )
        )
    # The other runs: the seeds' rows again under new ids, straight into the store's table.
    conn = sqlite3.connect(database)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(executions)") if row[1] != "pk"]
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM executions ORDER BY pk").fetchall()
        at = columns.index("id")
        clones = []
        for i in range(RUNS - len(rows)):
            row = list(rows[i % len(rows)])
            row[at] = f"aex_{str(ULID()).lower()}"
            clones.append(row)
        with conn:
            conn.executemany(
                f"INSERT INTO executions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                clones,
            )
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == RUNS
    finally:
        conn.close()


async def measure(home: Path) -> tuple[float, float, int]:
    backend = LocalBackend(home=home, master_key=bytes(32))
    tokens = TokenStore(home=home)
    start = time.perf_counter()
    await seed(backend, home / "stigmer.db")
    print(f"console_runs: seeded {RUNS:,} runs in {time.perf_counter() - start:.1f} s")
    admin = tokens.create("admin", "bench").token
    servicer = BackendServicer(backend, NoDispatcher())
    listener = HttpListener("127.0.0.1", 0, verify=tokens.verify, metrics=ServerMetrics())
    listener.mount("/console", console_app(Gateway(servicer, tokens)))
    address = await listener.start()
    direct: list[float] = []
    page: list[float] = []
    rows = 0
    try:
        # The browser's side: one kept-alive connection from another thread (as a browser is
        # another process), so the figure is the server's answer, not an HTTP client's parsing.
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)

        def get(path: str, body: str | None = None, cookie: str = "") -> tuple[int, str, list[str]]:
            headers = {"Cookie": cookie} if cookie else {}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read().decode()
            return answer.status, text, answer.headers.get_all("Set-Cookie") or []

        _status, form, cookies = await asyncio.to_thread(get, "/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf
        login = "; ".join(c.split(";")[0] for c in cookies)
        body = urllib.parse.urlencode({"csrf": csrf.group(1), "token": admin})
        _status, _text, cookies = await asyncio.to_thread(get, "/console/login", body, login)
        session = "; ".join(c.split(";")[0] for c in cookies if c.startswith("stigmer_console="))
        assert session, cookies

        def timed_page() -> tuple[float, int, str]:
            t0 = time.perf_counter()
            status, text, _ = get("/console/runs", cookie=session)
            return time.perf_counter() - t0, status, text

        request = svc.ListExecutionsRequest(page_size=PAGE_SIZE)
        for _ in range(3):  # warm both paths
            await backend.list_executions(request)
            assert (await asyncio.to_thread(timed_page))[1] == 200
        for _ in range(N):  # alternate, so other load on the machine hits both alike
            t0 = time.perf_counter()
            listed = await backend.list_executions(request)
            direct.append(time.perf_counter() - t0)
            took, status, text = await asyncio.to_thread(timed_page)
            assert status == 200
            page.append(took)
        rows = text.count("<tr data-run=")
        assert rows == len(listed.executions) == PAGE_SIZE
        conn.close()
    finally:
        await listener.stop()
        tokens.close()
        await backend.close()
    return statistics.median(direct), statistics.median(page), rows


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base, ours, rows = asyncio.run(measure(Path(tmp)))
    print(f"console_runs: store ListExecutions ({PAGE_SIZE} of {RUNS:,}) median of {N}: {base * 1000:.2f} ms")
    print(
        f"console_runs: runs page HTML ({rows} rows) over HTTP (kept-alive), median of {N}: {ours * 1000:.2f} ms"
    )
    ratio = ours / base
    print(f"console_runs: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
