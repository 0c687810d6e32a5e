"""Errors become gRPC status codes; request logs name method, code, duration, token — never secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unavailable,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2
from stigmer.server import NoDispatcher, admin_token_path, serve
from stigmer.testing.agents import agent_resource, environment_resource


class Raising:
    """A stand-in Backend (wiring only): every call raises the error it is given."""

    def __init__(self) -> None:
        self.error: BaseException = NotFound("nothing here")

    async def get(self, request: svc.GetRequest) -> resource_pb2.Resource:
        raise self.error

    async def watch_execution(self, request: Any) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        yield execution_pb2.ExecutionEvent(sequence=1, type="log")
        raise self.error

    async def close(self) -> None:
        return None


async def start(home: Path, backend: Any) -> tuple[asyncio.Task[None], str, tuple[tuple[str, str], ...]]:
    ready = asyncio.Event()
    bound: list[str] = []
    task = asyncio.create_task(
        serve(
            backend,
            "127.0.0.1:0",
            home=home,
            ready=ready,
            on_ready=bound.append,
            dispatcher=NoDispatcher(),
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    token = admin_token_path(home).read_text().strip()
    return task, bound[0], (("authorization", f"Bearer {token}"),)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("agent 'x' does not exist"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("exists already"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPrecondition("execution finished"), grpc.StatusCode.FAILED_PRECONDITION),
        (PermissionDenied("not yours"), grpc.StatusCode.PERMISSION_DENIED),
        (Unavailable("database busy"), grpc.StatusCode.UNAVAILABLE),
        (StigmerError("something odd"), grpc.StatusCode.UNKNOWN),
    ],
)
async def test_stigmer_errors_keep_their_code_and_message(
    tmp_path: Path, error: StigmerError, code: grpc.StatusCode
) -> None:
    backend = Raising()
    backend.error = error
    task, address, meta = await start(tmp_path, backend)
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await svc_grpc.BackendServiceStub(channel).Get(svc.GetRequest(), metadata=meta)
    assert info.value.code() == code
    assert info.value.details() == error.message
    await stop(task)


async def test_invalid_argument_sends_field_paths(tmp_path: Path) -> None:
    backend = Raising()
    backend.error = InvalidArgument("bad name", ["metadata.name", "spec.model"])
    task, address, meta = await start(tmp_path, backend)
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await svc_grpc.BackendServiceStub(channel).Get(svc.GetRequest(), metadata=meta)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailer = dict(info.value.trailing_metadata())["stigmer-field-paths-bin"]
    assert json.loads(trailer) == ["metadata.name", "spec.model"]
    await stop(task)


async def test_unexpected_exception_is_internal_with_a_generic_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Raising()
    backend.error = RuntimeError("db password is hunter2")
    task, address, meta = await start(tmp_path, backend)
    with caplog.at_level(logging.ERROR, logger="stigmer.server"):
        async with grpc.aio.insecure_channel(address) as channel:
            stub = svc_grpc.BackendServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Get(svc.GetRequest(), metadata=meta)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "hunter2" not in (info.value.details() or "")
            assert "server log" in (info.value.details() or "")
            # The same for a failure in the middle of a stream, after one event went out.
            seen = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for event in stub.WatchExecution(svc.WatchExecutionRequest(), metadata=meta):
                    seen.append(event.sequence)
            assert seen == [1]
            assert info.value.code() == grpc.StatusCode.INTERNAL
            # The server still serves.
            backend.error = NotFound("still here")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Get(svc.GetRequest(), metadata=meta)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)
    await stop(task)


async def test_request_log_names_calls_and_never_holds_secret_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_value = "s3cr3t-" + os.urandom(8).hex()
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=os.urandom(32))
    with caplog.at_level(logging.DEBUG):
        task, address, meta = await start(tmp_path, backend)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = svc_grpc.BackendServiceStub(channel)
            await stub.SetSecret(svc.SetSecretRequest(name="GH_TOKEN", value=secret_value), metadata=meta)
            env = environment_resource("prod", secrets=["GH_TOKEN"])
            await stub.Apply(svc.ApplyRequest(resource=env), metadata=meta)
            bot = agent_resource("bot", environments=["prod"])
            await stub.Apply(svc.ApplyRequest(resource=bot), metadata=meta)
            created = await stub.CreateExecution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
                ),
                metadata=meta,
            )
            await stub.UpdateExecutionStatus(
                svc.UpdateExecutionStatusRequest(
                    execution_id=created.metadata.id, phase=execution_pb2.PHASE_RUNNING
                ),
                metadata=meta,
            )
            context = await stub.GetExecutionContext(
                svc.GetExecutionContextRequest(execution_id=created.metadata.id), metadata=meta
            )
            assert context.secrets["GH_TOKEN"] == secret_value
        await stop(task)
    await backend.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert secret_value not in text
    token_id = meta[0][1].split()[1].split(".")[0]
    for method in ("SetSecret", "Apply", "CreateExecution", "GetExecutionContext"):
        assert f"rpc method={method} code=OK duration_ms=" in text
    assert f"token={token_id}" in text
    server_log = [r for r in caplog.records if r.name == "stigmer.server"]
    assert all(secret_value not in str(r.args) for r in server_log)
