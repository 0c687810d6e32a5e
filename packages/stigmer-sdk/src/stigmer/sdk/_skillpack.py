"""Skill artifacts: packing a directory into a deterministic tar (same files, same bytes, same
artifact key) for ``apply``, and unpacking one back into a directory for ``export``.

``stigmer apply`` and the SDK's ``apply`` both store skills this way, so the key of a skill
does not depend on which of them pushed it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stigmer.core import InvalidArgument

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


def artifact_key(content: bytes) -> str:
    """The content address of bytes: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _check_link(path: Path, directory: Path, inside: Path) -> None:
    """Refuse a symbolic link whose target is outside the skill directory (or cannot be resolved)."""
    if not path.is_symlink():
        return
    rel = path.relative_to(directory).as_posix()
    try:
        target = path.resolve(strict=False)
    except (OSError, RuntimeError):  # a link loop
        target = None
    if target is None or not target.is_relative_to(inside):
        raise InvalidArgument(
            f"skill directory '{directory}' has a symbolic link '{rel}' that points outside it "
            f"({os.readlink(path)}); copy the file into the skill, or remove the link",
            ["spec.path"],
        )


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
    files: list[tuple[str, Path]] = []
    inside = directory.resolve()
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in dirs:
            _check_link(Path(root) / name, directory, inside)
        for name in names:
            path = Path(root) / name
            if name.startswith("."):
                continue
            _check_link(path, directory, inside)
            if path.is_file():
                files.append((path.relative_to(directory).as_posix(), path))
    files.sort()
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in files:
            data = path.read_bytes()
            total += len(data)
            if total > SKILL_MAX_BYTES:
                raise InvalidArgument(
                    f"skill directory '{directory}' is larger than {SKILL_MAX_BYTES // 2**20} MiB",
                    ["spec.path"],
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
    return PackedSkill(content=content, key=artifact_key(content), files=tuple(rel for rel, _ in files))


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
