"""The CLI's SDK features end to end: `stigmer apply -f app.py` and `stigmer export`, errors included."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

APP = """
from stigmer.sdk import Environment, Set, Workflow

prod = Environment("prod", variables={"REGION": "eu"})
hello = Workflow("hello", namespace="apps", do={"greet": Set({"greeting": '${ "Hi " + .name }'})})

if __name__ == "__main__":
    print("the main block ran")
"""


def test_apply_a_python_file_then_run_and_export(stigmer: StigmerCli, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    dry = stigmer("apply", "-f", str(app), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "workflow/hello would be created (dry run)" in dry.stdout and "main block" not in dry.stdout
    applied = stigmer("apply", "-f", str(app), "-f", str(tmp_path / "app.py"), "-o", "json")
    assert applied.returncode == 1 and "declared twice" in applied.stderr  # the same file twice
    applied = stigmer("apply", "-f", str(app))
    assert applied.stdout.split() == ["environment/prod", "created", "workflow/hello", "created"]
    ran = stigmer("run", "hello", "--input", '{"name": "cli"}', "-o", "json")
    assert ran.returncode == 0 and '"greeting": "Hi cli"' in ran.stdout
    exported = stigmer("export", "workflow", "hello")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata:\n  name: hello\n")
    every = stigmer("export", "environment")
    assert "REGION: eu" in every.stdout and "hello" not in every.stdout


def test_errors_are_one_line_with_what_to_do(stigmer: StigmerCli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "from stigmer.sdk import Workflow\nWorkflow('w', do={'a': 1})\nraise ValueError('oops')\n"
    )
    result = stigmer("apply", "-f", str(broken))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {broken}: running it failed: ValueError: oops"]
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert "defines no resources" in stigmer("apply", "-f", str(empty)).stderr
    usage = stigmer("export")
    assert usage.returncode == 1 and "stigmer export --all -o DIR" in usage.stderr
    missing = stigmer("export", "agent", "nobody")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "nobody" in missing.stderr
    unknown = stigmer("export", "gizmo")
    assert unknown.returncode == 1 and "unknown kind 'gizmo'" in unknown.stderr
