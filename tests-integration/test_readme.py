"""The README's main command works as written, on the embedded default store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _main_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README has no bash block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1] == "uv run nox", "the README's second command must be the test command"
    return lines[0]


def test_readme_names_the_two_commands() -> None:
    main = _main_command()
    assert main.startswith("uv run stigmer ")


def test_readme_main_command_runs_on_the_embedded_store(tmp_path: Path) -> None:
    # Run the command exactly as the README writes it, with `uv run` replaced by this environment's
    # executables (the test environment is already synced; uv may not be on PATH here).
    command = _main_command()
    bindir = Path(shutil.which("stigmer") or "").parent
    assert (bindir / "stigmer").exists(), "the stigmer console script is not installed"
    command = command.replace("uv run stigmer", str(bindir / "stigmer"))
    env = {**os.environ, "STIGMER_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    result = subprocess.run(
        ["bash", "-c", command + " -o json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    execution = json.loads(result.stdout[result.stdout.index("{") :])
    assert execution["phase"] == "SUCCEEDED"
    assert execution["output"] == {"greeting": "Hello, world!"}
    assert execution["error"] is None
    (task,) = execution["tasks"]
    assert task["phase"] == "SUCCEEDED"
    assert task["startedAt"] is not None and task["startedAt"] <= task["finishedAt"]
    assert (tmp_path / "home" / "stigmer.db").exists()
