"""CloudBackend against a real grpc.aio server on 127.0.0.1 whose answers each test scripts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.core import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2


class Scripted(svc_grpc.BackendServiceServicer):
    """Fails the first ``fail_first`` calls of each method with ``fail_code``, records metadata."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.fail_first = 0
        self.fail_code = grpc.StatusCode.UNAVAILABLE
        self.fail_message = "try later"
        self.trailer: tuple[tuple[str, bytes], ...] = ()
        self.authorization: list[str] = []
        self.delay = 0.0
        self.watch_requests: list[int] = []
        self.watch_script: list[list[int | str]] = []

    async def _answer(self, name: str, context: Any, response: Any) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        meta = dict(context.invocation_metadata())
        self.authorization.append(meta.get("authorization", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls[name] <= self.fail_first:
            if self.trailer:
                context.set_trailing_metadata(self.trailer)
            await context.abort(self.fail_code, self.fail_message)
        return response

    async def Get(self, request: svc.GetRequest, context: Any) -> resource_pb2.Resource:
        return await self._answer("Get", context, resource_pb2.Resource())

    async def CreateExecution(self, request: Any, context: Any) -> execution_pb2.Execution:
        return await self._answer("CreateExecution", context, execution_pb2.Execution(kind="AgentExecution"))

    async def UpdateExecutionStatus(self, request: Any, context: Any) -> execution_pb2.Execution:
        return await self._answer("UpdateExecutionStatus", context, execution_pb2.Execution())

    async def Delete(self, request: Any, context: Any) -> resource_pb2.Resource:
        return await self._answer("Delete", context, resource_pb2.Resource())

    async def WatchExecution(
        self, request: svc.WatchExecutionRequest, context: Any
    ) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        self.watch_requests.append(request.after_sequence)
        script = self.watch_script.pop(0) if self.watch_script else []
        for step in script:
            if step == "drop":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
            if step == "deny":
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "runner role needed")
            assert isinstance(step, int)
            yield execution_pb2.ExecutionEvent(execution_id=request.execution_id, sequence=step, type="log")


@pytest.fixture
async def server() -> AsyncIterator[tuple[Scripted, int]]:
    servicer = Scripted()
    srv = grpc.aio.server()
    svc_grpc.add_BackendServiceServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield servicer, port
    await srv.stop(None)


def ref() -> svc.GetRequest:
    return svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name="a"))


async def test_idempotent_call_is_retried_on_unavailable(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.fail_first = 2
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="secret-token")
    await backend.get(ref())
    assert servicer.calls["Get"] == 3
    assert set(servicer.authorization) == {"Bearer secret-token"}
    await backend.close()


