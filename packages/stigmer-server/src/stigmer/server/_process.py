"""Run ``stigmer server`` as a child process: for tests and for the local-stack supervisor."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from stigmer.core import Unavailable, open_private, private_dir

__all__ = ["SCRIPT", "ServerProcess", "find_script", "server_script"]

_READY = "stigmer server listening on "
#: The console script of this distribution.
SCRIPT = "stigmer-server"


def find_script(name: str) -> str | None:
    """The console script ``name`` of this environment (next to ``sys.executable``), else the one
    on ``PATH``; None when neither has it. How every Stigmer process is launched."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def server_script() -> str:
    """The ``stigmer-server`` console script of this environment (see :func:`find_script`)."""
    found = find_script(SCRIPT)
    if found is None:
        raise Unavailable(
            f"cannot find the {SCRIPT} command next to {sys.executable} or on PATH; "
            "install it: pip install stigmer-server"
        )
    return found


class ServerProcess:
    """One ``stigmer-server`` child process, started and stopped on demand.

    ``listen`` may use port 0: :attr:`address` is the port actually bound. The server's log goes
    to ``log_path`` (default ``$home/server.log``), appended across restarts.
    """

    def __init__(
        self,
        *,
        home: Path,
        database_url: str | None = None,
        listen: str = "127.0.0.1:0",
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.home = Path(home)
        self.database_url = database_url
        self.listen = listen
        self.args = list(args)
        self.env = env
        self.log_path = log_path if log_path is not None else self.home / "server.log"
        self.address: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``grpc://host:port`` (``grpcs://`` when started with ``--tls-cert``)."""
        if self.address is None:
            raise RuntimeError("the server is not started")
        return f"{'grpcs' if '--tls-cert' in self.args else 'grpc'}://{self.address}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        cmd = [server_script(), "--listen", self.listen]
        cmd += ["--home", str(self.home)]
        if self.database_url:
            cmd += ["--database", self.database_url]
        return cmd + self.args

    def start(self, timeout: float = 60.0) -> str:
        """Start the server and wait until it accepts calls; returns ``host:port``."""
        private_dir(self.home)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("STIGMER_HOME", str(self.home))
        with open_private(self.log_path) as log:
            proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log, env=env)
        self._proc = proc
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while _READY.encode() not in buffer or not buffer.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise Unavailable(
                        f"stigmer server did not start within {timeout:g} s; {self._log_tail()}"
                    )
                if sel.select(remaining):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        proc.wait(5)
                        raise Unavailable(
                            f"stigmer server exited with code {proc.returncode}; {self._log_tail()}"
                        )
                    buffer += chunk
        line = next(ln for ln in buffer.decode().splitlines() if ln.startswith(_READY))
        self.address = line[len(_READY) :].strip()
        # Later runs reuse the same port, so clients can reconnect after a restart.
        self.listen = self.address
        return self.address

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "no log"
        return "log tail:\n" + "\n".join(text.splitlines()[-20:])

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close()
        return proc.returncode

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the server to exit by itself (after a signal sent elsewhere); its exit code."""
        if self._proc is None:
            return 0
        code = self._proc.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL: the server dies without any cleanup."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
