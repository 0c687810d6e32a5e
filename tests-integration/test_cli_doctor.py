"""`stigmer doctor` against a real `stigmer server`: the context answers and accepts its token,
or the line says which of the two failed and what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


def _context_line(stigmer: StigmerCli) -> tuple[int, dict[str, str]]:
    done = stigmer("doctor", "-o", "json", "--timeout", "5")
    checks = {row["check"]: row for row in json.loads(done.stdout)}
    return done.returncode, checks["context"]


def test_doctor_checks_the_server_and_its_token(
    stigmer: StigmerCli, stigmer_env: dict[str, str], stigmer_home: Path, tmp_path: Path
) -> None:
    server_env = {**stigmer_env, "STIGMER_HOME": str(tmp_path / "server-home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "server", "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env,
    )
    try:
        assert proc.stderr is not None
        address = ""
        deadline = time.monotonic() + 60
        while not address and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            if "stigmer server listening on " in line:
                address = line.split("listening on ")[1].split()[0]
        assert address, "the server did not report its address"
        token = subprocess.run(
            [sys.executable, "-m", "stigmer.cli", "token", "create", "--role", "user", "--name", "doc"],
            env=server_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        login = stigmer("login", "--endpoint", f"grpc://{address}", "--token", token, "--name", "team")
        assert login.returncode == 0, login.stderr

        code, context = _context_line(stigmer)
        assert context == {
            "check": "context",
            "status": "OK",
            "detail": f"'team' (server grpc://{address}): reachable, token accepted",
            "fix": "",
        }

        # The token is revoked on the server: the same context now fails on its token.
        revoked = subprocess.run(
            [sys.executable, "-m", "stigmer.cli", "token", "revoke", "doc"],
            env=server_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        # The server trusts a verified token for its cache's 2 s: ask until it has looked again.
        deadline = time.monotonic() + 30
        code, context = _context_line(stigmer)
        while code != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            code, context = _context_line(stigmer)
        assert code == 1
        assert context["status"] == "FAIL"
        assert (
            context["detail"] == f"'team': grpc://{address} refused the token (missing, invalid or revoked)"
        )
        assert "stigmer login --endpoint" in context["fix"]
        assert token not in json.dumps(context)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_doctor_names_the_server_of_a_list_that_does_not_answer(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path
) -> None:
    """Issue 24: a context naming several servers works while one answers; doctor says which do not."""
    from stigmer.server import ServerProcess, TokenStore
    from stigmer.testing import free_port

    server = ServerProcess(home=tmp_path / "server-home", args=["--no-run-executions"])
    server.start()
    try:
        store = TokenStore(home=server.home)
        token = store.create("user", "doc-pair").token
        store.close()
        dead = f"grpc://127.0.0.1:{free_port()}"
        (stigmer_home / "config.yaml").write_text(
            f"currentContext: pair\ncontexts: [{{name: pair, backend: cloud, endpoint: '{server.endpoint},{dead}'}}]\n"
        )
        (stigmer_home / "credentials.yaml").write_text(f"pair: {token}\n")
        (stigmer_home / "credentials.yaml").chmod(0o600)
        code, context = _context_line(stigmer)
        assert code == 0, context
        assert context["status"] == "WARN"
        assert context["detail"].startswith(
            f"'pair' (server {server.endpoint},{dead}): reachable, token accepted, but 1 of its servers "
            f"do not answer: {dead} (cannot reach the Stigmer server at {dead}"
        ), context
        assert "stigmer login --endpoint URL,URL --name pair" in context["fix"]
        # Both up: OK.
        (stigmer_home / "config.yaml").write_text(
            "currentContext: pair\ncontexts: "
            f"[{{name: pair, backend: cloud, endpoint: '{server.endpoint},{server.endpoint.replace('127.0.0.1', 'localhost')}'}}]\n"
        )
        code, context = _context_line(stigmer)
        assert (code, context["status"]) == (0, "OK"), context
    finally:
        server.stop()
