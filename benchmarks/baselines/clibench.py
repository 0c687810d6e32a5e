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


def installed_product() -> Path:
    """The ``bin`` folder of a benchmark-only venv holding Stigmer as ``pip install stigmer`` gives
    it: the wheels built from this checkout, their dependencies at the lock's versions, and nothing
    of the workspace's development tools (test-only packages such as the OTLP receiver pull extras,
    e.g. the MCP library's server half, that an installed Stigmer never imports).

    Made once per content of the sources and the lock (``~/.cache/stigmer-bench/product-*``).
    """
    import hashlib
    import shutil

    root = HERE.parent
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", root / "uv.lock"]
    for package in sorted((root / "packages").iterdir()):
        files.append(package / "pyproject.toml")
        files += sorted(
            p for p in (package / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stigmer-bench"
    venv = cache / f"product-{digest.hexdigest()[:12]}"
    if (venv / ".complete").exists():
        return venv / "bin"
    for stale in cache.glob("product-*"):
        shutil.rmtree(stale, ignore_errors=True)
    dist = venv / "dist"
    subprocess.run(["uv", "build", "--all-packages", "--out-dir", str(dist), "--quiet"], cwd=root, check=True)
    wheels = {w.name.split("-")[0].replace("_", "-"): w for w in dist.glob("*.whl")}
    overrides = venv / "overrides.txt"
    overrides.write_text("".join(f"{name} @ {whl.as_uri()}\n" for name, whl in sorted(wheels.items())))
    exported = subprocess.run(
        ["uv", "export", "--all-packages", "--no-dev", "--no-hashes", "--format", "requirements-txt"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    constraints = venv / "constraints.txt"
    constraints.write_text(
        "".join(
            line + "\n" for line in exported.splitlines() if line and not line.startswith(("-e", "#", " "))
        )
    )
    subprocess.run(["uv", "venv", "-q", "--allow-existing", "-p", sys.executable, str(venv)], check=True)
    subprocess.run(
        [
            *("uv", "pip", "install", "-q", "--compile-bytecode", "-p", str(venv / "bin" / "python")),
            *("--overrides", str(overrides), "-c", str(constraints), str(wheels["stigmer"])),
        ],
        check=True,
    )
    (venv / ".complete").write_text("ok\n")
    return venv / "bin"
