"""A stdio McpServer's relative paths, resolved against its manifest's folder at apply.

``command: python`` with ``args: [support/orders_mcp.py]`` means the file next to the manifest,
not one in whichever folder a worker (or the CLI) happens to start the server from. At apply, the
paths the spec names are made absolute, so the stored server starts the same from anywhere:

- ``cwd``: a relative folder is resolved against the manifest's folder;
- ``command``: only when it has a path separator (``./serve``, ``bin/serve``) and is a file there;
  a bare word (``python``, ``npx``) is a program looked up on ``PATH`` and stays as written;
- ``args``: each relative one that is a file next to the manifest, unless the spec has a ``cwd``
  (the server's own paths are then relative to that folder); options and other words stay.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from stigmer.core import LoadedResource

__all__ = ["resolve_stdio_paths"]


def _file_next_to(base: Path, value: str) -> str | None:
    """``value`` made absolute when it is a relative path to a file in ``base``, else None."""
    if not value or value.startswith("-") or Path(value).is_absolute() or "\0" in value:
        return None
    candidate = base / value
    try:
        return str(candidate.resolve()) if candidate.is_file() else None
    except (OSError, ValueError):  # a name too long for the file system and the like: not a path here
        return None


def resolve_stdio_paths(item: LoadedResource) -> None:
    """Make ``item``'s (an McpServer's) relative stdio ``command``, ``args`` and ``cwd`` absolute."""
    server = item.resource.mcp_server  # type: ignore[union-attr]
    if server.spec.WhichOneof("transport") != "stdio":
        return
    stdio = server.spec.stdio
    base = item.base_dir
    if stdio.cwd and not Path(stdio.cwd).is_absolute() and not stdio.cwd.startswith("~"):
        # not a folder name (a NUL byte, a loop): left as written, for the runner to refuse
        with contextlib.suppress(OSError, ValueError):
            stdio.cwd = str((base / stdio.cwd).resolve())
    if os.sep in stdio.command or (os.altsep and os.altsep in stdio.command):
        stdio.command = _file_next_to(base, stdio.command) or stdio.command
    if not stdio.cwd:
        for index, arg in enumerate(stdio.args):
            stdio.args[index] = _file_next_to(base, arg) or arg
