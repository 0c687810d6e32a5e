"""A stdio McpServer's relative paths are resolved against its manifest's folder at apply, so
the stored server starts the same from any folder (a worker's, the CLI's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.sdk import Stigmer

MANIFEST = """\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {name: orders}
spec:
  stdio:
    command: python
    args: [support/orders.py, --region, eu, missing.py, -m, support]
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "support").mkdir(parents=True)
    (project / "support" / "orders.py").write_text("print('hi')\n")
    (project / "bin").mkdir()
    (project / "bin" / "serve").write_text("#!/bin/sh\n")
    return project


def test_relative_args_that_are_files_next_to_the_manifest_become_absolute(
    client: Stigmer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path)
    (project / "servers.yaml").write_text(MANIFEST)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    client.apply(project / "servers.yaml")

    stdio = client.get("mcpserver", "orders").spec.stdio  # type: ignore[attr-defined]
    assert stdio.command == "python"  # a program looked up on PATH, not a path
    # only what exists next to the manifest is a path; options and other words stay as written
    assert list(stdio.args) == [
        str((project / "support" / "orders.py").resolve()),
        "--region",
        "eu",
        "missing.py",
        "-m",
        "support",  # a folder named like a module: not a file
    ]
    assert stdio.cwd == ""
    # applying again from the manifest's own folder stores the same server
    monkeypatch.chdir(project)
    [applied] = client.apply("servers.yaml")
    assert applied.action == "unchanged"


def test_a_relative_command_and_cwd_are_resolved_too(
    client: Stigmer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path)
    (project / "servers.yaml").write_text(
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: local}\n"
        "spec: {stdio: {command: ./bin/serve, args: [orders.py], cwd: support}}\n"
        "---\n"
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: absolute}\n"
        "spec: {stdio: {command: /usr/bin/env, args: [/tmp/x.py], cwd: /tmp}}\n"
    )
    monkeypatch.chdir(tmp_path)

    client.apply(project / "servers.yaml")

    local = client.get("mcpserver", "local").spec.stdio  # type: ignore[attr-defined]
    assert local.command == str((project / "bin" / "serve").resolve())
    assert local.cwd == str((project / "support").resolve())
    assert list(local.args) == ["orders.py"]  # relative to its cwd, which is now absolute
    absolute = client.get("mcpserver", "absolute").spec.stdio  # type: ignore[attr-defined]
    assert (absolute.command, list(absolute.args), absolute.cwd) == ("/usr/bin/env", ["/tmp/x.py"], "/tmp")
