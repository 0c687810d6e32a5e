"""cli_get: `stigmer get agent` on a local store with 200 agents, median of 7, vs a bare typer app.

Baseline: the bare two-command typer app's `--help` (≈ 0.14 s here, the figure PERFORMANCE.md's
"sqlmodel alone is ≈ 4x" is relative to). The ratio against the app merely running a command is
printed too. Run with the venv's interpreter: `.venv/bin/python benchmarks/cli_get.py`.
Target: <= 5x.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))

from clibench import baseline_argv, summary, time_commands, venv_bin

TARGET = 5.0
AGENTS = 200


def manifest(count: int) -> str:
    """``count`` agents as one multi-document YAML stream."""
    docs = [
        "apiVersion: stigmer.ai/v1\nkind: Agent\n"
        f"metadata: {{name: agent-{i:03d}, labels: {{team: t{i % 7}}}}}\n"
        "spec:\n  instructions: You answer questions briefly.\n"
        "  model: {provider: openai, name: gpt-4o-mini}\n"
        for i in range(count)
    ]
    return "---\n".join(docs)


def main() -> None:
    stigmer = venv_bin("stigmer")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"STIGMER_HOME": str(Path(tmp) / "home"), "NO_COLOR": "1"}
        environ = {**os.environ, **env}
        path = Path(tmp) / "agents.yaml"
        path.write_text(manifest(AGENTS))
        subprocess.run([stigmer, "apply", "-f", str(path)], env=environ, check=True, capture_output=True)
        listed = subprocess.run([stigmer, "get", "agent"], env=environ, capture_output=True, text=True)
        rows = len(listed.stdout.strip().splitlines()) - 1
        if rows != AGENTS:
            raise SystemExit(f"expected {AGENTS} agents listed, found {rows}: {listed.stderr}")
        t = time_commands(
            {
                "base_help": baseline_argv("--help"),
                "base_cmd": baseline_argv("hello"),
                "get": [stigmer, "get", "agent"],
                "get_json": [stigmer, "get", "agent", "-o", "json"],
            },
            env=env,
        )
    ratio = t["get"] / t["base_help"]
    print(f"baseline typer app --help: {t['base_help'] * 1000:.1f} ms")
    print(f"baseline typer app command: {t['base_cmd'] * 1000:.1f} ms")
    print(
        f"stigmer get agent ({AGENTS} agents): {t['get'] * 1000:.1f} ms (ratio {ratio:.2f}; {t['get'] / t['base_cmd']:.2f} vs the command run)"
    )
    print(
        f"stigmer get agent -o json: {t['get_json'] * 1000:.1f} ms (ratio {t['get_json'] / t['base_help']:.2f})"
    )
    print(summary("cli_get", ratio, TARGET))


if __name__ == "__main__":
    main()
