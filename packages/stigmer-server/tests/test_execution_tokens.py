"""Tokens scoped to one execution: issued per dispatched run, resolved to a runner principal that
names the execution, revoked at the end; in memory only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import ChildDispatcher, serve
from stigmer.server._auth import EXECUTION_TOKEN_PREFIX, ExecutionTokens
from stigmer.server._tokens import Principal, TokenStore


def test_an_issued_token_resolves_to_a_runner_of_that_execution_until_revoked() -> None:
    tokens = ExecutionTokens()
    token = tokens.issue("wex_1")
    assert token.startswith(EXECUTION_TOKEN_PREFIX)
    principal = tokens.resolve(token)
    assert principal == Principal(
        token_id=token.split(".")[0], name="execution wex_1", role="runner", execution_id="wex_1"
    )
    other = tokens.issue("wex_2")
    assert tokens.resolve(other) is not None and tokens.resolve(other).execution_id == "wex_2"  # type: ignore[union-attr]
    tokens.revoke("wex_1")
    assert tokens.resolve(token) is None
    assert tokens.resolve(other) is not None
    tokens.revoke("wex_1")  # twice is harmless
    assert len(tokens) == 1


def test_a_new_run_of_an_execution_replaces_its_earlier_token() -> None:
    tokens = ExecutionTokens()
    first = tokens.issue("wex_1")
    second = tokens.issue("wex_1")
    assert first != second
    assert tokens.resolve(first) is None
    assert tokens.resolve(second) is not None
    assert len(tokens) == 1


@pytest.mark.parametrize(
    "presented",
    ["", "xtk_", "xtk_abc", "xtk_abc.", "tok_abc.def", "garbage", "xtk_0123456789abcdef0123.wrong-secret"],
)
def test_anything_but_an_issued_token_resolves_to_nobody(presented: str) -> None:
    tokens = ExecutionTokens()
    issued = tokens.issue("wex_1")
    assert tokens.resolve(presented) is None
    assert tokens.resolve(issued.split(".")[0] + ".not-the-secret") is None


def test_an_api_token_has_no_execution(tmp_path: Path) -> None:
    store = TokenStore(home=tmp_path)
    try:
        principal = store.verify(store.create("runner", "worker").token)
    finally:
        store.close()
    assert principal is not None and principal.execution_id == ""


async def test_the_server_accepts_a_scoped_token_as_a_runner_until_it_is_revoked(tmp_path: Path) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=os.urandom(32))
    dispatcher = ChildDispatcher(backend)
    ready = asyncio.Event()
    bound: list[str] = []
    task = asyncio.create_task(
        serve(
            backend, "127.0.0.1:0", home=tmp_path, ready=ready, on_ready=bound.append, dispatcher=dispatcher
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    channel = grpc.aio.insecure_channel(bound[0])
    stub = svc_grpc.BackendServiceStub(channel)
    try:
        registry = dispatcher.tokens
        assert registry is not None
        token = registry.issue("wex_unknown")
        meta = (("authorization", f"Bearer {token}"),)
        listed = await stub.ListExecutions(svc.ListExecutionsRequest(), metadata=meta)
        assert list(listed.executions) == []
        with pytest.raises(grpc.aio.AioRpcError) as denied:  # a runner may not manage secrets
            await stub.SetSecret(svc.SetSecretRequest(name="X", value="y"), metadata=meta)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        registry.revoke("wex_unknown")
        with pytest.raises(grpc.aio.AioRpcError) as revoked:
            await stub.ListExecutions(svc.ListExecutionsRequest(), metadata=meta)
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.close()
