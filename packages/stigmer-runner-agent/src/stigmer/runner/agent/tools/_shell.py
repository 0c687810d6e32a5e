"""The ``shell`` tool set: ``run_command`` runs a command in the workspace, with a timeout and an
output cap; approval-gated unless the agent's spec sets ``autoApprove``.

It starts a local process, so it is the ``run`` capability: on in Lite and on your own local stack,
off on a shared server unless the admin starts it with ``--allow-run`` (the agent fails to build,
with a one-line error, before anything starts).

Where ``bwrap`` (bubblewrap) is installed, the command runs in a sandbox: its own mount, process,
IPC and network namespaces; the system's programs (``/usr``) and a few files of ``/etc`` read-only,
the workspace as ``/workspace`` (read-write), an empty ``/tmp``, nothing else of the machine (no
home folder, no ``$STIGMER_HOME``, no database or keys) and no network unless the tool's
``network`` option is set. Without ``bwrap`` the command runs as the runner's own user, with only
these protections: it starts in the workspace, with an environment holding nothing but ``PATH``,
``HOME`` (the workspace), ``LANG`` and ``PYTHONDONTWRITEBYTECODE`` (no secrets, no
``STIGMER_*``), in a process group that is killed at the timeout; it can read and write whatever
that user can and reach the network.
``STIGMER_SHELL_SANDBOX`` chooses: ``auto`` (default: bwrap when installed), ``bwrap`` (refuse to
run without it), ``none``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stigmer.core import FailedPrecondition

from ..workspace import Workspace

__all__ = ["ShellOptions", "sandbox_command", "shell_functions"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_OUTPUT = 64 * 1024
_ETC = (
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/mime.types",
)
_ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf")
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class ShellOptions:
    timeout: float = DEFAULT_TIMEOUT
    max_output: int = DEFAULT_OUTPUT
    network: bool = False
    sandbox: str = "auto"  # STIGMER_SHELL_SANDBOX: auto | bwrap | none

    @classmethod
    def of(cls, timeout: int, max_output: int, network: bool, environ: Mapping[str, str]) -> ShellOptions:
        return cls(
            timeout=float(timeout) if timeout > 0 else DEFAULT_TIMEOUT,
            max_output=max_output if max_output > 0 else DEFAULT_OUTPUT,
            network=network,
            sandbox=(environ.get("STIGMER_SHELL_SANDBOX") or "auto").strip().lower(),
        )


def sandbox_command(command: str, ws: Workspace, options: ShellOptions) -> tuple[list[str], str, bool]:
    """The argv that runs ``command``, its working folder, and whether it is sandboxed."""
    bwrap = shutil.which("bwrap") if options.sandbox != "none" else None
    if bwrap is None:
        if options.sandbox == "bwrap":
            raise FailedPrecondition(
                "STIGMER_SHELL_SANDBOX=bwrap but bwrap is not installed (Debian: apt-get install bubblewrap)"
            )
        return ["/bin/sh", "-c", command], str(ws.root), False
    argv = [bwrap, "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32"):
        path = f"/{name}"
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC + (_ETC_NETWORK if options.network else ()):
        argv += ["--ro-bind-try", path, path]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        "--bind", str(ws.root), "/workspace",
        "--chdir", "/workspace",
        "--unshare-all",
        *(["--share-net"] if options.network else []),
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv", "PATH", _PATH,
        "--setenv", "HOME", "/workspace",
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--", "/bin/sh", "-c", command,
    ]  # fmt: skip
    return argv, str(ws.root), True


def _kill(pid: int) -> None:
    """Kill the command's whole process group (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def shell_functions(ws: Workspace, options: ShellOptions) -> dict[str, Callable[..., Any]]:
    """The functions of the ``shell`` tool set, bound to ``ws``."""

    async def run_command(command: str, timeout_seconds: int | None = None) -> str:
        """Run a shell command (`sh -c`) in the workspace folder; its exit code and output.

        Args:
            command: The command line, for example `python3 -m pytest -q`.
            timeout_seconds: Seconds the command may take (at most the agent's limit).
        """
        limit = options.timeout if not timeout_seconds else min(float(timeout_seconds), options.timeout)
        try:
            argv, cwd, sandboxed = sandbox_command(command, ws, options)
        except FailedPrecondition as exc:
            return f"error: {exc.message}"
        env = {
            "PATH": os.environ.get("PATH", _PATH),
            "HOME": str(ws.root),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ folders saved with the workspace
        }
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        kept = bytearray()
        total = 0

        async def read() -> None:
            nonlocal total
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                total += len(chunk)
                room = options.max_output - len(kept)
                if room > 0:
                    kept.extend(chunk[:room])

        timed_out = False
        try:
            await asyncio.wait_for(asyncio.gather(read(), process.wait()), timeout=limit)
        except TimeoutError:
            timed_out = True
            _kill(process.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), timeout=5)
        except BaseException:  # the run was cancelled (or its worker stops): the command goes too
            _kill(process.pid)
            raise
        output = kept.decode("utf-8", errors="replace")
        if total > len(kept):
            output += f"\n[output cut at {options.max_output:,} bytes of {total:,}]"
        if timed_out:
            head = f"timed out after {limit:g} s; the command was killed"
        else:
            head = f"exit code {process.returncode}"
        note = ""
        try:
            ws.check_bounds()
        except Exception as exc:
            note = f"\nwarning: {getattr(exc, 'message', exc)}: remove files, or the turn cannot be saved"
        del sandboxed
        return f"{head}\n{output}{note}".rstrip("\n")

    return {"run_command": run_command}
