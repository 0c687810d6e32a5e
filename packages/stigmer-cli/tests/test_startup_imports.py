"""`stigmer --help` and `stigmer version` import none of the heavy libraries (fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys

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
