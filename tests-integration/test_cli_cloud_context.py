"""The CLI in a cloud context: login to a real `stigmer server`, apply, get and run through it
(the server runs the execution; the CLI only creates and watches), and back to the local context."""

from __future__ import annotations

import json
import subprocess
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

    bad = stigmer("login", "--endpoint", server.endpoint, "--token", "not-a-token", "--name", "wrong")
    assert bad.returncode == 0
    refused = stigmer("get", "wf")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert stigmer("context", "use", "team").returncode == 0
    assert stigmer("logout", "wrong").returncode == 0
    assert stigmer("logout").stdout.strip() == "logged out of 'team'; current context: local"
