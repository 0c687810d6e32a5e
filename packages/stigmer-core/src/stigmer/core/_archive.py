"""Folders as content-addressed artifacts: a deterministic tar of a directory, and back.

Skills (packed at apply) and agent workspaces (packed at apply from ``workspace.path``, and saved
at the end of every turn) are stored this way. The tar depends only on the file names, contents
and executable bits (entries sorted, mtime 0, owner 0, modes 0644/0755), so the same files give
the same bytes and the same artifact key. Only regular files are packed. A symbolic link to a file
inside the folder is packed as a copy of that file; a link that leaves the folder is refused
(``links="refuse"``) or left out (``links="skip"``), so nothing outside it is ever packed.
Unpacking refuses absolute paths and ``..``; both directions enforce a file count and a byte bound.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from stigmer.core._errors import InvalidArgument

__all__ = [
    "TAR_MEDIA_TYPE",
    "ArchiveTooLarge",
    "PackedTree",
    "artifact_key",
    "pack_tree",
    "read_tree",
    "unpack_tree",
]

TAR_MEDIA_TYPE = "application/x-tar"


class ArchiveTooLarge(InvalidArgument):
    """A folder or archive holds more files or bytes than allowed (the message says which bound)."""


@dataclass(frozen=True)
class PackedTree:
    """A packed folder: the tar bytes, their content address, the files and their total size."""

    content: bytes
    key: str
    files: tuple[str, ...]
    size: int
    skipped_links: tuple[str, ...] = field(default=())


def artifact_key(content: bytes) -> str:
    """The content address of bytes: ``sha256:<hex>``."""
    import hashlib

    return "sha256:" + hashlib.sha256(content).hexdigest()


def _bounds_problem(what: str, files: int, size: int, max_files: int, max_bytes: int) -> str:
    if max_files and files > max_files:
        return f"{what} holds more than {max_files:,} files"
    if max_bytes and size > max_bytes:
        return f"{what} holds more than {_human(max_bytes)} of files"
    return ""


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def _outside(path: Path, inside: Path) -> bool:
    """Whether the link ``path`` resolves outside ``inside`` (or cannot be resolved)."""
    try:
        target = path.resolve(strict=False)
    except (OSError, RuntimeError):  # a link loop
        return True
    return not target.is_relative_to(inside)


def pack_tree(
    directory: Path,
    *,
    what: str = "folder",
    dotfiles: bool = True,
    skip_dirs: Collection[str] = (),
    links: Literal["refuse", "skip"] = "skip",
    max_files: int = 0,
    max_bytes: int = 0,
    error: Callable[[str], Exception] | None = None,
) -> PackedTree:
    """Tar the regular files under ``directory`` deterministically (see the module docstring).

    ``what`` names the folder in messages; ``error`` builds the exception for a link that leaves
    the folder (with ``links="refuse"``). Exceeding ``max_files`` or ``max_bytes`` (0: no bound)
    raises :class:`ArchiveTooLarge`.
    """
    inside = directory.resolve()
    files: list[tuple[str, Path]] = []
    skipped: list[str] = []
    for root, dirs, names in os.walk(directory):
        keep = []
        for d in sorted(dirs):
            if (not dotfiles and d.startswith(".")) or d in skip_dirs:
                continue
            path = Path(root) / d
            if path.is_symlink():  # a folder inside is packed as itself; one outside never
                if _outside(path, inside):
                    _leaves(path, directory, what, links, skipped, error)
                continue
            keep.append(d)
        dirs[:] = keep
        for name in names:
            if not dotfiles and name.startswith("."):
                continue
            path = Path(root) / name
            if path.is_symlink() and _outside(path, inside):
                _leaves(path, directory, what, links, skipped, error)
                continue
            if path.is_file():
                files.append((path.relative_to(directory).as_posix(), path))
        problem = _bounds_problem(what, len(files), 0, max_files, 0)
        if problem:
            raise ArchiveTooLarge(problem)
    files.sort()
    tarfile = _tarfile()
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in files:
            data = path.read_bytes()
            total += len(data)
            problem = _bounds_problem(what, 0, total, 0, max_bytes)
            if problem:
                raise ArchiveTooLarge(problem)
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    content = buf.getvalue()
    return PackedTree(
        content=content,
        key=artifact_key(content),
        files=tuple(rel for rel, _ in files),
        size=total,
        skipped_links=tuple(skipped),
    )


def _leaves(
    path: Path,
    directory: Path,
    what: str,
    links: str,
    skipped: list[str],
    error: Callable[[str], Exception] | None,
) -> None:
    rel = path.relative_to(directory).as_posix()
    if links == "skip":
        skipped.append(rel)
        return
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    message = (
        f"{what} '{directory}' has a symbolic link '{rel}' that points outside it ({target}); "
        "copy the file into it, or remove the link"
    )
    raise (error(message) if error is not None else InvalidArgument(message))


def _tarfile() -> Any:
    import tarfile  # with what it imports, ≈ 40 ms: only when a folder is packed or unpacked

    return tarfile


def read_tree(
    content: bytes, *, what: str = "archive", max_files: int = 0, max_bytes: int = 0
) -> dict[str, tuple[bytes, bool]]:
    """The regular files of a tar archive: path -> (bytes, executable). Unsafe paths are refused."""
    tarfile = _tarfile()
    out: dict[str, tuple[bytes, bool]] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                rel = PurePosixPath(member.name)
                if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                    raise InvalidArgument(f"{what} holds an unsafe path: {member.name!r}")
                total += member.size
                problem = _bounds_problem(what, len(out) + 1, total, max_files, max_bytes)
                if problem:
                    raise ArchiveTooLarge(problem)
                source = tar.extractfile(member)
                if source is None:
                    continue
                out[rel.as_posix()] = (source.read(), bool(member.mode & 0o100))
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"{what}: not a readable tar archive ({exc})") from None
    return out


def unpack_tree(
    content: bytes, directory: Path, *, what: str = "archive", max_files: int = 0, max_bytes: int = 0
) -> list[str]:
    """Write the regular files of a tar archive under ``directory``; the paths written.

    Refuses paths that escape ``directory`` (absolute, ``..``, or through a link already in it).
    """
    inside = directory.resolve()
    written: list[str] = []
    for rel, (data, executable) in read_tree(
        content, what=what, max_files=max_files, max_bytes=max_bytes
    ).items():
        target = directory.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(inside) or target.is_symlink():
            raise InvalidArgument(f"{what}: {rel!r} would be written outside {directory}")
        target.write_bytes(data)
        target.chmod(0o755 if executable else 0o644)
        written.append(rel)
    return written
