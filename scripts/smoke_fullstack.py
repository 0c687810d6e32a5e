"""The README's promise, from the built wheels: run with the Python of a fresh virtual environment
that holds only the `stigmer` meta wheel (and what it pulls in).

    STIGMER_HOME=tmp stigmer local start      # free ports, the venv's own `temporal` binary
    stigmer apply -f examples/hello.yaml
    stigmer run hello --input '{"name": "x"}'  # SUCCEEDED, and a completed Temporal workflow
    stigmer doctor -o json                    # packages, extras, temporal, context, ports: OK
    stigmer local stop                        # always, even after a failure

Only the venv's ``bin`` and directories without a ``temporal`` executable stay on PATH, so a
``temporal`` of the developer's environment cannot stand in for the one `pip install stigmer`
must bring. Exit code 0 when everything held; otherwise 1 with the step that failed and the
stack's logs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hello.yaml"
BIN = Path(sys.executable).parent
STEP_TIMEOUT = 180.0


class Failed(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_") and k != "VIRTUAL_ENV"}
    path = [str(BIN)] + [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and shutil.which("temporal", path=d) is None
    ]
    env["PATH"] = os.pathsep.join(path)
    env["STIGMER_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def stigmer(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "stigmer"), *args]
    print(f"$ stigmer {' '.join(args)}", flush=True)
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"`stigmer {' '.join(args)}` did not finish in {STEP_TIMEOUT:.0f}s") from exc
    if done.stderr.strip():
        print(done.stderr.rstrip(), flush=True)
    if check and done.returncode != 0:
        raise Failed(f"`stigmer {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
    return done


def promise(env: dict[str, str], temporal_port: int, server_port: int) -> None:
    stigmer(
        env,
        "local",
        "start",
        "--port",
        str(server_port),
        "--temporal-port",
        str(temporal_port),
        "--ui-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--timeout",
        "120",
    )
    rows: list[dict[str, Any]] = json.loads(stigmer(env, "local", "status", "-o", "json").stdout)
    if {r["name"]: r["state"] for r in rows} != dict.fromkeys(
        ("temporal", "temporal-ui", "server", "server-http", "console", "workflow-runner", "agent-runner"),
        "running",
    ):
        raise Failed(f"not every component runs: {rows}")
    stigmer(env, "apply", "-f", str(EXAMPLE))
    result = json.loads(stigmer(env, "run", "hello", "--input", '{"name":"x"}', "-o", "json").stdout)
    if result.get("phase") != "SUCCEEDED" or result.get("output") != {"greeting": "Hello, x!"}:
        raise Failed(f"the run did not succeed: {result}")
    # It ran on the stack: Temporal knows the execution as a completed workflow.
    binary = BIN / "temporal"
    described = subprocess.run(
        [
            str(binary),
            "workflow",
            "describe",
            "--workflow-id",
            str(result["id"]),
            "--address",
            f"127.0.0.1:{temporal_port}",
            "-o",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    status = json.loads(described.stdout or "{}").get("workflowExecutionInfo", {}).get("status")
    if status != "WORKFLOW_EXECUTION_STATUS_COMPLETED":
        raise Failed(
            f"Temporal does not list {result['id']} as completed: {described.stdout or described.stderr}"
        )
    print(f"ran {result['id']} on the local stack: {result['output']}", flush=True)
    # `stigmer doctor` agrees: the binary is the venv's own, every extra is there, the stack answers.
    doctor = stigmer(env, "doctor", "-o", "json", check=False)
    checks = {row["check"]: row for row in json.loads(doctor.stdout)}
    for name in ("packages", "extras", "temporal", "context", f"port {temporal_port}", f"port {server_port}"):
        if checks.get(name, {}).get("status") != "OK":
            raise Failed(f"stigmer doctor: {checks.get(name) or f'no {name} line'}")
    if not checks["temporal"]["detail"].startswith(str(binary)):
        raise Failed(f"stigmer doctor found another temporal binary: {checks['temporal']}")
    if "in use by the local stack" not in checks[f"port {server_port}"]["detail"]:
        raise Failed(f"stigmer doctor does not see the stack on its port: {checks[f'port {server_port}']}")
    if doctor.returncode != 0:
        raise Failed(f"stigmer doctor exited {doctor.returncode}: {doctor.stdout}")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="stigmer-smoke-"))
    env = clean_env(home)
    failure: str | None = None
    try:
        temporal_port = free_port()
        server_port = free_port()
        while server_port == temporal_port:
            server_port = free_port()
        promise(env, temporal_port, server_port)
    except (Failed, ValueError, KeyError) as exc:
        failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, Failed) else str(exc)
    finally:
        try:
            stigmer(env, "local", "stop")
            rows = json.loads(stigmer(env, "local", "status", "-o", "json").stdout)
            still = [r["name"] for r in rows if r["state"] != "stopped"]
            if still and failure is None:
                failure = f"still running after `stigmer local stop`: {still}"
        except Failed as exc:
            failure = failure or str(exc)
        if failure is not None:
            logs = stigmer(env, "local", "logs", "-n", "30", check=False)
            print(logs.stdout, file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)
    if failure is not None:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("the README's promise holds: pip install stigmer; stigmer local start; apply; run; stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
