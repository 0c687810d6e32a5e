"""``LocalStack``: ``stigmer local`` (a Temporal dev server, ``stigmer server`` and runner workers
under a supervisor) in a private ``STIGMER_HOME`` on free ports, driven by the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._ports import free_port
from ._waiting import wait_for

__all__ = ["LocalStack", "cli_env"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI process: a private home, no colour, no inherited STIGMER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update({"STIGMER_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}, **extra)
    return env


class LocalStack:
    """``stigmer local`` in ``home`` on free ports; :meth:`force_cleanup` leaves no process behind."""

    def __init__(self, home: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.server_port = free_port()
        self.temporal_port = free_port()
        self.ui_port = free_port()  # the Temporal web UI
        self.http_port = free_port()  # the server's HTTP listener (/metrics)
        self.env = {**cli_env(home), **(extra_env or {})}

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``stigmer ARGS`` against this stack; an ``AssertionError`` (with the component
        logs) when it fails and ``check`` is set."""
        try:
            done = subprocess.run(
                [sys.executable, "-m", "stigmer.cli", *args],
                input=input,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"stigmer {' '.join(args)} timed out after {timeout}s\n{self.log_tails()}"
            ) from exc
        if check and done.returncode != 0:
            raise AssertionError(
                f"stigmer {' '.join(args)} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every component log (for failure messages)."""
        out = []
        for log in sorted((self.home / "local").glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()
            out.append(f"--- {log.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def start(self) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "local",
            "start",
            "--port",
            str(self.server_port),
            "--temporal-port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--http-port",
            str(self.http_port),
            "--timeout",
            "90",
        )

    def status(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.cli("local", "status", "-o", "json").stdout)
        return rows

    def pid(self, name: str) -> int | None:
        found = next(r["pid"] for r in self.status() if r["name"] == name)
        return int(found) if found is not None else None

    def apply(self, text: str) -> None:
        path = self.home / f"manifest-{time.monotonic_ns()}.yaml"
        path.write_text(text, encoding="utf-8")
        self.cli("apply", "-f", str(path))

    def execution(self, execution_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.cli("execution", "get", execution_id, "-o", "json").stdout)
        return data

    def phase(self, execution_id: str) -> str:
        return str(self.execution(execution_id).get("phase", ""))

    def wait_phase(self, execution_id: str, phases: set[str], timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            current = self.execution(execution_id)
            return current if current.get("phase") in phases else None

        try:
            return wait_for(done, timeout, f"{execution_id} to reach {phases}", every=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tails()}") from None

    def processes(self) -> list[int]:
        """Pids of live processes whose command line mentions this stack's home or ports."""
        marks = (
            str(self.home),
            f":{self.server_port}",
            f":{self.temporal_port}",
            f" {self.temporal_port}",
            f" {self.ui_port}",
            f":{self.http_port}",
        )
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            except OSError:
                continue
            test_runner = "bin/pytest" in command or "-m pytest" in command
            if state != "Z" and any(m in command for m in marks) and not test_runner:
                found.append(int(entry.name))
        return found

    def force_cleanup(self) -> None:
        """Stop the stack; kill anything left (used on test failure)."""
        self.cli("local", "stop", check=False, timeout=90)
        for pid in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
