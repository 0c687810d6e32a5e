"""Shared helpers of the CLI benchmarks: cold-process timing against the bare typer baseline.

Measured and baseline processes are started alternately (a, b, a, b, ...) so that load from
other work on a shared machine hits both alike; each figure is the median of its runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BASELINE = HERE / "baselines" / "typer_app.py"
RUNS = 7


def compile_workspace() -> None:
    """Compile the workspace sources to bytecode, as an installed wheel would be.

    uv compiles site-packages (``compile-bytecode = true``) but not the editable ``src`` trees,
    and these shells set ``PYTHONDONTWRITEBYTECODE``: without this every run would recompile
    the stigmer modules, which no installed copy does.
    """
    import compileall

    for src in sorted((HERE.parent / "packages").glob("*/src")):
        compileall.compile_dir(str(src), quiet=1)


def venv_bin(name: str) -> str:
    """An executable next to this interpreter (the venv's ``stigmer``), not ``uv run``."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{path} not found: run `uv sync --all-packages` first")
    return str(path)


def baseline_argv(*args: str) -> list[str]:
    """The bare two-command typer app (``benchmarks/baselines/typer_app.py``)."""
    return [sys.executable, str(BASELINE), *args]


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def time_commands(
    commands: dict[str, list[str]], env: dict[str, str] | None = None, runs: int = RUNS
) -> dict[str, float]:
    """Median wall time (seconds) of each command over ``runs`` fresh processes, interleaved.

    One warm-up run of each first (file cache), then the rounds.
    """
    compile_workspace()
    environ = {**os.environ, **(env or {})}
    for argv in commands.values():
        _once(argv, environ)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(_once(argv, environ))
    return {name: statistics.median(values) for name, values in times.items()}


def summary(name: str, ratio: float, target: float) -> str:
    return f"{name}: ratio={ratio:.2f} target<={target} {'PASS' if ratio <= target else 'FAIL'}"
