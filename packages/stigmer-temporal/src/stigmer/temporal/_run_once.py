"""One execution in a process of its own: ``stigmer-workflow-runner --execution ID`` (and the agent
runner's), how ``stigmer server`` runs the executions it creates without Temporal.

The process talks to the server through the ``cloud`` backend with the token it was given on
stdin (never in its arguments or environment), runs the execution with the runner's Lite host,
and exits: 0 when the runner returned (whatever phase the execution reached), 1 when it failed.
With ``watch_stdin`` it exits at once when its stdin closes: the server that started it is gone,
and the execution is resumed by the server's next start.

``--execution -`` starts a warm spare: it loads the runner (:func:`prepare`) first, then reads
the execution id from stdin, then the token, so the server can start it before any execution
exists and hand it one at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import IO, Any

__all__ = ["load", "prepare", "read_token_line", "run_once", "watch_parent"]

#: Exit code of a child whose parent (the server) went away.
PARENT_GONE = 75


def read_token_line(stream: IO[bytes]) -> str:
    """The first line of ``stream`` (a token), without reading further."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = stream.read(1)
        if not chunk:
            break
        line += chunk
    return line.decode("utf-8", errors="replace").strip()


def watch_parent(stream: IO[bytes]) -> None:
    """Exit the process at once when ``stream`` (the rest of stdin) reaches end of file."""

    def watch() -> None:
        while stream.read(4096):
            pass
        os._exit(PARENT_GONE)

    threading.Thread(target=watch, name="stigmer-parent-watch", daemon=True).start()


def load(runner: str) -> Any:
    """The runner plugin ``runner``, made with this process's settings (the limits the server gave
    in ``STIGMER_LIMIT_*``); then every ``STIGMER_*`` variable leaves the environment, so nothing
    the runner starts (a shell command, an MCP server) sees one."""
    from stigmer.core import BACKENDS_GROUP, load_plugin, load_runner

    load_plugin(BACKENDS_GROUP, "cloud")
    instance = load_runner(runner)
    for name in [name for name in os.environ if name.startswith("STIGMER_")]:
        del os.environ[name]
    return instance


def prepare(instance: Any) -> None:
    """Let the runner load what its runs need (imports, schemas) before its execution exists."""
    asyncio.run(instance.prepare())


def run_once(
    *, prog: str, runner: Any, name: str, endpoint: str, token: str | None, execution_id: str
) -> int:
    """Run execution ``execution_id`` with ``runner`` (the ``name`` plugin) against the server at
    ``endpoint``."""
    from stigmer.core import load_backend

    logger = logging.getLogger(f"stigmer.worker.{prog}")

    async def main() -> int:
        backend = load_backend("cloud", endpoint=endpoint, token=token)
        try:
            await runner.execute(backend, execution_id)
        except Exception as exc:
            # The type only: a message might quote a resolved secret. The traceback goes to the log.
            logger.debug("execution %s failed", execution_id, exc_info=True)
            print(
                f"{prog}: the {name} runner stopped unexpectedly on {execution_id} ({type(exc).__name__})",
                file=sys.stderr,
            )
            return 1
        finally:
            await backend.close()
        return 0

    return asyncio.run(main())
