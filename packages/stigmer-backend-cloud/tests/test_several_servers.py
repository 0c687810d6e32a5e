"""CloudBackend with several servers (issue 24): real grpc.aio servers on 127.0.0.1 whose answers
each test scripts; calls are balanced by gRPC's round_robin and retried on another server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.core import Unavailable
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2


class Counting(svc_grpc.BackendServiceServicer):
    """Answers Get and CreateExecution (failing the first ``fail_first`` with UNAVAILABLE) and
    streams the events of ``watch_script`` (``"drop"`` ends a stream with UNAVAILABLE)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: dict[str, int] = {}
        self.fail_first = 0
        self.watch_requests: list[int] = []
        self.watch_script: list[list[int | str]] = []

    async def _answer(self, method: str, context: Any, response: Any) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] <= self.fail_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is going away")
        return response

    async def Get(self, request: svc.GetRequest, context: Any) -> resource_pb2.Resource:
        answer = resource_pb2.Resource()
        answer.agent.metadata.name = self.name
        return await self._answer("Get", context, answer)

    async def CreateExecution(self, request: Any, context: Any) -> execution_pb2.Execution:
        return await self._answer("CreateExecution", context, execution_pb2.Execution(kind="AgentExecution"))

    async def WatchExecution(
        self, request: svc.WatchExecutionRequest, context: Any
    ) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        self.watch_requests.append(request.after_sequence)
        script = self.watch_script.pop(0) if self.watch_script else []
        for step in script:
            if step == "drop":
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} stopped")
            assert isinstance(step, int)
            if step > request.after_sequence:
                yield execution_pb2.ExecutionEvent(
                    execution_id=request.execution_id, sequence=step, type="log"
                )


class Server:
    def __init__(self, name: str, port: int = 0) -> None:
        self.servicer = Counting(name)
        self.port = port
        self._server: Any = None

    async def start(self) -> Server:
        self._server = grpc.aio.server()
        svc_grpc.add_BackendServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        return self

    async def stop(self) -> None:
        await self._server.stop(None)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Server, Server]]:
    a, b = await Server("a").start(), await Server("b").start()
    yield a, b
    await a.stop()
    await b.stop()


def ref() -> svc.GetRequest:
    return svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="x"))


async def test_calls_are_balanced_over_every_server(pair: tuple[Server, Server]) -> None:
    a, b = pair
    backend = CloudBackend(f"grpc://127.0.0.1:{a.port},grpc://127.0.0.1:{b.port}", token="t")
    await _both_connected(backend, a, b)
    answered = [(await backend.get(ref())).agent.metadata.name for _ in range(20)]
    await backend.close()
    assert answered.count("a") == answered.count("b") == 10, answered  # round_robin: in turn


async def test_a_stopped_server_is_left_out(pair: tuple[Server, Server]) -> None:
    a, b = pair
    backend = CloudBackend(f"grpc://127.0.0.1:{a.port},127.0.0.1:{b.port}", token="t")
    await backend.get(ref())
    await a.stop()
    answered = [(await backend.get(ref())).agent.metadata.name for _ in range(10)]
    assert answered == ["b"] * 10
    # It comes back on the same port: calls reach it again.
    restarted = await Server("a", a.port).start()
    a._server = restarted._server
    for _ in range(100):
        if (await backend.get(ref())).agent.metadata.name == "a":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the restarted server never answered")
    await backend.close()


async def _both_connected(backend: CloudBackend, *servers: Server) -> None:
    """Call until every server has answered once (round_robin connects to all of them at once, but
    the first calls go to whichever was ready first); then forget those calls."""
    seen: set[str] = set()
    for _ in range(100):
        seen.add((await backend.get(ref())).agent.metadata.name)
        if len(seen) == len(servers):
            break
    assert len(seen) == len(servers)
    for server in servers:
        server.servicer.calls.clear()


async def test_an_idempotent_call_refused_as_unavailable_is_retried_on_the_other_server(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    # retries=0: only gRPC's retry policy (the service config) may send it again.
    backend = CloudBackend(f"grpc://127.0.0.1:{a.port},grpc://127.0.0.1:{b.port}", token="t", retries=0)
    await _both_connected(backend, a, b)
    a.servicer.fail_first = b.servicer.fail_first = 1
    assert (await backend.get(ref())).agent.metadata.name in ("a", "b")
    # Each server refuses its first call: three attempts, spread over both (round_robin).
    assert a.servicer.calls.get("Get", 0) + b.servicer.calls.get("Get", 0) == 3
    assert a.servicer.calls.get("Get", 0) >= 1 and b.servicer.calls.get("Get", 0) >= 1
    await backend.close()


async def test_a_create_refused_as_unavailable_is_not_sent_again(pair: tuple[Server, Server]) -> None:
    a, b = pair
    a.servicer.fail_first = b.servicer.fail_first = 1
    backend = CloudBackend(f"grpc://127.0.0.1:{a.port},grpc://127.0.0.1:{b.port}", token="t")
    with pytest.raises(Unavailable, match=r"any Stigmer server of grpc://127\.0\.0\.1"):
        await backend.create_execution(svc.CreateExecutionRequest())
    assert a.servicer.calls.get("CreateExecution", 0) + b.servicer.calls.get("CreateExecution", 0) == 1
    await backend.close()


async def test_a_watch_moves_to_the_other_server_without_loss_or_repeat(pair: tuple[Server, Server]) -> None:
    a, b = pair
    # The first stream (on either server) is dropped after event 3; the next one resumes it.
    a.servicer.watch_script = b.servicer.watch_script = [[1, 2, 3, "drop"], [1, 2, 3, 4, 5, 6]]
    backend = CloudBackend(f"grpc://127.0.0.1:{a.port},grpc://127.0.0.1:{b.port}", token="t")
    seen = [
        e.sequence async for e in backend.watch_execution(svc.WatchExecutionRequest(execution_id="aex_1"))
    ]
    await backend.close()
    assert seen == [1, 2, 3, 4, 5, 6]
    assert sorted(a.servicer.watch_requests + b.servicer.watch_requests) == [0, 3]


async def test_no_server_answering_is_one_clear_error() -> None:
    backend = CloudBackend("grpc://127.0.0.1:1,grpc://127.0.0.1:2", token="t", timeout=2, retries=1)
    with pytest.raises(Unavailable, match="cannot reach any Stigmer server of"):
        await backend.get(ref())
    await backend.close()


async def test_a_dns_name_is_resolved_by_grpc_and_balanced(pair: tuple[Server, Server]) -> None:
    a, _b = pair
    # localhost may have an IPv6 record where nothing listens: round_robin uses the one that answers.
    backend = CloudBackend(f"dns:///localhost:{a.port}", token="t")
    answered = {(await backend.get(ref())).agent.metadata.name for _ in range(5)}
    await backend.close()
    assert answered == {"a"}
