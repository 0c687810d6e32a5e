"""Content-addressed artifacts: the key is ``sha256:<hex>`` of the bytes; equal bytes are stored once."""

from __future__ import annotations

import hashlib
from typing import Any

from stigmer.backend.local._db import Conn
from stigmer.backend.local.tables._columns import now_us, timestamp
from stigmer.core import InvalidArgument, NotFound
from stigmer.proto.v1 import artifact_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = ["get_artifact", "put_artifact"]

_DEFAULT_MEDIA_TYPE = "application/octet-stream"
# "key" is quoted: a keyword of SQLite.
_METADATA = 'SELECT "key", size, media_type, created_at FROM artifacts WHERE "key" = :key'


def _metadata(row: Any) -> artifact_pb2.ArtifactMetadata:
    out = artifact_pb2.ArtifactMetadata(
        key=row.key,
        size=row.size,
        media_type=row.media_type,
    )
    out.created_at.CopyFrom(timestamp(row.created_at))
    return out


def put_artifact(conn: Conn, request: svc.PutArtifactRequest) -> artifact_pb2.ArtifactMetadata:
    if len(request.media_type) > 253:
        raise InvalidArgument("media_type is longer than 253 characters", ["media_type"])
    key = "sha256:" + hashlib.sha256(request.content).hexdigest()
    row = conn.execute(_METADATA, {"key": key}).first()
    if row is None:
        conn.execute(
            'INSERT INTO artifacts ("key", size, media_type, content, created_at) '
            "VALUES (:key, :size, :media_type, :content, :created_at)",
            {
                "key": key,
                "size": len(request.content),
                "media_type": request.media_type or _DEFAULT_MEDIA_TYPE,
                "content": request.content,
                "created_at": now_us(),
            },
        )
        row = conn.execute(_METADATA, {"key": key}).one()
    return _metadata(row)


def get_artifact(conn: Conn, request: svc.GetArtifactRequest) -> svc.GetArtifactResponse:
    key = request.key
    algo, _, digest = key.partition(":")
    if algo != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidArgument(
            f"invalid artifact key {key!r}: expected sha256:<64 lower-case hex digits>", ["key"]
        )
    row = conn.execute(
        'SELECT "key", size, media_type, content, created_at FROM artifacts WHERE "key" = :key', {"key": key}
    ).first()
    if row is None:
        raise NotFound(f"artifact {key} is not stored; push it with PutArtifact (or re-apply the Skill)")
    return svc.GetArtifactResponse(metadata=_metadata(row), content=row.content)