async def test_update_execution_status_is_retried(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.fail_first = 1
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    await backend.update_execution_status(svc.UpdateExecutionStatusRequest(execution_id="aex_1"))
    assert servicer.calls["UpdateExecutionStatus"] == 2
    await backend.close()


async def test_status_update_with_unnumbered_events_is_sent_once(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.fail_first = 1
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    request = svc.UpdateExecutionStatusRequest(
        execution_id="aex_1", events=[execution_pb2.ExecutionEvent(type="log", text="x")]
    )
    with pytest.raises(Unavailable):
        await backend.update_execution_status(request)
    assert servicer.calls["UpdateExecutionStatus"] == 1  # a repeat would append the event twice
    numbered = svc.UpdateExecutionStatusRequest(
        execution_id="aex_1", events=[execution_pb2.ExecutionEvent(sequence=7, type="log", text="x")]
    )
    servicer.fail_first = 2
    await backend.update_execution_status(numbered)
    assert servicer.calls["UpdateExecutionStatus"] == 3
    await backend.close()


async def test_any_call_is_retried_while_no_connection_can_be_made() -> None:
    """A server that is still starting never saw the request, so even CreateExecution is retried."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servicer = Scripted()
    srv = grpc.aio.server()
    svc_grpc.add_BackendServiceServicer_to_server(servicer, srv)

    async def start_later() -> None:
        await asyncio.sleep(0.4)
        assert srv.add_insecure_port(f"127.0.0.1:{port}") == port
        await srv.start()

    starter = asyncio.create_task(start_later())
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t", retries=8)
    created = await backend.create_execution(svc.CreateExecutionRequest())
    assert created.kind == "AgentExecution"
    assert servicer.calls["CreateExecution"] == 1
    await starter
    await backend.close()
    await srv.stop(None)


@pytest.mark.parametrize("method", ["create_execution", "delete"])
async def test_non_idempotent_calls_are_sent_once(server: tuple[Scripted, int], method: str) -> None:
    servicer, port = server
    servicer.fail_first = 1
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    request = svc.CreateExecutionRequest() if method == "create_execution" else svc.DeleteRequest()
    with pytest.raises(Unavailable) as info:
        await getattr(backend, method)(request)
    assert sum(servicer.calls.values()) == 1
    assert "try later" in str(info.value)
    await backend.close()


async def test_retries_give_up_with_unavailable(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.fail_first = 100
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t", retries=3)
    with pytest.raises(Unavailable, match=r"cannot reach the Stigmer server at grpc://127\.0\.0\.1"):
        await backend.get(ref())
    assert servicer.calls["Get"] == 4
    await backend.close()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.INTERNAL, StigmerError),
    ],
)
async def test_status_codes_map_to_core_errors_with_the_server_message(
    server: tuple[Scripted, int], code: grpc.StatusCode, error: type[StigmerError]
) -> None:
    servicer, port = server
    servicer.fail_first = 1
    servicer.fail_code = code
    servicer.fail_message = "agent 'a' is not here"
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    with pytest.raises(error) as info:
        await backend.get(ref())
    assert type(info.value) is error
    assert str(info.value) == "agent 'a' is not here"
    assert servicer.calls["Get"] == 1
    await backend.close()


async def test_invalid_argument_carries_field_paths(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.fail_first = 1
    servicer.fail_code = grpc.StatusCode.INVALID_ARGUMENT
    servicer.fail_message = "spec.model.name is required"
    servicer.trailer = (("stigmer-field-paths-bin", json.dumps(["spec.model.name"]).encode()),)
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    with pytest.raises(InvalidArgument) as info:
        await backend.get(ref())
    assert info.value.field_paths == ("spec.model.name",)
    await backend.close()


async def test_deadline_on_every_call(server: tuple[Scripted, int]) -> None:
    servicer, port = server
    servicer.delay = 2.0
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t", timeout=0.3, retries=0)
    start = time.monotonic()
    with pytest.raises(Unavailable, match=r"did not answer within 0.3 s"):
        await backend.create_execution(svc.CreateExecutionRequest())
    assert time.monotonic() - start < 1.5
    await backend.close()


async def test_loopback_client_reads_the_admin_token_file(
    server: tuple[Scripted, int], tmp_path: Path
) -> None:
    servicer, port = server
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "admin").write_text("tok_abc.def\n")
    (tmp_path / "tokens" / "admin.endpoint").write_text(f"localhost:{port}\n")
    backend = CloudBackend(f"grpc://localhost:{port}", home=tmp_path)
    await backend.get(ref())
    assert servicer.authorization == ["Bearer tok_abc.def"]
    await backend.close()


async def test_the_admin_token_goes_only_to_the_endpoint_it_was_written_for(
    server: tuple[Scripted, int], tmp_path: Path
) -> None:
    servicer, port = server
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "admin").write_text("tok_abc.def\n")
    endpoint = tmp_path / "tokens" / "admin.endpoint"
    # No record (a server of an older version), another port, another loopback host: no token.
    for recorded in (None, f"127.0.0.1:{port + 1}", f"127.0.0.2:{port}", f"[::1]:{port}"):
        if recorded is None:
            endpoint.unlink(missing_ok=True)
        else:
            endpoint.write_text(recorded + "\n")
        backend = CloudBackend(f"grpc://127.0.0.1:{port}", home=tmp_path)
        await backend.get(ref())
        await backend.close()
    assert servicer.authorization == ["", "", "", ""]
    endpoint.write_text(f"127.0.0.1:{port}\n")
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", home=tmp_path)
    await backend.get(ref())
    await backend.close()
    assert servicer.authorization[-1] == "Bearer tok_abc.def"


async def test_loopback_client_rereads_a_replaced_token_file_once(
    server: tuple[Scripted, int], tmp_path: Path
) -> None:
    servicer, port = server
    (tmp_path / "tokens").mkdir()
    token_file = tmp_path / "tokens" / "admin"
    token_file.write_text("tok_old.x\n")
    (tmp_path / "tokens" / "admin.endpoint").write_text(f"127.0.0.1:{port}\n")
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", home=tmp_path)
    await backend.get(ref())
    token_file.write_text("tok_new.y\n")
    servicer.fail_first = servicer.calls["Get"] + 1
    servicer.fail_code = grpc.StatusCode.UNAUTHENTICATED
    await backend.get(ref())
    assert servicer.authorization[-2:] == ["Bearer tok_old.x", "Bearer tok_new.y"]
    await backend.close()


async def test_explicit_token_wins_and_no_token_means_no_header(
    server: tuple[Scripted, int], tmp_path: Path
) -> None:
    servicer, port = server
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "admin").write_text("tok_file.x\n")
    (tmp_path / "tokens" / "admin.endpoint").write_text(f"127.0.0.1:{port}\n")
    await CloudBackend(f"grpc://127.0.0.1:{port}", token="tok_mine.y", home=tmp_path).get(ref())
    await CloudBackend(f"grpc://127.0.0.1:{port}", home=tmp_path / "empty").get(ref())
    assert servicer.authorization == ["Bearer tok_mine.y", ""]


async def test_watch_resumes_after_a_broken_stream_without_loss_or_repeat(
    server: tuple[Scripted, int],
) -> None:
    servicer, port = server
    # First stream breaks after 3 events; the second repeats 3 (a server replaying) and goes on.
    servicer.watch_script = [[1, 2, 3, "drop"], [3, 4, 5]]
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    seen = [
        event.sequence
        async for event in backend.watch_execution(svc.WatchExecutionRequest(execution_id="aex_1"))
    ]
    assert seen == [1, 2, 3, 4, 5]
    assert servicer.watch_requests == [0, 3]
    await backend.close()


async def test_watch_starts_after_the_requested_sequence_and_raises_other_errors(
    server: tuple[Scripted, int],
) -> None:
    servicer, port = server
    servicer.watch_script = [[8, 9, "deny"]]
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
    seen: list[int] = []
    with pytest.raises(PermissionDenied, match="runner role needed"):
        async for event in backend.watch_execution(
            svc.WatchExecutionRequest(execution_id="aex_1", after_sequence=7)
        ):
            seen.append(event.sequence)
    assert seen == [8, 9]
    assert servicer.watch_requests == [7]
    await backend.close()


async def test_watch_gives_up_when_the_server_stays_away() -> None:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t", timeout=0.5)
    start = time.monotonic()
    with pytest.raises(Unavailable, match="run the watch again to resume"):
        async for _ in backend.watch_execution(svc.WatchExecutionRequest(execution_id="aex_1")):
            pass
    assert time.monotonic() - start < 5
    await backend.close()


def test_one_client_works_across_event_loops() -> None:
    """``asyncio.run`` twice with the same client (a sync facade does this): a channel per loop."""
    from concurrent.futures import ThreadPoolExecutor

    calls: list[str] = []

    class Sync(svc_grpc.BackendServiceServicer):
        def Get(self, request: svc.GetRequest, context: Any) -> resource_pb2.Resource:
            calls.append(request.ref.name)
            return resource_pb2.Resource()

    srv = grpc.server(ThreadPoolExecutor(max_workers=2))
    svc_grpc.add_BackendServiceServicer_to_server(Sync(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        backend = CloudBackend(f"grpc://127.0.0.1:{port}", token="t")
        asyncio.run(backend.get(ref()))
        asyncio.run(backend.get(ref()))
        assert calls == ["a", "a"]
    finally:
        srv.stop(None)
