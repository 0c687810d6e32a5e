"""Attacks through an agent's built-in tools on a shared server (its defaults: no ``--allow-run``,
no ``--allow-private-network``), by a ``user`` whose agent the server runs:

- the ``shell`` tool is refused before anything starts (it is the ``run`` capability);
- ``fetch`` to loopback and private addresses (the server's own ports, a metadata service, an
  internal API) is refused;
- the ``files`` tools cannot leave the workspace (``..``, absolute paths to the master key), and
  seeding a workspace from a git repository on the server's own disk is refused.

Nothing of the server's home (its master key) reaches the run's record.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from stigmer.backend.cloud import CloudBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.testing import HttpWorld, Response, ScriptedLLM, call, text

from .conftest import SharedServer, find_leaks

P = execution_pb2
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def internal() -> Iterator[HttpWorld]:
    """An internal API on loopback that only the server's machine should reach."""
    with HttpWorld(lambda request: Response(body=b"internal secrets", content_type="text/plain")) as world:
        yield world


async def _agent(client: CloudBackend, llm: ScriptedLLM, tools: str, extra: str = "") -> None:
    manifest = (
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: probe}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
        f"  tools: {tools}\n{extra}"
    )
    for loaded in parse_manifest(manifest, "attack.yaml"):
        await client.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def _run(client: CloudBackend) -> tuple[execution_pb2.Execution, list[str]]:
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="probe"), message="go")
        )
    )
    events = [
        event
        async for event in client.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id))
    ]
    results = [
        str(json_format.MessageToDict(e.data).get("result", "")) for e in events if e.type == "tool.result"
    ]
    done = await client.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
    return done, results


async def _master_key(server: SharedServer) -> str:
    admin = server.admin()
    try:
        await admin.set_secret(svc.SetSecretRequest(name="ADMIN_ONLY", value="admin-secret-value-0042"))
    finally:
        await admin.close()
    return (server.home / "master.key").read_text().strip()


async def test_the_shell_tool_is_refused_on_a_server(shared_server: SharedServer, llm: ScriptedLLM) -> None:
    user = shared_server.user()
    try:
        await _agent(user, llm, "[{name: shell, autoApprove: true}]")
        llm.add(call("run_command", command="cat $STIGMER_HOME/master.key"), text("ok"))
        done, results = await _run(user)
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.detail == (
        "the shell tool (commands on the runner's machine) is not allowed on this server; "
        "an admin can enable it with `stigmer server --allow-run`"
    )
    assert results == [] and llm.requests == []


async def test_fetch_cannot_reach_loopback_or_private_addresses_on_a_server(
    shared_server: SharedServer, llm: ScriptedLLM, internal: HttpWorld
) -> None:
    grpc_port = shared_server.endpoint.rsplit(":", 1)[1]
    user = shared_server.user()
    try:
        await _agent(user, llm, "[fetch]")
        llm.add(
            call("fetch_url", url=f"{internal.url}/"),
            call("fetch_url", url=f"http://localhost:{internal.port}/"),
            call("fetch_url", url=f"http://127.0.0.1:{grpc_port}/"),
            call("fetch_url", url="http://169.254.169.254/latest/meta-data/"),
            call("fetch_url", url="http://[::ffff:127.0.0.1]:1/"),
            text("ok"),
        )
        done, results = await _run(user)
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert len(results) == 5
    for result in results:
        assert result.startswith("error: ") and "loopback or private address" in result, result
    assert internal.received == []
    assert "internal secrets" not in "".join(results)


async def test_files_cannot_reach_the_servers_home(shared_server: SharedServer, llm: ScriptedLLM) -> None:
    key = await _master_key(shared_server)
    home = shared_server.home
    user = shared_server.user()
    try:
        await _agent(user, llm, "[files]")
        llm.add(
            call("read_file", path=str(home / "master.key")),
            call("read_file", path="../../master.key"),
            call("list_files", path="../.."),
            call("grep", pattern=".", path=str(home)),
            call("write_file", path=str(home / "pwned.txt"), content="x"),
            text("ok"),
        )
        done, results = await _run(user)
        recorded = json_format.MessageToJson(done)
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert len(results) == 5
    assert all(r.startswith("error: ") and "outside the workspace" in r for r in results), results
    assert not (home / "pwned.txt").exists()
    assert find_leaks(key, paths=[home / "server.log"], texts=[recorded, *results]) == []


async def test_a_workspace_cloned_from_the_servers_disk_is_refused(
    shared_server: SharedServer, llm: ScriptedLLM
) -> None:
    user = shared_server.user()
    try:
        await _agent(user, llm, "[files]", f"  workspace: {{git: {{url: 'file://{shared_server.home}'}}}}\n")
        done, _ = await _run(user)
    finally:
        await user.close()
    assert done.status.phase == P.PHASE_FAILED
    assert "cloning the local repository" in done.status.error.detail
    assert "--allow-run" in done.status.error.detail
