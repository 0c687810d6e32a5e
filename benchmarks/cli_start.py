"""cli_start: `stigmer --help` and `stigmer version`, cold process, median of 7, vs a bare typer app.

The baseline is `benchmarks/baselines/typer_app.py` (two commands): its `--help` against ours,
its `version` command against `stigmer version`. The summary ratio is the worse of the two.
Run with the venv's interpreter: `.venv/bin/python benchmarks/cli_start.py`. Target: <= 1.3x.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))

from clibench import baseline_argv, summary, time_commands, venv_bin

TARGET = 1.3


def main() -> None:
    stigmer = venv_bin("stigmer")
    t = time_commands(
        {
            "base_help": baseline_argv("--help"),
            "help": [stigmer, "--help"],
            "base_cmd": baseline_argv("version"),
            "version": [stigmer, "version"],
        }
    )
    help_ratio = t["help"] / t["base_help"]
    version_ratio = t["version"] / t["base_cmd"]
    print(f"baseline typer app --help: {t['base_help'] * 1000:.1f} ms")
    print(f"baseline typer app version: {t['base_cmd'] * 1000:.1f} ms")
    print(f"stigmer --help: {t['help'] * 1000:.1f} ms (ratio {help_ratio:.2f})")
    print(f"stigmer version: {t['version'] * 1000:.1f} ms (ratio {version_ratio:.2f})")
    print(summary("cli_start", max(help_ratio, version_ratio), TARGET))


if __name__ == "__main__":
    main()
