"""``call: agent``'s ``with.attachments``: files put into the agent's workspace.

Each entry is ``{name, content}`` (text, or base64 with ``encoding: base64``) or ``{name,
artifact}`` (the key of an artifact already stored, ``sha256:...``). Content is stored as a
content-addressed artifact when the child execution is created; the execution names it.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

from ._errors import ErrorKind, WorkflowError

__all__ = ["check_attachments", "store_attachments"]


def check_attachments(value: Any) -> list[dict[str, Any]]:
    """``with.attachments`` as a list of plain entries; a configuration error says what is wrong."""
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise WorkflowError.of(ErrorKind.CONFIGURATION, "call: agent with.attachments must be a list")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"with.attachments[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise WorkflowError.of(ErrorKind.CONFIGURATION, f"call: agent {where} needs a name")
        name = PurePosixPath(item["name"].replace("\\", "/")).name
        if not name or name in (".", ".."):
            raise WorkflowError.of(ErrorKind.CONFIGURATION, f"call: agent {where}.name is no file name")
        has_content, has_artifact = "content" in item, isinstance(item.get("artifact"), str)
        if has_content == has_artifact:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"call: agent {where} needs either content or artifact"
            )
        entry: dict[str, Any] = {"name": name}
        if has_artifact:
            entry["artifact"] = item["artifact"]
        else:
            content = item["content"]
            if not isinstance(content, str):
                raise WorkflowError.of(ErrorKind.CONFIGURATION, f"call: agent {where}.content must be text")
            entry["content"] = content
            entry["encoding"] = str(item.get("encoding") or "text")
            if entry["encoding"] not in ("text", "base64"):
                raise WorkflowError.of(
                    ErrorKind.CONFIGURATION, f"call: agent {where}.encoding is text or base64"
                )
        out.append(entry)
    return out


async def store_attachments(
    backend: Backend, entries: Sequence[Mapping[str, Any]]
) -> list[execution_pb2.Attachment]:
    """Store the content of ``entries`` as artifacts; the ``Attachment`` entries of the child."""
    out: list[execution_pb2.Attachment] = []
    for entry in entries:
        name = str(entry["name"])
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if "artifact" in entry:
            out.append(
                execution_pb2.Attachment(name=name, artifact=str(entry["artifact"]), media_type=media_type)
            )
            continue
        text = str(entry["content"])
        try:
            content = (
                base64.b64decode(text, validate=True) if entry.get("encoding") == "base64" else text.encode()
            )
        except (binascii.Error, ValueError):
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"attachment {name}: content is not base64"
            ) from None
        meta = await backend.put_artifact(svc.PutArtifactRequest(content=content, media_type=media_type))
        out.append(
            execution_pb2.Attachment(name=name, artifact=meta.key, media_type=media_type, size=len(content))
        )
    return out
