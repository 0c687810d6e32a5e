"""`stigmer --help` and `stigmer version` import none of the heavy libraries (fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = [
    "sqlmodel",
    "sqlalchemy",
    "grpc",
    "temporalio",
    "pydantic",
    "pydantic_ai",
    "openai",
    "anthropic",
    "httpx",
    "google.protobuf",
    "stigmer.proto",
    "stigmer.core",
    "stigmer.sdk",
    "asyncio",
]

_PROBE = """
import json, sys
from stigmer.cli._app import main
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def _modules(args: list[str]) -> tuple[set[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "STIGMER_HOME": "/nonexistent-stigmer-home"},
    )
    marker = result.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, result.stderr
    return set(json.loads(marker[1])), result.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["version"], ["version", "-o", "json"], ["get", "--help"], ["doctor", "--help"]]
)
def test_no_heavy_imports(args: list[str]) -> None:
    modules, stdout = _modules(args)
    allowed = {"get": {"stigmer.core", "stigmer.proto", "stigmer.sdk", "google.protobuf", "asyncio"}}.get(
        args[0], set()
    )
    loaded = sorted(
        name
        for name in HEAVY
        if name not in allowed and any(m == name or m.startswith(name + ".") for m in modules)
    )
    assert loaded == [], f"{args} imported {loaded}"
    assert stdout.strip()


def test_version_does_not_import_rich_or_importlib_metadata() -> None:
    modules, _ = _modules(["version"])
    assert "rich" not in modules
    assert "importlib.metadata" not in modules


def test_help_lists_every_command_without_importing_them() -> None:
    modules, stdout = _modules(["--help"])
    for command in [
        "apply",
        "get",
        "describe",
        "delete",
        "run",
        "agent",
        "workflow",
        "execution",
        "secret",
        "context",
        "login",
        "logout",
        "server",
        "token",
        "init",
        "version",
    ]:
        assert command in stdout
    imported = sorted(
        m
        for m in modules
        if m.startswith("stigmer.")
        and m
        not in {
            "stigmer.cli",
            "stigmer.cli._app",
            "stigmer.cli._lazy",
            "stigmer.cli._options",
            "stigmer.cli._errors",
        }
    )
    assert imported == []  # no command module, no output module, not the SDK, not core


def test_version_json_lists_this_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "version", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "stigmer-cli" in data["packages"]
    assert data["python"].count(".") == 2


def test_a_local_workflow_run_loads_no_validator_or_http_client_it_does_not_use(tmp_path: Path) -> None:
    """A cold `stigmer run` of a valid stored workflow with no HTTP call checks it with the compiled
    validator: neither ``jsonschema`` (only to explain a refusal) nor ``httpx`` (only for an HTTP
    call) is imported (about 150 ms of each cold run, issue 18)."""
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "STIGMER_HOME": str(tmp_path / "home")}
    manifest = tmp_path / "flow.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: cold}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: cold, version: 1.0.0}\n"
        "  do:\n    - a: {set: {x: '${ 1 + 1 }'}}\n"
    )
    applied = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "apply", "-f", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    probe = _PROBE.format(args=["run", "cold", "-o", "json"])
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env
    )
    output, marker = result.stdout, result.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, result.stderr
    assert json.loads(output)["output"] == {"x": 2}
    modules = set(json.loads(marker[1]))
    assert "stigmer.runner.workflow._interpreter" in modules  # it did run here
    loaded = sorted(m for m in ("jsonschema", "httpx", "temporalio", "grpc") if m in modules)
    assert loaded == []
