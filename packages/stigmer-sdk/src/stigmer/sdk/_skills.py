"""Skill directories as deterministic tar artifacts: pack (apply) and unpack (export).

The packing rules are the CLI's (`stigmer apply`): same files, same bytes, same artifact key.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stigmer.core import InvalidArgument

__all__ = ["TAR_MEDIA_TYPE", "PackedSkill", "pack_skill", "unpack_skill"]

SKILL_FILE = "SKILL.md"
TAR_MEDIA_TYPE = "application/x-tar"
_SKIP_DIRS = {"__pycache__", "node_modules"}
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PackedSkill:
    """The tar bytes of a skill directory and their content address (``sha256:<hex>``)."""

    content: bytes
    key: str


def pack_skill(directory: Path) -> PackedSkill:
    """Tar a skill directory: sorted entries, mtime 0, owner 0, modes 0644/0755, no dotfiles."""
    if not directory.is_dir():
        raise InvalidArgument(f"skill directory '{directory}' does not exist", ["spec.path"])
    if not (directory / SKILL_FILE).is_file():
        raise InvalidArgument(f"skill directory '{directory}' has no {SKILL_FILE}", ["spec.path"])
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in names:
            path = Path(root) / name
            if not name.startswith(".") and path.is_file():
                files.append((path.relative_to(directory).as_posix(), path))
    files.sort()
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in files:
            data = path.read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise InvalidArgument(
                    f"skill directory '{directory}' is larger than {MAX_BYTES // 2**20} MiB"
                )
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    content = buf.getvalue()
    return PackedSkill(content=content, key="sha256:" + hashlib.sha256(content).hexdigest())


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
