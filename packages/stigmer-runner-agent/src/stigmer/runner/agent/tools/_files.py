"""The ``files`` tool set: read (with line ranges), write, edit by exact replacement, list and grep,
all inside the workspace (paths are checked by :class:`~..workspace.Workspace`).

A refused call (a path outside the workspace, a missing file, an edit whose text is not found, a
write beyond the workspace's bounds) returns ``error: ...`` to the model, which can correct itself;
the run goes on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from stigmer.core import StigmerError

from ..workspace import Workspace

__all__ = ["FILE_FUNCTIONS", "READ_ONLY", "file_functions"]

READ_ONLY = ("read_file", "list_files", "grep")
FILE_FUNCTIONS = ("read_file", "write_file", "edit_file", "list_files", "grep")
MAX_READ_CHARS = 200_000
MAX_LIST = 1_000
MAX_MATCHES = 200


def refusing(function: Callable[..., str]) -> Callable[..., str]:
    """``function`` whose refusals (Stigmer errors, OS errors) come back to the model as ``error: ...``."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return function(*args, **kwargs)
        except StigmerError as exc:
            return f"error: {exc.message}"
        except UnicodeDecodeError:
            return "error: the file is not UTF-8 text"
        except OSError as exc:
            return f"error: {exc.strerror or exc}"

    return wrapper


def file_functions(ws: Workspace) -> dict[str, Callable[..., str]]:
    """The functions of the ``files`` tool set, bound to ``ws``."""

    def read_file(path: str, start_line: int = 1, end_line: int | None = None) -> str:
        """Read a text file of the workspace, or a range of its lines.

        Args:
            path: The file's path, relative to the workspace.
            start_line: The first line to return (1 = the first line of the file).
            end_line: The last line to return (inclusive); omit it to read to the end.
        """
        target = ws.path(path)
        if not target.is_file():
            return f"error: {path} is not a file of the workspace"
        text = target.read_text(encoding="utf-8")
        if start_line > 1 or end_line is not None:
            lines = text.splitlines(keepends=True)
            first = max(start_line, 1) - 1
            last = len(lines) if end_line is None else max(end_line, first)
            text = "".join(lines[first:last])
        if len(text) > MAX_READ_CHARS:
            return text[:MAX_READ_CHARS] + f"\n[truncated: read a range of lines to see the rest of {path}]"
        return text

    def write_file(path: str, content: str) -> str:
        """Create or overwrite a file of the workspace with the given content.

        Args:
            path: The file's path, relative to the workspace (folders are created).
            content: The complete new content of the file.
        """
        target = ws.path(path)
        if target.is_dir():
            return f"error: {path} is a folder"
        data = content.encode("utf-8")
        ws.check_write(target, len(data))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return f"wrote {len(data)} bytes to {ws.relative(target)}"

    def edit_file(path: str, old_text: str, new_text: str, replace_all: bool = False) -> str:
        """Replace an exact piece of text in a file of the workspace.

        Args:
            path: The file's path, relative to the workspace.
            old_text: The exact text to replace (with enough context to be unique).
            new_text: The text to put in its place.
            replace_all: Replace every occurrence instead of requiring exactly one.
        """
        target = ws.path(path)
        if not target.is_file():
            return f"error: {path} is not a file of the workspace"
        if not old_text:
            return "error: old_text is empty; give the exact text to replace"
        text = target.read_text(encoding="utf-8")
        count = text.count(old_text)
        if count == 0:
            return f"error: the text to replace was not found in {path}"
        if count > 1 and not replace_all:
            return (
                f"error: the text to replace occurs {count} times in {path}; give more context "
                "to make it unique, or set replace_all"
            )
        updated = text.replace(old_text, new_text) if replace_all else text.replace(old_text, new_text, 1)
        data = updated.encode("utf-8")
        ws.check_write(target, len(data))
        target.write_bytes(data)
        return f"replaced {count if replace_all else 1} occurrence(s) in {ws.relative(target)}"

    def list_files(pattern: str = "**/*", path: str = ".") -> str:
        """List the files of the workspace matching a glob pattern, one path a line.

        Args:
            pattern: A glob pattern such as `**/*.py` or `*.md` (`**` matches any folders).
            path: The folder to list, relative to the workspace.
        """
        base = ws.path(path)
        if not base.is_dir():
            return f"error: {path} is not a folder of the workspace"
        found: list[str] = []
        glob = _glob(pattern)
        for rel in _walk(ws, base):
            if _matches(_below(ws, base, rel), glob):
                found.append(rel)
                if len(found) > MAX_LIST:
                    break
        if not found:
            return "no files match"
        more = f"\n[more than {MAX_LIST} files: narrow the pattern]" if len(found) > MAX_LIST else ""
        return "\n".join(found[:MAX_LIST]) + more

    def grep(pattern: str, path: str = ".", glob: str = "**/*", ignore_case: bool = False) -> str:
        """Search the workspace's text files for a regular expression; `file:line: text` per match.

        Args:
            pattern: A Python regular expression.
            path: The folder (or file) to search, relative to the workspace.
            glob: Only files whose path matches this glob pattern.
            ignore_case: Match without regard to case.
        """
        try:
            regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            return f"error: not a valid regular expression: {exc}"
        base = ws.path(path)
        wanted = _glob(glob)
        files = (
            [ws.relative(base)]
            if base.is_file()
            else [r for r in _walk(ws, base) if _matches(_below(ws, base, r), wanted)]
        )
        matches: list[str] = []
        for rel in files:
            try:
                text = (ws.root / rel).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if regex.search(line):
                    matches.append(f"{rel}:{number}: {line[:500]}")
                    if len(matches) >= MAX_MATCHES:
                        return "\n".join(matches) + f"\n[stopped at {MAX_MATCHES} matches]"
        return "\n".join(matches) if matches else "no matches"

    functions: dict[str, Callable[..., str]] = {
        "read_file": read_file,
        "write_file": write_file,
        "edit_file": edit_file,
        "list_files": list_files,
        "grep": grep,
    }
    return {name: refusing(f) for name, f in functions.items()}


def _below(ws: Workspace, base: Any, rel: str) -> str:
    """``rel`` (relative to the workspace) relative to the folder ``base``."""
    prefix = ws.relative(base)
    return rel if prefix == "." else rel[len(prefix) + 1 :]


def _walk(ws: Workspace, base: Any) -> list[str]:
    """Regular files under ``base`` (links that leave the workspace and ``.git`` left out), sorted."""
    out: list[str] = []
    for root, dirs, names in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in names:
            full = os.path.join(root, name)
            if os.path.islink(full):
                try:
                    ws.path(full)
                except StigmerError:
                    continue
            if os.path.isfile(full):
                out.append(os.path.relpath(full, ws.root).replace(os.sep, "/"))
    return sorted(out)


def _glob(pattern: str) -> re.Pattern[str]:
    """A glob pattern as a regular expression: ``**/`` any folders, ``*`` and ``?`` within a name."""
    pattern = pattern.strip() or "**/*"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _matches(rel: str, pattern: re.Pattern[str]) -> bool:
    return pattern.match(rel) is not None
