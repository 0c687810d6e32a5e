"""A stdio McpServer's relative paths are resolved against its manifest's folder at apply, so
the stored server starts the same from any folder (a worker's, the CLI's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.text(max_size=300),
    args=st.lists(st.text(max_size=300), max_size=5),
    cwd=st.text(max_size=300) | st.just("a\x00b"),
)
def test_any_stdio_strings_resolve_without_an_error(
    tmp_path: Path, command: str, args: list[str], cwd: str
) -> None:
    """Whatever a manifest says, resolving never raises; a value that names no file next to the
    manifest stays as written (a relative ``cwd`` is made absolute)."""
    from stigmer.core import LoadedResource
    from stigmer.proto.v1 import mcp_server_pb2, meta_pb2, resource_pb2
    from stigmer.sdk._mcppaths import resolve_stdio_paths

    server = mcp_server_pb2.McpServer(
        metadata=meta_pb2.Metadata(name="x"),
        spec=mcp_server_pb2.McpServerSpec(
            stdio=mcp_server_pb2.StdioTransport(command=command, args=args, cwd=cwd)
        ),
    )
    item = LoadedResource(
        resource_pb2.Resource(mcp_server=server), "McpServer", "x", str(tmp_path / "m.yaml"), 1
    )
    resolve_stdio_paths(item)
    stdio = item.resource.mcp_server.spec.stdio  # type: ignore[union-attr]
    assert (stdio.command, list(stdio.args)) == (command, args)  # nothing exists in tmp_path
    assert stdio.cwd == cwd or Path(stdio.cwd).is_absolute()
