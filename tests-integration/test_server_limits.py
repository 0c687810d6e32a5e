"""Message size limit: 16 MiB each way, with a clear error beyond it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from stigmer.backend.cloud import CloudBackend
from stigmer.core import InvalidArgument
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import ServerProcess, admin_token_path

MiB = 1024 * 1024


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        home=tmp_path, database_url=f"sqlite:///{tmp_path / 'stigmer.db'}", args=["--no-run-executions"]
    )
    await asyncio.to_thread(process.start)
    yield process
    assert await asyncio.to_thread(process.stop) == 0


async def test_a_15_mib_artifact_round_trips(server: ServerProcess) -> None:
    client = CloudBackend(server.endpoint, home=server.home)
    content = os.urandom(15 * MiB)
    meta = await client.put_artifact(
        svc.PutArtifactRequest(content=content, media_type="application/octet-stream")
    )
    got = await client.get_artifact(svc.GetArtifactRequest(key=meta.key))
    assert got.content == content
    await client.close()


async def test_bigger_than_16_mib_is_a_clear_invalid_argument(server: ServerProcess) -> None:
    client = CloudBackend(server.endpoint, home=server.home)
    with pytest.raises(InvalidArgument, match="larger than the 16 MiB limit"):
        await client.put_artifact(svc.PutArtifactRequest(content=bytes(17 * MiB)))
    await client.close()
    # The server enforces it too, whatever the client allows itself.
    token = admin_token_path(server.home).read_text().strip()
    options = [("grpc.max_send_message_length", 64 * MiB)]
    async with grpc.aio.insecure_channel(server.address or "", options=options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await svc_grpc.BackendServiceStub(channel).PutArtifact(
                svc.PutArtifactRequest(content=bytes(17 * MiB)),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ... and keeps serving.
        listed = await svc_grpc.BackendServiceStub(channel).ListSecrets(
            svc.ListSecretsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
        )
        assert list(listed.secrets) == []
