"""Private files and folders: ``$STIGMER_HOME`` is 0700; its databases, keys, tokens and logs 0600.

Files are created private from the start (``os.open`` with a mode, never widened by the umask
afterwards), and a folder or file left wider by an older version is tightened when it is opened
again. A file another user owns is left as it is (``chmod`` would fail); it is not ours to fix.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "open_private",
    "private_dir",
    "private_file",
    "tighten_home",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _tighten(path: Path | int, mode: int) -> None:
    """Drop the group and other bits of ``path`` (a path or an open descriptor)."""
    with contextlib.suppress(OSError):
        current = stat.S_IMODE(os.stat(path).st_mode)
        if current & 0o077:
            if isinstance(path, int):
                os.fchmod(path, current & mode)
            else:
                os.chmod(path, current & mode)


def private_dir(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) with mode 0700, or tighten it to 0700 if it exists."""
    path = Path(path).expanduser()
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path | str) -> Path:
    """Create ``path`` empty with mode 0600 if it is missing, or tighten it to 0600 if it exists.

    Its folder is created 0700 when missing (an existing folder is left as it is). Creating a
    SQLite database this way before SQLite opens it makes its ``-wal``, ``-shm`` and journal files
    private too: SQLite gives them the database file's mode.
    """
    path = Path(path).expanduser()
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.exists():
        # By path, never by opening it: closing a descriptor of a file drops every POSIX lock this
        # process holds on it — a SQLite database another connection of this process has open
        # would lose its locks, and other processes could then reset its WAL under that
        # connection, which goes on reading a stale snapshot.
        _tighten(path, PRIVATE_FILE_MODE)
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    except OSError:
        _tighten(path, PRIVATE_FILE_MODE)  # e.g. read-only: at least tighten what is there
        return path
    try:
        _tighten(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def open_private(path: Path | str, mode: str = "ab") -> IO[bytes]:
    """Open a log (or other binary) file for writing, created with mode 0600 and kept 0600.

    ``mode`` is ``"ab"`` (append, the default) or ``"wb"`` (truncate); unbuffered either way, so
    a line written is on disk for ``stigmer local logs`` at once.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    if mode not in ("ab", "wb"):
        raise ValueError(f"open_private supports 'ab' and 'wb', not {mode!r}")
    path = Path(path).expanduser()
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    _tighten(fd, PRIVATE_FILE_MODE)
    handle: IO[bytes] = os.fdopen(fd, mode, buffering=0)
    return handle


#: Folders of the home whose files are tightened too (the stack's state and logs, detached runs'
#: logs, the admin token, validated workflow documents); anything deeper is created private by the
#: code that writes it.
_HOME_FOLDERS = ("local", "logs", "tokens", "cache", "cache/workflows")


def tighten_home(home: Path | str) -> None:
    """Make an existing ``$STIGMER_HOME`` private again: the folder and its known folders 0700, the
    files in them 0600 (an older version left them 0755 and 0644). Symbolic links are left alone."""
    home = Path(home).expanduser()
    if not home.is_dir() or home.is_symlink():
        return
    private_dir(home)
    folders = [home] + [home / name for name in _HOME_FOLDERS]
    for folder in folders:
        if folder is not home:
            if not folder.is_dir() or folder.is_symlink():
                continue
            private_dir(folder)
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    _tighten(Path(entry.path), PRIVATE_FILE_MODE)
