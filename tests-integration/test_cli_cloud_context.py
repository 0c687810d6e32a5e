"""The CLI in a cloud context: login to a real `stigmer server`, apply, get and run through it
(the server runs the execution; the CLI only creates and watches), and back to the local context."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stigmer.server import ServerProcess, TokenStore

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    home = tmp_path / "server-home"
    home.mkdir()
    process = ServerProcess(home=home)
    process.start()
    yield process
    assert process.stop() == 0


def test_cloud_context_round_trip(stigmer: StigmerCli, server: ServerProcess, stigmer_home: Path) -> None:
    token = TokenStore(home=server.home).create(role="user", name="cli-test").token
    login = stigmer("login", "--endpoint", server.endpoint, "--token", token, "--name", "team")
    assert login.returncode == 0, login.stderr
    assert token not in login.stdout + login.stderr
    shown = json.loads(stigmer("context", "show", "-o", "json").stdout)
    assert shown == {
        "name": "team",
        "backend": "cloud",
        "current": True,
        "endpoint": server.endpoint,
        "loggedIn": True,
    }

    applied = stigmer("apply", "-f", str(ROOT / "examples" / "hello.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "workflow/hello created"
    assert [w["metadata"]["name"] for w in json.loads(stigmer("get", "wf", "-o", "json").stdout)] == ["hello"]

    run = stigmer("run", "hello", "--input", '{"name": "server"}', "-o", "json")
    assert run.returncode == 0, run.stderr
    execution = json.loads(run.stdout)
    assert execution["phase"] == "SUCCEEDED"
    assert execution["output"] == {"greeting": "Hello, server!"}
    live = stigmer("workflow", "run", "hello")
    assert live.returncode == 0, live.stderr
    assert "greet" in live.stdout and "phase SUCCEEDED" in live.stdout

    # what only the embedded store can do is refused with a reason
    resume = stigmer("execution", "resume", execution["id"])
    assert resume.returncode == 1 and "already finished" in resume.stderr
    rotate = stigmer("secret", "rotate-key")
    assert rotate.returncode == 1 and "local store only" in rotate.stderr

    # the local context is a different store
    local = stigmer("--context", "local", "get", "wf", "-o", "json")
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == []
    assert not (stigmer_home / "stigmer.db").exists() or json.loads(local.stdout) == []

    # a token revoked after login: the next call is refused in one line
    store = TokenStore(home=server.home)
    later = store.create(role="user", name="revoked-later")
    assert (
        stigmer("login", "--endpoint", server.endpoint, "--token", later.token, "--name", "wrong").returncode
        == 0
    )
    store.revoke(later.id)
    time.sleep(2.2)  # the server trusts a verified token for 2 s
    refused = stigmer("get", "wf")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert stigmer("context", "use", "team").returncode == 0
    assert stigmer("logout", "wrong").returncode == 0
    assert stigmer("logout").stdout.strip() == "logged out of 'team'; current context: local"


def _state(home: Path) -> tuple[str, str]:
    config = home / "config.yaml"
    credentials = home / "credentials.yaml"
    return (
        config.read_text() if config.exists() else "",
        credentials.read_text() if credentials.exists() else "",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_login_checks_endpoint_and_token(
    stigmer: StigmerCli, server: ServerProcess, stigmer_home: Path
) -> None:
    """`stigmer login` makes one authenticated call before it writes anything or switches."""
    token = TokenStore(home=server.home).create(role="runner", name="login-check").token
    before = _state(stigmer_home)

    # (a) nothing listens at the endpoint
    nowhere = f"grpc://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    unreachable = stigmer("login", "--endpoint", nowhere, "--token", token, "--name", "nowhere")
    assert time.monotonic() - started < 20
    assert unreachable.returncode == 1
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), unreachable.stderr
    assert "cannot reach" in lines[0] and nowhere in lines[0] and "endpoint" in lines[0]
    assert "logged in" not in unreachable.stdout
    assert _state(stigmer_home) == before

    # (b) the server refuses the token
    wrong = stigmer("login", "--endpoint", server.endpoint, "--token", "not-a-token", "--name", "wrong")
    assert wrong.returncode == 1
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), wrong.stderr
    assert "refused the token" in lines[0] and "stigmer token create" in lines[0]
    assert "not-a-token" not in wrong.stdout + wrong.stderr
    assert "logged in" not in wrong.stdout
    assert _state(stigmer_home) == before
    assert json.loads(stigmer("context", "show", "-o", "json").stdout)["name"] == "local"

    # (c) the right token (any role): logged in and switched, as before
    right = stigmer("login", "--endpoint", server.endpoint, "--token", token, "--name", "team")
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip() == f"logged in to {server.endpoint} as context 'team' (now current)"
    assert token not in right.stdout + right.stderr
    shown = json.loads(stigmer("context", "show", "-o", "json").stdout)
    assert shown["name"] == "team" and shown["loggedIn"] is True
    assert {c["name"] for c in json.loads(stigmer("context", "list", "-o", "json").stdout)} == {
        "local",
        "team",
    }


def test_a_failed_run_through_a_server_says_its_error_once(
    stigmer: StigmerCli, server: ServerProcess, tmp_path: Path
) -> None:
    """The cloud backend against a real server: the error is said once, by the report at the end,
    without a status-class prefix (``NotFound:``) from the gRPC mapping."""
    token = TokenStore(home=server.home).create(role="user", name="cli-test").token
    assert stigmer("login", "--endpoint", server.endpoint, "--token", token, "--name", "team").returncode == 0
    manifest = tmp_path / "failing.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: failing}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: failing, version: 1.0.0}\n"
        "  do:\n"
        "    - ask: {call: agent, with: {agent: nobody, message: hi}}\n"
        # apply refuses a workflow naming a missing agent: it exists at apply, not at the run
        "---\napiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: nobody}\nspec: {instructions: hi}\n"
    )
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    assert stigmer("delete", "agent", "nobody").returncode == 0
    run = stigmer("run", "failing")
    assert run.returncode == 1
    both = run.stdout + run.stderr
    assert both.count("no Agent 'nobody' exists") == 1, both
    for prefix in ("NotFound", "FailedPrecondition", "Unavailable"):
        assert f"{prefix}:" not in both
    assert run.stderr.strip().splitlines()[-1].startswith("error: WorkflowExecution ")
