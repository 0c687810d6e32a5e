"""`serve()` in-process with a real LocalBackend: tokens, roles, health, reflection, TLS, bind rules."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from stigmer.backend.local import LocalBackend
from stigmer.core import InvalidArgument
from stigmer.proto.v1 import (
    agent_pb2,
    execution_pb2,
    meta_pb2,
    resource_pb2,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import NoDispatcher, TokenStore, admin_token_path, serve

KEY = os.urandom(32)


@dataclass
class Running:
    address: str
    home: Path
    store: TokenStore
    backend: LocalBackend
    admin: str

    def stub(self, token: str | None, channel: Any = None) -> tuple[Any, Any]:
        channel = channel or grpc.aio.insecure_channel(self.address)
        meta = (("authorization", f"Bearer {token}"),) if token is not None else ()
        return svc_grpc.BackendServiceStub(channel), meta


async def start_server(home: Path, **kwargs: Any) -> tuple[asyncio.Task[None], str]:
    ready = asyncio.Event()
    bound: list[str] = []
    task = asyncio.create_task(serve(home=home, ready=ready, on_ready=bound.append, **kwargs))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the startup error
    assert bound, "server did not become ready"
    return task, bound[0]


async def stop_server(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    store = TokenStore(home=tmp_path)
    task, address = await start_server(
        tmp_path, backend=backend, listen="127.0.0.1:0", tokens=store, dispatcher=NoDispatcher()
    )
    admin = admin_token_path(tmp_path).read_text().strip()
    yield Running(address, tmp_path, store, backend, admin)
    await stop_server(task)
    store.close()
    await backend.close()


def agent_resource(name: str) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        agent=agent_pb2.Agent(
            api_version="stigmer.ai/v1",
            kind="Agent",
            metadata=meta_pb2.Metadata(name=name),
            spec=agent_pb2.AgentSpec(
                instructions="Be brief.", model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini")
            ),
        )
    )


async def running_execution(r: Running) -> str:
    stub, meta = r.stub(r.admin)
    await stub.Apply(svc.ApplyRequest(resource=agent_resource("bot")), metadata=meta)
    created = await stub.CreateExecution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(
                target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message="hi"
            )
        ),
        metadata=meta,
    )
    await stub.UpdateExecutionStatus(
        svc.UpdateExecutionStatusRequest(execution_id=created.metadata.id, phase=execution_pb2.PHASE_RUNNING),
        metadata=meta,
    )
    return str(created.metadata.id)


async def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_admin_token_file_works_and_calls_without_token_are_refused(running: Running) -> None:
    stub, meta = running.stub(running.admin)
    listed = await stub.List(svc.ListRequest(kind="Agent"), metadata=meta)
    assert list(listed.resources) == []
    code, details = await code_of(running.stub(None)[0].List(svc.ListRequest(kind="Agent")))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing credentials" in details and "Bearer" in details


@pytest.mark.parametrize("token", ["nope", "tok_01abc.def", "", "Basic abc"])
async def test_wrong_tokens_are_unauthenticated(running: Running, token: str) -> None:
    channel = grpc.aio.insecure_channel(running.address)
    stub = svc_grpc.BackendServiceStub(channel)
    value = token if token.startswith("Basic") else f"Bearer {token}"
    code, details = await code_of(
        stub.List(svc.ListRequest(kind="Agent"), metadata=(("authorization", value),))
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "invalid or revoked token" in details and "stigmer login" in details
    await channel.close()


async def test_revoked_token_is_refused_within_seconds(running: Running) -> None:
    issued = running.store.create("user", "alice")
    stub, meta = running.stub(issued.token)
    assert (await code_of(stub.List(svc.ListRequest(kind="Agent"), metadata=meta)))[0] == grpc.StatusCode.OK
    running.store.revoke("alice")
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        code, details = await code_of(stub.List(svc.ListRequest(kind="Agent"), metadata=meta))
        if code != grpc.StatusCode.OK or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in details


async def test_user_token_cannot_read_an_execution_context(running: Running) -> None:
    execution_id = await running_execution(running)
    user = running.store.create("user", "bob").token
    stub, meta = running.stub(user)
    code, details = await code_of(
        stub.GetExecutionContext(svc.GetExecutionContextRequest(execution_id=execution_id), metadata=meta)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "runner or admin role" in details and "'user'" in details
    code, _ = await code_of(
        stub.UpdateExecutionStatus(svc.UpdateExecutionStatusRequest(execution_id=execution_id), metadata=meta)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # Everything else is allowed to a user.
    got = await stub.GetExecution(svc.GetExecutionRequest(id=execution_id), metadata=meta)
    assert got.status.phase == execution_pb2.PHASE_RUNNING


async def test_runner_token_reads_context_but_cannot_manage_resources(running: Running) -> None:
    execution_id = await running_execution(running)
    runner = running.store.create("runner", "worker").token
    stub, meta = running.stub(runner)
    context = await stub.GetExecutionContext(
        svc.GetExecutionContextRequest(execution_id=execution_id), metadata=meta
    )
    assert context.execution_id == execution_id
    updated = await stub.UpdateExecutionStatus(
        svc.UpdateExecutionStatusRequest(
            execution_id=execution_id,
            events=[execution_pb2.ExecutionEvent(type="log", text="working")],
        ),
        metadata=meta,
    )
    assert updated.status.last_sequence >= 1
    for call in (
        stub.Apply(svc.ApplyRequest(resource=agent_resource("other")), metadata=meta),
        stub.SetSecret(svc.SetSecretRequest(name="X", value="v"), metadata=meta),
        stub.Delete(svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="bot")), metadata=meta),
    ):
        code, details = await code_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "role 'runner'" in details


async def test_health_and_reflection_need_no_token(running: Running) -> None:
    channel = grpc.aio.insecure_channel(running.address)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "stigmer.v1.BackendService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    services: list[str] = []
    async for answer in reflection.ServerReflectionInfo(ask()):
        services += [s.name for s in answer.list_services_response.service]
    assert "stigmer.v1.BackendService" in services
    await channel.close()


async def test_non_loopback_without_tls_is_refused(tmp_path: Path) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY)
    with pytest.raises(InvalidArgument, match="--tls-cert and --tls-key, or --insecure"):
        await serve(backend, "0.0.0.0:0", home=tmp_path)
    with pytest.raises(InvalidArgument, match="both a certificate and its key"):
        await serve(backend, "127.0.0.1:0", home=tmp_path, tls_cert=tmp_path / "c.pem")
    with pytest.raises(InvalidArgument, match="host:port"):
        await serve(backend, "localhost", home=tmp_path)
    await backend.close()


async def test_insecure_flag_allows_a_plaintext_wildcard_bind(tmp_path: Path) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY)
    task, address = await start_server(
        tmp_path, backend=backend, listen="0.0.0.0:0", insecure=True, dispatcher=NoDispatcher()
    )
    port = address.rsplit(":", 1)[1]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    await channel.close()
    await stop_server(task)
    await backend.close()


async def test_tls_server_accepts_tls_clients_only(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY)
    task, address = await start_server(
        tmp_path, backend=backend, listen="127.0.0.1:0", tls_cert=cert, tls_key=key, dispatcher=NoDispatcher()
    )
    admin = admin_token_path(tmp_path).read_text().strip()
    meta = (("authorization", f"Bearer {admin}"),)
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    secure = grpc.aio.secure_channel(address, creds)
    listed = await svc_grpc.BackendServiceStub(secure).List(svc.ListRequest(kind="Agent"), metadata=meta)
    assert list(listed.resources) == []
    plain = grpc.aio.insecure_channel(address)
    code, _ = await code_of(
        svc_grpc.BackendServiceStub(plain).List(svc.ListRequest(kind="Agent"), metadata=meta, timeout=3)
    )
    assert code == grpc.StatusCode.UNAVAILABLE
    await secure.close()
    await plain.close()
    await stop_server(task)
    await backend.close()


async def test_a_taken_port_is_a_clear_error(running: Running, tmp_path: Path) -> None:
    from stigmer.core import FailedPrecondition

    backend = LocalBackend(f"sqlite:///{tmp_path / 'other.db'}", home=tmp_path / "other", master_key=KEY)
    with pytest.raises(FailedPrecondition, match=f"cannot listen on {running.address}"):
        await serve(backend, running.address, home=tmp_path / "other", dispatcher=NoDispatcher())
    await backend.close()
