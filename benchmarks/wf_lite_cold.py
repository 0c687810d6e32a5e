"""wf_lite_cold: a cold `stigmer run` of a stored 1,000-task workflow (a new process each time),
vs a cold Python process making 1,000 single-row WAL commits with plain sqlite3.

The document (1,000 `set` tasks, each with a jq expression) is applied once; each round then runs
`stigmer run sets -o json` in a fresh process on a local store (everything a user waits for:
interpreter start, imports, opening the store, loading and checking the document, running and
persisting it, printing the result). The baseline is a fresh interpreter that opens a SQLite file
in WAL mode with LocalBackend's synchronous level and commits 1,000 rows one by one, each as large
as a task's record (its completed event plus a checkpoint). The two alternate (A B A B, the
machine is shared and noisy); medians of the rounds are compared.

Run: uv run python benchmarks/wf_lite_cold.py [--tasks 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))

from clibench import compile_workspace, summary, venv_bin

TARGET = 3.0

BASELINE = """
import sqlite3, sys
path, n, size, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = bytes(size)
conn = sqlite3.connect(path)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")  # what LocalBackend uses
conn.execute("CREATE TABLE IF NOT EXISTS rows (owner TEXT, sequence INTEGER, body BLOB, PRIMARY KEY (owner, sequence))")
conn.commit()
for i in range(offset, offset + n):
    conn.execute("INSERT INTO rows VALUES (?, ?, ?)", ("wex_bench", i, body))
    conn.commit()
conn.close()
"""


def manifest(n: int) -> str:
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
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n = args.tasks
    compile_workspace()
    stigmer = venv_bin("stigmer")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "STIGMER_HOME": str(home), "NO_COLOR": "1"}
        path = Path(tmp) / "sets.yaml"
        path.write_text(manifest(n))
        timed([stigmer, "apply", "-f", str(path)], env)
        run = [stigmer, "run", "sets", "-o", "json"]
        first, _, out = timed(run, env)  # warms the file cache; the store is already open-able
        result = json.loads(out)
        if result["phase"] != "SUCCEEDED" or result["output"]["total"] != n:
            raise SystemExit(f"wf_lite_cold: unexpected result {out[:500]}")
        # A task's record: its completed event carries the task's output; plus a checkpoint.
        size = len(json.dumps(result["output"])) * 2 + 64
        raw = Path(tmp) / "raw.db"
        base = [sys.executable, "-c", BASELINE, str(raw), str(n), str(size)]
        timed([*base, "0"], env)
        times: dict[str, list[float]] = {"stigmer": [], "sqlite3": []}
        cpus: dict[str, list[float]] = {"stigmer": [], "sqlite3": []}
        for r in range(args.rounds):
            order = ["stigmer", "sqlite3"] if r % 2 == 0 else ["sqlite3", "stigmer"]
            for what in order:
                argv = run if what == "stigmer" else [*base, str((r + 1) * n)]
                wall, cpu, _ = timed(argv, env)
                times[what].append(wall)
                cpus[what].append(cpu)
    cold = statistics.median(times["stigmer"])
    floor = statistics.median(times["sqlite3"])
    print(f"wf_lite_cold: first cold run {first:.3f} s")
    print(
        f"wf_lite_cold: cold `stigmer run` of {n} set tasks: median {cold:.3f} s "
        f"(min {min(times['stigmer']):.3f}, max {max(times['stigmer']):.3f})"
    )
    print(
        f"wf_lite_cold: cold python, {n} single-row WAL commits of {size} bytes: median {floor:.3f} s "
        f"(min {min(times['sqlite3']):.3f}, max {max(times['sqlite3']):.3f})"
    )
    print(
        f"wf_lite_cold: CPU time (user + system; varies less than wall time on a loaded machine): "
        f"stigmer {statistics.median(cpus['stigmer']):.3f} s, sqlite3 {statistics.median(cpus['sqlite3']):.3f} s"
    )
    print(summary("wf_lite_cold", cold / floor, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
