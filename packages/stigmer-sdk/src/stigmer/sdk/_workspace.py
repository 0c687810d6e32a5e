"""Agents' workspaces from the client's side: attachments going in, saved files coming out.

An attachment is stored as a content-addressed artifact and named in the execution's spec; the
runner puts it into the workspace's ``attachments/`` folder. A workspace is saved by the runner as
an artifact (a tar) at the end of each turn; ``execution_files`` reads the one an execution saved,
``export_session`` writes the latest one of a session into a folder.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from stigmer.core import Backend, FailedPrecondition, InvalidArgument, NotFound, read_tree, unpack_tree
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = [
    "Attachable",
    "execution_files",
    "export_session",
    "session_workspace_execution",
    "store_attachments",
]

#: A file path, or ``(name, bytes)`` for content in memory.
Attachable = str | Path | tuple[str, bytes]


async def store_attachments(backend: Backend, items: Sequence[Attachable]) -> list[execution_pb2.Attachment]:
    """Store each attachment as an artifact; the ``Attachment`` entries of an execution spec."""
    out: list[execution_pb2.Attachment] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, tuple):
            name, content = item
        else:
            path = Path(item).expanduser()
            if not path.is_file():
                raise InvalidArgument(f"attachment {item}: no such file", ["attachments"])
            name, content = path.name, path.read_bytes()
        name = PurePosixPath(str(name).replace("\\", "/")).name
        if not name or name in (".", ".."):
            raise InvalidArgument(f"attachment {item!r} has no file name", ["attachments"])
        if name in seen:
            raise InvalidArgument(f"two attachments are called {name}; rename one", ["attachments"])
        seen.add(name)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        meta = await backend.put_artifact(svc.PutArtifactRequest(content=content, media_type=media_type))
        out.append(
            execution_pb2.Attachment(name=name, artifact=meta.key, media_type=media_type, size=len(content))
        )
    return out


async def execution_files(backend: Backend, execution: execution_pb2.Execution) -> dict[str, bytes]:
    """The files of the workspace ``execution`` saved, by path."""
    key = execution.status.workspace.artifact
    if not key:
        raise FailedPrecondition(
            f"execution {execution.metadata.id} has no saved workspace (its agent has no built-in "
            "tools or workspace, or its first turn has not ended yet)"
        )
    blob = await backend.get_artifact(svc.GetArtifactRequest(key=key))
    return {path: content for path, (content, _x) in read_tree(blob.content, what="workspace").items()}


async def session_workspace_execution(backend: Backend, session_id: str) -> execution_pb2.Execution:
    """The session's latest execution that saved a workspace."""
    token = ""
    while True:
        page = await backend.list_executions(
            svc.ListExecutionsRequest(kind="AgentExecution", session_id=session_id, page_token=token)
        )
        for execution in page.executions:  # newest first
            if execution.status.workspace.artifact:
                return execution
        if not page.next_page_token:
            break
        token = page.next_page_token
    raise NotFound(f"session {session_id} has no saved workspace yet")


async def export_session(backend: Backend, session_id: str, directory: Path) -> list[str]:
    """Write the session's latest workspace into ``directory``; the paths written."""
    execution = await session_workspace_execution(backend, session_id)
    blob = await backend.get_artifact(svc.GetArtifactRequest(key=execution.status.workspace.artifact))
    directory.mkdir(parents=True, exist_ok=True)
    return unpack_tree(blob.content, directory, what="the session's workspace")
