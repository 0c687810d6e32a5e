"""Tokens, roles and TLS end to end: CloudBackend -> `stigmer server` process -> LocalBackend."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from stigmer.backend.cloud import CloudBackend
from stigmer.core import PermissionDenied, Unauthenticated, Unavailable
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server import ServerProcess, TokenStore, server_script
from stigmer.testing.agents import agent_resource, environment_resource

P = execution_pb2
SECRET = "ghp_integration_secret_value_42"


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        home=tmp_path, database_url=f"sqlite:///{tmp_path / 'stigmer.db'}", args=["--no-run-executions"]
    )
    await asyncio.to_thread(process.start)
    yield process
    assert await asyncio.to_thread(process.stop) == 0


def tokens(server: ServerProcess) -> TokenStore:
    return TokenStore(database_url=server.database_url)


async def running_execution(admin: CloudBackend) -> str:
    await admin.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value=SECRET))
    env = environment_resource("prod", secrets=["GH_TOKEN"], variables={"REGION": "eu"})
    await admin.apply(svc.ApplyRequest(resource=env))
    agent = agent_resource("bot", environments=["prod"])
    await admin.apply(svc.ApplyRequest(resource=agent))
    created = await admin.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
        )
    )
    await admin.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=created.metadata.id, phase=P.PHASE_RUNNING)
    )
    return str(created.metadata.id)


async def test_local_client_needs_no_token_but_a_wrong_token_is_refused(server: ServerProcess) -> None:
    local = CloudBackend(server.endpoint, home=server.home)
    listed = await local.list(svc.ListRequest(kind="Agent"))
    assert list(listed.resources) == []
    wrong = CloudBackend(server.endpoint, token="tok_01abcdef.not-a-real-secret", home=server.home)
    with pytest.raises(Unauthenticated) as info:
        await wrong.list(svc.ListRequest(kind="Agent"))
    assert "invalid or revoked token" in str(info.value)
    assert "stigmer login" in str(info.value)
    nobody = CloudBackend(server.endpoint, home=server.home / "elsewhere")
    with pytest.raises(Unauthenticated, match="missing credentials"):
        await nobody.list(svc.ListRequest(kind="Agent"))
    for client in (local, wrong, nobody):
        await client.close()


async def test_revoked_token_is_unauthenticated(server: ServerProcess) -> None:
    store = tokens(server)
    issued = store.create("user", "carol")
    client = CloudBackend(server.endpoint, token=issued.token)
    await client.list(svc.ListRequest(kind="Agent"))
    store.revoke("carol")
    error: Exception | None = None
    for _ in range(50):  # the server trusts a verified token for at most 2 s
        try:
            await client.list(svc.ListRequest(kind="Agent"))
        except Unauthenticated as exc:
            error = exc
            break
        await asyncio.sleep(0.2)
    assert isinstance(error, Unauthenticated)
    assert "revoked" in str(error)
    store.close()
    await client.close()


async def test_user_token_cannot_read_an_execution_context_but_a_runner_can(server: ServerProcess) -> None:
    admin = CloudBackend(server.endpoint, home=server.home)
    execution_id = await running_execution(admin)
    store = tokens(server)
    user = CloudBackend(server.endpoint, token=store.create("user", "dev").token)
    runner = CloudBackend(server.endpoint, token=store.create("runner", "worker").token)

    with pytest.raises(PermissionDenied) as info:
        await user.get_execution_context(svc.GetExecutionContextRequest(execution_id=execution_id))
    assert "GetExecutionContext requires the runner or admin role" in str(info.value)
    assert "'user'" in str(info.value)
    got = await user.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert got.status.phase == P.PHASE_RUNNING

    context = await runner.get_execution_context(svc.GetExecutionContextRequest(execution_id=execution_id))
    assert context.secrets["GH_TOKEN"] == SECRET
    assert context.variables["REGION"] == "eu"
    with pytest.raises(PermissionDenied, match="role 'runner'"):
        await runner.set_secret(svc.SetSecretRequest(name="OTHER", value="x"))

    store.close()
    for client in (admin, user, runner):
        await client.close()
    assert SECRET not in server.log_path.read_text()


async def test_tls_with_a_private_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cert: Callable[[str], tuple[Path, Path]]
) -> None:
    cert, key = make_cert("server")
    other_ca, _ = make_cert("other")
    process = ServerProcess(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'stigmer.db'}",
        args=["--no-run-executions", "--tls-cert", str(cert), "--tls-key", str(key)],
    )
    await asyncio.to_thread(process.start)
    assert process.endpoint.startswith("grpcs://")
    good = CloudBackend(process.endpoint, home=tmp_path, tls_ca=cert)
    assert list((await good.list(svc.ListRequest(kind="Agent"))).resources) == []
    untrusted = CloudBackend(process.endpoint, home=tmp_path, tls_ca=other_ca, timeout=3, retries=1)
    with pytest.raises(Unavailable):
        await untrusted.list(svc.ListRequest(kind="Agent"))
    plaintext = CloudBackend(
        process.endpoint.replace("grpcs://", "grpc://"), home=tmp_path, timeout=3, retries=1
    )
    with pytest.raises(Unavailable):
        await plaintext.list(svc.ListRequest(kind="Agent"))
    for client in (good, untrusted, plaintext):
        await client.close()
    assert await asyncio.to_thread(process.stop) == 0


def test_server_refuses_a_public_plaintext_bind(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            server_script(),
            "--listen",
            "0.0.0.0:0",
            "--home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0:0 without TLS" in result.stderr
    assert "--insecure" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stigmer.db").exists()  # refused before opening any database


async def test_database_url_from_the_environment_holds_the_tokens_too(tmp_path: Path) -> None:
    """`stigmer token create` and the server agree when only $STIGMER_DATABASE_URL names the database."""
    import os

    url = f"sqlite:///{tmp_path / 'team.db'}"
    env = {**os.environ, "STIGMER_DATABASE_URL": url, "STIGMER_HOME": str(tmp_path)}
    process = ServerProcess(home=tmp_path, args=["--no-run-executions"], env=env)
    await asyncio.to_thread(process.start)
    store = TokenStore(database_url=url)
    client = CloudBackend(process.endpoint, token=store.create("user", "env-user").token)
    store.close()
    assert list((await client.list(svc.ListRequest(kind="Agent"))).resources) == []
    assert not (tmp_path / "tokens.db").exists()
    assert (tmp_path / "team.db").exists()
    await client.close()
    assert await asyncio.to_thread(process.stop) == 0
