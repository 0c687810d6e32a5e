"""A `stigmer run` on the embedded SQLite store imports no SQLAlchemy: the store runs its SQL on the
standard library's sqlite3, and only a migration (a new or older database) compiles DDL with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stigmer.testing import cli_env

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: count}
spec:
  document: {dsl: 1.0.0, namespace: test, name: count, version: 1.0.0}
  input: {from: '${ {total: 0} }'}
  do:
    - one: {set: {total: '${ .total + 1 }'}}
    - two: {set: {total: '${ .total + 1 }'}}
"""

_PROBE = """
import json, sys
from stigmer.cli._app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy")) + "\\n")
"""


def _cli(home: Path, cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env=cli_env(home),
    )
    _, _, modules = done.stderr.rpartition("MODULES=")
    assert modules, done.stderr
    return done, json.loads(modules)


def test_a_run_on_a_current_store_imports_no_sqlalchemy(stigmer_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "count.yaml"
    path.write_text(WORKFLOW)
    applied, modules = _cli(stigmer_home, tmp_path, "apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    assert "sqlalchemy" in modules  # the probe can see it: the new store was migrated with its DDL
    ran, modules = _cli(stigmer_home, tmp_path, "run", "count", "-o", "json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == {"total": 2}
    assert modules == []
    listed, modules = _cli(stigmer_home, tmp_path, "execution", "list")
    assert listed.returncode == 0, listed.stderr
    assert modules == []
