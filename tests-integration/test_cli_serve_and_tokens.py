"""`stigmer server` and `stigmer token create|list|revoke` through the real CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parent.parent


def test_tokens(stigmer: StigmerCli) -> None:
    created = stigmer("token", "create", "--role", "runner", "--name", "worker-1", "-o", "json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["role"] == "runner" and token["name"] == "worker-1" and token["token"]
    plain = stigmer("token", "create", "--role", "user", "--name", "alice")
    assert plain.returncode == 0, plain.stderr
    assert "not shown again" in plain.stderr
    secret = plain.stdout.strip()
    assert secret and "\n" not in secret  # stdout holds the token alone

    listed = json.loads(stigmer("token", "list", "-o", "json").stdout)
    by_name = {t["name"]: t for t in listed}
    assert {"worker-1", "alice"} <= set(by_name)
    assert all("token" not in t for t in listed)
    table = stigmer("token", "list").stdout
    assert secret not in table and token["token"] not in table

    revoked = stigmer("token", "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert "alice" in revoked.stdout and "revoked" in revoked.stdout
    assert json.loads(stigmer("token", "list", "-o", "json").stdout)
    assert {t["name"]: t["revoked"] for t in json.loads(stigmer("token", "list", "-o", "json").stdout)}[
        "alice"
    ]
    bad = stigmer("token", "create", "--role", "root")
    assert bad.returncode == 2  # not one of user, runner, admin


def test_server_serves_the_cli(stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path) -> None:
    server_home = tmp_path / "server-home"
    server_env = {**stigmer_env, "STIGMER_HOME": str(server_home)}
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
            [sys.executable, "-m", "stigmer.cli", "token", "create", "--role", "user"],
            env=server_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        assert stigmer("login", "--endpoint", f"grpc://{address}", "--token", token).returncode == 0
        applied = stigmer("apply", "-f", str(ROOT / "examples" / "hello.yaml"))
        assert applied.returncode == 0, applied.stderr
        run = stigmer("run", "hello", "-o", "json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["output"] == {"greeting": "Hello, world!"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stigmer server stopped" in rest
    assert (server_home / "stigmer.db").exists()


def test_server_flags_are_checked(stigmer: StigmerCli, tmp_path: Path) -> None:
    half = stigmer("server", "--tls-cert", str(tmp_path / "c.pem"))
    assert half.returncode == 1
    assert half.stderr.strip() == "error: give both --tls-cert and --tls-key, or neither"
    public = stigmer("server", "--listen", "0.0.0.0:0")
    assert public.returncode == 1
    assert public.stderr.startswith("error: ") and "TLS" in public.stderr


def _serve(stigmer_env: dict[str, str], home: Path, *flags: str) -> tuple[subprocess.Popen[str], str, str]:
    """A `stigmer server` process, its address, and what it printed up to the address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "server", "--listen", "127.0.0.1:0", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**stigmer_env, "STIGMER_HOME": str(home)},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    printed = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        printed += line
        if "stigmer server listening on " in line:
            return proc, line.split("listening on ")[1].split()[0], printed
        assert line or proc.poll() is None, "the server exited"
    raise AssertionError("the server did not report its address")


@pytest.mark.parametrize("allow", [False, True])
def test_local_commands_run_on_a_cli_server_only_with_allow_run(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, allow: bool
) -> None:
    home = tmp_path / "server-home"
    proc, address, printed = _serve(stigmer_env, home, *(["--allow-run"] if allow else []))
    try:
        token = subprocess.run(
            [sys.executable, "-m", "stigmer.cli", "token", "create", "--role", "user"],
            env={**stigmer_env, "STIGMER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        assert stigmer("login", "--endpoint", f"grpc://{address}", "--token", token).returncode == 0
        manifest = tmp_path / "sh.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: sh}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: sh, version: 1.0.0}\n"
            "  do:\n    - hi: {run: {shell: {command: 'echo -n hi from $0'}}}\n"
        )
        assert stigmer("apply", "-f", str(manifest)).returncode == 0
        run = stigmer("run", "sh", "-o", "json")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    if allow:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["output"] == "hi from sh"
        assert "--allow-run: executions may start local processes" in printed  # the admin is told
    else:
        assert "--allow-run" not in printed
        assert run.returncode == 1
        assert (
            "run: shell is not allowed on this server; an admin can enable it with `stigmer server --allow-run`"
            in run.stdout + run.stderr
        )


def test_a_token_created_while_the_server_runs_is_accepted(tmp_path: Path) -> None:
    """Reproduced: once the server had checked one token, tokens created later (by `stigmer token
    create` or any other process) were refused. Opening and closing the database file to tighten
    its mode dropped the server's SQLite locks, and another process then reset the WAL under the
    server's connection, which went on reading a stale snapshot."""
    import asyncio

    from stigmer.backend.cloud import CloudBackend
    from stigmer.core import Unauthenticated
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.server import ServerProcess, TokenStore

    home = tmp_path / "server-home"
    server = ServerProcess(home=home, database_url=f"sqlite:///{home / 'stigmer.db'}")
    server.start()
    try:
        early = TokenStore(database_url=server.database_url)
        first = early.create("user", "early").token
        early.close()

        async def accepted(token: str) -> bool:
            client = CloudBackend(server.endpoint, token, timeout=20)
            try:
                await client.list_secrets(svc.ListSecretsRequest())
                return True
            except Unauthenticated:
                return False
            finally:
                await client.close()

        assert asyncio.run(accepted(first))  # the server has now checked a token
        for name in ("late-1", "late-2"):
            later = TokenStore(database_url=server.database_url)
            token = later.create("user", name).token
            later.close()
            assert asyncio.run(accepted(token)), name
    finally:
        assert server.stop() == 0
