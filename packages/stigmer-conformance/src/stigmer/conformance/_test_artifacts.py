"""Conformance: content-addressed artifacts."""

from __future__ import annotations

import hashlib
import secrets as _random

import pytest
from stigmer.conformance._builders import expect_error
from stigmer.core import Backend, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = ["TestArtifacts"]


@pytest.mark.asyncio
class TestArtifacts:
    async def test_same_bytes_same_key_stored_once(self, backend: Backend) -> None:
        content = b"SKILL.md\n" + _random.token_bytes(2048)
        key = "sha256:" + hashlib.sha256(content).hexdigest()
        first = await backend.put_artifact(
            svc.PutArtifactRequest(content=content, media_type="application/x-tar")
        )
        second = await backend.put_artifact(
            svc.PutArtifactRequest(content=content, media_type="application/x-tar")
        )
        assert first.key == second.key == key
        assert first.size == len(content)
        assert first.created_at == second.created_at, "the second put must not store a new copy"
        got = await backend.get_artifact(svc.GetArtifactRequest(key=key))
        assert got.content == content
        assert got.metadata.key == key and got.metadata.media_type == "application/x-tar"
        other = await backend.put_artifact(svc.PutArtifactRequest(content=content + b"!"))
        assert other.key != key

    async def test_empty_artifact(self, backend: Backend) -> None:
        meta = await backend.put_artifact(svc.PutArtifactRequest(content=b""))
        assert meta.key == "sha256:" + hashlib.sha256(b"").hexdigest() and meta.size == 0

    async def test_unknown_key(self, backend: Backend) -> None:
        key = "sha256:" + hashlib.sha256(_random.token_bytes(16)).hexdigest()
        await expect_error(NotFound, backend.get_artifact(svc.GetArtifactRequest(key=key)), key)
