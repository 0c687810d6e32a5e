"""Skill artifacts: packing a directory into a deterministic tar (same files, same bytes, same
artifact key) for ``apply``, and unpacking one back into a directory for ``export``.

``stigmer apply`` and the SDK's ``apply`` both store skills this way, so the key of a skill
does not depend on which of them pushed it.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stigmer.core import ArchiveTooLarge, InvalidArgument, artifact_key, pack_tree

__all__ = [
    "SKILL_FILE",
    "SKILL_MAX_BYTES",
    "SKILL_MEDIA_TYPE",
    "PackedSkill",
    "artifact_key",
    "pack_skill",
    "unpack_skill",
]

SKILL_FILE = "SKILL.md"
SKILL_MEDIA_TYPE = "application/x-tar"
SKILL_MAX_BYTES = 64 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", "node_modules"}


@dataclass(frozen=True)
class PackedSkill:
    """A packed skill: the tar bytes, their content address (``sha256:<hex>``) and the files inside."""

    content: bytes
    key: str
    files: tuple[str, ...]


def pack_skill(directory: Path) -> PackedSkill:
    """Tar a skill directory: sorted entries, mtime 0, owner 0, modes 0644/0755, no dotfiles.

    ``__pycache__`` and ``node_modules`` are left out, and so is anything that is not a regular
    file (sockets, dangling links). The result depends only on file names, contents and the
    executable bit, so packing the same directory twice yields the same artifact key.
    A symbolic link to a file inside the directory is packed as a copy of that file (a link to a
    folder inside it is skipped: the folder itself is packed); a link that leaves the directory
    (to a file or a folder, absolute or through ``..``, dangling or not) is refused, so nothing
    outside the folder (a key, ``~/.ssh``) can be packed and uploaded by accident.
    Raises ``InvalidArgument`` (field ``spec.path``) for a missing directory, a directory
    without ``SKILL.md``, a link leaving it, or more than 64 MiB of files.
    """
    if not directory.is_dir():
        raise InvalidArgument(
            f"skill directory '{directory}' does not exist (spec.path is relative to the manifest)",
            ["spec.path"],
        )
    if not (directory / SKILL_FILE).is_file():
        raise InvalidArgument(f"skill directory '{directory}' has no {SKILL_FILE}", ["spec.path"])
    try:
        packed = pack_tree(
            directory,
            what="skill directory",
            dotfiles=False,
            skip_dirs=_SKIP_DIRS,
            links="refuse",
            max_bytes=SKILL_MAX_BYTES,
            error=lambda message: InvalidArgument(message, ["spec.path"]),
        )
    except ArchiveTooLarge:
        raise InvalidArgument(
            f"skill directory '{directory}' is larger than {SKILL_MAX_BYTES // 2**20} MiB", ["spec.path"]
        ) from None
    return PackedSkill(content=packed.content, key=packed.key, files=packed.files)


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
