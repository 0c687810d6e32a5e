"""The public API is exactly ``__all__``; importing and building opens no connection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import stigmer.sdk

EXPECTED = [
    "Agent",
    "Applied",
    "ApprovalRequired",
    "AsyncExecution",
    "AsyncStigmer",
    "Call",
    "CallAgent",
    "CallGrpc",
    "CallHttp",
    "CallOpenApi",
    "Case",
    "Catch",
    "Do",
    "Emit",
    "EnvVar",
    "Environment",
    "Execution",
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionPage",
    "Fired",
    "Published",
    "ScheduleInfo",
    "ExecutionTimeout",
    "Export",
    "For",
    "Fork",
    "Listen",
    "McpServer",
    "McpUsage",
    "Model",
    "Raise",
    "ResourceBuilder",
    "ResourcePage",
    "Retry",
    "RunScript",
    "RunShell",
    "RunWorkflow",
    "Session",
    "Set",
    "Skill",
    "Stigmer",
    "StigmerError",
    "SubAgent",
    "Switch",
    "Task",
    "Try",
    "Wait",
    "Workflow",
    "expr",
    "secret",
    "to_python",
    "validate",
    "ValidationFailed",
    "ValidationProblem",
]


def test_all_is_pinned() -> None:
    assert sorted(stigmer.sdk.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(stigmer.sdk, name) is not None


def test_errors_are_stigmer_errors() -> None:
    from stigmer.core import StigmerError

    for name in ("ApprovalRequired", "ExecutionCancelled", "ExecutionFailed", "ExecutionTimeout"):
        assert issubclass(getattr(stigmer.sdk, name), StigmerError)
    assert issubclass(stigmer.sdk.ExecutionTimeout, TimeoutError)


def test_no_stray_namespace_init() -> None:
    src = Path(stigmer.sdk.__file__).resolve().parents[1]
    assert not (src / "__init__.py").exists()
    assert (src / "sdk" / "py.typed").exists()


HEAVY = ("grpc", "sqlite3", "sqlalchemy", "sqlmodel", "temporalio", "pydantic_ai", "jq")


def _imported_after(code: str, home: Path) -> list[str]:
    script = code + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"STIGMER_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_build_and_construct_load_no_grpc_or_database(tmp_path: Path) -> None:
    code = """
from stigmer.sdk import AsyncStigmer, Set, Stigmer, Workflow
w = Workflow("w", do={"a": Set({"x": 1})})
w.to_message()
s = Stigmer()
a = AsyncStigmer(endpoint="grpc://127.0.0.1:1")
s.close()
"""
    assert _imported_after(code, tmp_path) == []


def test_the_first_call_loads_the_database_driver(tmp_path: Path) -> None:
    """The probe above could see a driver load: here one does (the standard library's sqlite3 on a
    current store; SQLAlchemy only compiles a migration's DDL, for a new or older database)."""
    code = """
from stigmer.sdk import Stigmer
with Stigmer() as s:
    s.list("workflow")
"""
    assert _imported_after(code, tmp_path) == ["sqlalchemy", "sqlite3"]  # a new store: migrated
    assert _imported_after(code, tmp_path) == ["sqlite3"]  # the same store again: current
