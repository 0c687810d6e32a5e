"""Graceful shutdown: in-flight calls finish, watchers end with UNAVAILABLE, the process exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import NoDispatcher, ServerProcess, admin_token_path, serve
from stigmer.testing.agents import agent_resource


class Slow:
    """A stand-in Backend (wiring only) whose Get takes a while."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def get(self, request: svc.GetRequest) -> resource_pb2.Resource:
        self.started.set()
        await asyncio.sleep(1.0)
        return resource_pb2.Resource(agent=agent_pb2.Agent(kind="Agent"))


async def test_in_flight_call_finishes_and_new_calls_are_refused(tmp_path: Path) -> None:
    backend = Slow()
    ready = asyncio.Event()
    bound: list[str] = []
    task = asyncio.create_task(
        serve(
            backend,  # type: ignore[arg-type]
            "127.0.0.1:0",
            home=tmp_path,
            ready=ready,
            on_ready=bound.append,
            dispatcher=NoDispatcher(),
            grace=5.0,
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    meta = (("authorization", f"Bearer {admin_token_path(tmp_path).read_text().strip()}"),)
    async with grpc.aio.insecure_channel(bound[0]) as channel:
        stub = svc_grpc.BackendServiceStub(channel)
        in_flight = asyncio.ensure_future(stub.Get(svc.GetRequest(), metadata=meta))
        await asyncio.wait_for(backend.started.wait(), 10)
        task.cancel()  # same path as SIGTERM
        answer = await in_flight
        assert answer.agent.kind == "Agent"
    with pytest.raises(asyncio.CancelledError):
        await task
    async with grpc.aio.insecure_channel(bound[0]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await svc_grpc.BackendServiceStub(channel).Get(svc.GetRequest(), metadata=meta, timeout=2)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def running_execution(address: str, meta: Any) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = svc_grpc.BackendServiceStub(channel)
        agent = agent_resource("bot")
        await stub.Apply(svc.ApplyRequest(resource=agent), metadata=meta)
        created = await stub.CreateExecution(
            svc.CreateExecutionRequest(
                spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
            ),
            metadata=meta,
        )
        await stub.UpdateExecutionStatus(
            svc.UpdateExecutionStatusRequest(
                execution_id=created.metadata.id,
                phase=execution_pb2.PHASE_RUNNING,
                events=[execution_pb2.ExecutionEvent(type="log", text="started")],
            ),
            metadata=meta,
        )
        return str(created.metadata.id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_watchers_with_unavailable_and_exits_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    server = ServerProcess(
        home=tmp_path, database_url=f"sqlite:///{tmp_path / 's.db'}", args=["--no-run-executions"]
    )
    address = await asyncio.to_thread(server.start)
    meta = (("authorization", f"Bearer {admin_token_path(tmp_path).read_text().strip()}"),)
    execution_id = await running_execution(address, meta)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = svc_grpc.BackendServiceStub(channel)
        call = stub.WatchExecution(svc.WatchExecutionRequest(execution_id=execution_id), metadata=meta)
        first = await asyncio.wait_for(call.read(), 10)  # the watch is open and streaming
        assert first.sequence >= 1
        assert server.pid is not None
        start = time.monotonic()
        os.kill(server.pid, sig)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while True:
                event = await asyncio.wait_for(call.read(), 10)
                if event is grpc.aio.EOF:
                    break
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        assert "watch again from sequence" in (info.value.details() or "")
    code = await asyncio.to_thread(server.wait, 15)
    assert code == 0
    assert time.monotonic() - start < 8
    log = (tmp_path / "server.log").read_text()
    assert "stigmer server stopped" in log
    assert "Traceback" not in log
