"""A workspace folder that the built-in tools cannot leave, and its size bounds.

Every path a tool is given is taken relative to the workspace (an absolute path must lie inside
it), resolved with its symbolic links followed, and refused unless the result is inside the
workspace: ``../x``, ``/etc/passwd`` and a link that points out (``ln -s /etc out``) all fail with
:class:`OutsideWorkspace`. A write never follows a link out either (the target is resolved before
it is opened). What stays possible: another process swapping a folder for a link between the check
and the write (the tools run one call at a time, and the shell runs in a sandbox where one is
installed: see ``tools._shell``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stigmer.core import ArchiveTooLarge, InvalidArgument

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "OutsideWorkspace",
    "Workspace",
    "WorkspaceTooLarge",
]

# Saved, a workspace is one artifact: within gRPC's 16 MiB message with the tar's per-file overhead.
DEFAULT_MAX_FILES = 5_000
DEFAULT_MAX_BYTES = 10 * 2**20


class OutsideWorkspace(InvalidArgument):
    """A path that resolves outside the workspace."""


class WorkspaceTooLarge(ArchiveTooLarge):
    """The workspace would hold more files or bytes than its bounds allow."""


@dataclass
class Workspace:
    """A folder (``root``, absolute and resolved) and the bounds on what it may hold."""

    root: Path
    max_files: int = DEFAULT_MAX_FILES
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.max_files = self.max_files or DEFAULT_MAX_FILES
        self.max_bytes = self.max_bytes or DEFAULT_MAX_BYTES

    def path(self, given: str) -> Path:
        """The absolute, resolved path of ``given`` (relative to the workspace); refused outside it."""
        text = (given or ".").strip()
        if "\x00" in text:
            raise InvalidArgument(f"{given!r}: a path cannot hold a NUL character")
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve(strict=False)
        except (OSError, RuntimeError):  # a link loop
            raise OutsideWorkspace(f"{_shown(given)}: the path cannot be resolved (a link loop?)") from None
        if not resolved.is_relative_to(self.root):
            what = (
                "leads outside the workspace through a symbolic link"
                if _through_link(candidate, self.root)
                else "is outside the workspace"
            )
            raise OutsideWorkspace(f"{_shown(given)} {what}; use a path inside it")
        return resolved

    def relative(self, path: Path) -> str:
        """``path`` (inside the workspace) as the tools show it."""
        rel = path.relative_to(self.root).as_posix()
        return rel or "."

    def usage(self) -> tuple[int, int]:
        """Files and bytes the workspace holds (links not followed)."""
        files = size = 0
        for root, _dirs, names in os.walk(self.root):
            for name in names:
                try:
                    info = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                files += 1
                size += info.st_size
        return files, size

    def check_write(self, target: Path, new_size: int) -> None:
        """Refuse a write of ``new_size`` bytes to ``target`` that would exceed the bounds."""
        if new_size > self.max_bytes:
            raise WorkspaceTooLarge(
                f"{self.relative(target)}: {new_size:,} bytes is more than the workspace may hold "
                f"({self.max_bytes:,} bytes)"
            )
        files, size = self.usage()
        old = target.stat().st_size if target.is_file() else 0
        if not target.exists() and files + 1 > self.max_files:
            raise WorkspaceTooLarge(
                f"the workspace already holds {files:,} files (at most {self.max_files:,})"
            )
        if size - old + new_size > self.max_bytes:
            raise WorkspaceTooLarge(
                f"writing {self.relative(target)} would make the workspace hold more than "
                f"{self.max_bytes:,} bytes"
            )

    def check_bounds(self) -> None:
        """Refuse a workspace that already holds more than its bounds (after a shell command)."""
        files, size = self.usage()
        if files > self.max_files:
            raise WorkspaceTooLarge(f"the workspace holds {files:,} files (at most {self.max_files:,})")
        if size > self.max_bytes:
            raise WorkspaceTooLarge(f"the workspace holds {size:,} bytes (at most {self.max_bytes:,})")


def _shown(path: str) -> str:
    """``path`` as messages show it: as given, or quoted when it holds control characters."""
    return repr(path) if any(ord(c) < 32 or c == "\x7f" for c in path) else path


def _through_link(candidate: Path, root: Path) -> bool:
    """Whether a component of ``candidate`` below ``root`` is a symbolic link."""
    try:
        rel = candidate.relative_to(root)
    except ValueError:
        return False
    here = root
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return True
    return False
