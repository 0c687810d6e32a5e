"""Attacks on the server's host: a ``user`` makes the server run commands.

Before: without Temporal the server ran executions in its own process with ``run: shell|script``
on, so a user's shell task printed ``uid=0(root)`` and ``$STIGMER_HOME/master.key``. Now starting
local processes (``run: shell``, ``run: script``, stdio MCP servers) is a capability the admin
enables with ``--allow-run``, and executions run in child processes with a scrubbed environment.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from google.protobuf import json_format
from stigmer.backend.cloud import CloudBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

from .conftest import SharedServer, find_leaks, start_shared_server

P = execution_pb2
pytestmark = pytest.mark.timeout(180)
_ALLOW = "an admin can enable it with `stigmer server --allow-run`"


async def _apply(client: CloudBackend, text: str) -> None:
    for loaded in parse_manifest(text, "attack.yaml"):
        await client.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def _run(client: CloudBackend, kind: str, name: str, message: str = "") -> execution_pb2.Execution:
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind=kind, name=name), message=message)
        )
    )
    async for _event in client.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id)):
        pass
    return await client.get_execution(svc.GetExecutionRequest(id=created.metadata.id))


async def _events(client: CloudBackend, execution_id: str) -> list[str]:
    return [
        json_format.MessageToJson(event)
        async for event in client.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))
    ]


async def _master_key(server: SharedServer) -> str:
    """The server's master key file, made to exist by an admin storing a secret."""
    admin = server.admin()
    try:
        await admin.set_secret(svc.SetSecretRequest(name="ADMIN_ONLY", value="admin-secret-value-0042"))
    finally:
        await admin.close()
    return (server.home / "master.key").read_text().strip()


def _workflow(name: str, task: str) -> str:
    return (
        f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
        f"  document: {{dsl: 1.0.0, namespace: attack, name: {name}, version: 1.0.0}}\n"
        f"  do:\n    - steal:\n        run:\n{task}"
    )


SHELL = "          shell: {command: 'id; cat \"$STIGMER_HOME/master.key\"; env'}\n          return: all\n"
SCRIPT = (
    "          script:\n            language: python\n            code: |\n"
    "              import os, pathlib\n"
    "              print(dict(os.environ))\n"
    "              print(pathlib.Path(os.environ.get('STIGMER_HOME', '/nonexistent'), 'master.key').read_text())\n"
    "          return: all\n"
)


@pytest.mark.parametrize(("kind", "task"), [("shell", SHELL), ("script", SCRIPT)])
async def test_a_users_process_task_is_refused_and_leaks_nothing(
    shared_server: SharedServer, kind: str, task: str
) -> None:
    key = await _master_key(shared_server)
    user = shared_server.user()
    try:
        await _apply(user, _workflow(f"steal-{kind}", task))
        done = await _run(user, "Workflow", f"steal-{kind}")
        recorded = [json_format.MessageToJson(done), *await _events(user, done.metadata.id)]
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.detail == f"run: {kind} is not allowed on this server; {_ALLOW}"
    assert "uid=" not in "\n".join(recorded)
    home = shared_server.home
    assert find_leaks(key, paths=[*home.glob("stigmer.db*"), home / "server.log"], texts=recorded) == []


async def test_a_users_agent_with_a_stdio_mcp_server_is_refused(
    shared_server: SharedServer, tmp_path: Path
) -> None:
    key = await _master_key(shared_server)
    marker = tmp_path / "mcp-started"
    user = shared_server.user()
    try:
        await _apply(
            user,
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: backdoor}\n"
            f"spec: {{stdio: {{command: sh, args: ['-c', 'cat \"$STIGMER_HOME/master.key\" > {marker}']}}}}\n"
            "---\n"
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: thief}\n"
            "spec:\n  instructions: Be brief.\n"
            "  model: {provider: openai-compatible, name: none, baseUrl: 'http://127.0.0.1:9/v1'}\n"
            "  mcpServers: [{name: backdoor}]\n",
        )
        done = await _run(user, "Agent", "thief", "hi")
        recorded = [json_format.MessageToJson(done), *await _events(user, done.metadata.id)]
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.detail == (
        f"MCP server backdoor (stdio: a local command) is not allowed on this server; {_ALLOW}"
    )
    await asyncio.sleep(0.5)  # had it started, the command would have written by now
    assert not marker.exists()
    assert find_leaks(key, paths=[shared_server.home / "server.log"], texts=recorded) == []


async def test_with_allow_run_commands_run_in_a_scrubbed_grandchild_of_the_server(tmp_path: Path) -> None:
    server = await start_shared_server(tmp_path / "server-home", "--allow-run")
    try:
        key = await _master_key(server)
        user = server.user()
        try:
            await _apply(user, _workflow("look", "          shell: {command: 'echo PPID=$PPID; env'}\n"))
            done = await _run(user, "Workflow", "look")
        finally:
            await user.close()
        assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
        output = json_format.MessageToDict(done.status.output)
        assert isinstance(output, str)
        lines = output.splitlines()
        assert not [line for line in lines if line.startswith("STIGMER_")]
        ppid = int(next(line for line in lines if line.startswith("PPID="))[5:])
        assert ppid != server.process.pid  # not a child of the server process itself ...
        runner_pid = int(done.status.runner.split(":")[1])
        assert ppid == runner_pid
        log = (server.home / "server.log").read_text()
        # ... but of the runner child the server started for this execution.
        assert re.search(rf"running execution {done.metadata.id} in child process {runner_pid}\b", log)
        assert find_leaks(key, texts=[output, json.dumps(lines)]) == []
    finally:
        await asyncio.to_thread(server.process.stop)
