"""Skill artifacts back into directories (export). Packing is ``stigmer.core.pack_skill``."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from stigmer.core import InvalidArgument

__all__ = ["unpack_skill"]


def unpack_skill(content: bytes, directory: Path) -> list[str]:
    """Write the regular files of a skill tar under ``directory``; refuses paths that escape it."""
    written: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rel = PurePosixPath(member.name)
            if rel.is_absolute() or ".." in rel.parts:
                raise InvalidArgument(f"skill artifact holds an unsafe path: {member.name!r}")
            target = directory.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                continue
            target.write_bytes(source.read())
            target.chmod(0o755 if member.mode & 0o100 else 0o644)
            written.append(rel.as_posix())
    return written
