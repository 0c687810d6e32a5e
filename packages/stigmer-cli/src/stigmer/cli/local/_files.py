"""The full local stack's files under ``$STIGMER_HOME/local/``: settings, pid files, logs, state.

``settings.json`` holds the ports ``stigmer local start`` chose; the supervisor process writes
``state.json`` (each component's pid, address, state, start time and restarts) whenever
something changes; every process has ``<name>.pid`` and ``<name>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "COMPONENTS",
    "LocalPaths",
    "StackSettings",
    "pid_alive",
    "port_in_use",
    "read_json",
    "read_pid",
    "write_json",
]

#: Components in start order (stopped in reverse).
COMPONENTS = ("temporal", "server", "workflow-runner", "agent-runner")
SUPERVISOR = "supervisor"


@dataclass
class StackSettings:
    """Where the stack listens (loopback only)."""

    temporal_port: int = 7233
    server_port: int = 7234
    ui_port: int = 8233  # the Temporal web UI; 0 = off (`--no-ui`)
    host: str = "127.0.0.1"
    http_port: int = 7235  # the server's HTTP listener (/metrics, /healthz, /console/); 0 = off

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else ""

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}" if self.http_port else ""

    @property
    def console_url(self) -> str:
        """The web console the server serves on its HTTP listener."""
        return f"{self.http_url}/console/" if self.http_port else ""

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{self.temporal_port}"

    @property
    def server_address(self) -> str:
        return f"{self.host}:{self.server_port}"

    @property
    def endpoint(self) -> str:
        return f"grpc://{self.server_address}"

    def address(self, component: str) -> str:
        if component == "temporal":
            return self.temporal_address
        if component == "server":
            return self.server_address
        return ""


class LocalPaths:
    """File names of one stack, rooted at ``$STIGMER_HOME/local``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.root = self.home / "local"

    def ensure(self) -> None:
        from stigmer.core import private_dir, tighten_home

        tighten_home(self.home)
        private_dir(self.root)

    def pid(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def runner_token(self) -> Path:
        return self.root / "runner.token"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"

    def load_settings(self) -> StackSettings:
        data = read_json(self.settings) or {}
        known = {k: v for k, v in data.items() if k in StackSettings.__dataclass_fields__}
        return StackSettings(**known)

    def save_settings(self, settings: StackSettings) -> None:
        write_json(self.settings, asdict(settings))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Write atomically (readers never see half a file), mode 0600 like everything in the home."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live process (a zombie counts as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text()
        if status.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on, or holds, ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def terminate(pid: int, *, grace: float) -> bool:
    """SIGTERM ``pid``, wait up to ``grace`` seconds, then SIGKILL; True if it was running."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def pid_command(pid: int) -> str:
    """The command line of ``pid`` ('' when unknown)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def live_pid(path: Path, marker: str) -> int | None:
    """The pid in ``path`` if that process is alive and its command line mentions ``marker``
    (a pid file left by a crash may name an unrelated process that reused the number)."""
    pid = read_pid(path)
    if not pid_alive(pid):
        return None
    assert pid is not None
    command = pid_command(pid)
    if command and marker not in command:
        return None
    return pid
