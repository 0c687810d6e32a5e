"""`stigmer console` over the Lite store: a one-time login link (usable once), and a run started
from the console actually executes (the server's dispatch: a child process per run) against the
stand-in model; the run started before from the CLI (in-process) is listed too."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stigmer.testing import ScriptedLLM, call, cli_env, free_port, text

pytestmark = pytest.mark.timeout(180)

AGENT = """
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: echo}}
spec:
  instructions: Answer briefly.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: "{base_url}"}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: careful}}
spec:
  instructions: Plan first.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: "{base_url}"}}
  tools:
    - {{name: todos, requireApproval: [write_todos]}}
"""


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def _read_link(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[str, str]:
    assert proc.stderr is not None
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while b"log in once with: " not in buffer or not buffer.rstrip(b" ").endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no login link within {timeout} s: {buffer.decode()!r}"
            if sel.select(remaining):
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk, f"stigmer console exited: {buffer.decode()!r}"
                buffer += chunk
    out = buffer.decode()
    link = re.search(r"log in once with: (\S+)", out)
    base = re.search(r"stigmer console on (\S+) ", out)
    assert link and base, out
    return base.group(1), link.group(1)


def test_lite_console_logs_in_once_and_runs_what_it_starts(
    tmp_path: Path, stigmer_home: Path, llm: ScriptedLLM
) -> None:
    env = cli_env(stigmer_home)
    cli = [sys.executable, "-m", "stigmer.cli"]
    manifest = tmp_path / "echo.yaml"
    manifest.write_text(AGENT.format(base_url=llm.base_url))
    subprocess.run([*cli, "apply", "-f", str(manifest)], env=env, check=True, capture_output=True, timeout=90)
    llm.add(text("from the terminal"))
    subprocess.run([*cli, "run", "echo", "-m", "hi"], env=env, check=True, capture_output=True, timeout=90)
    # A run started in the terminal that stops for an approval, answered in the console later.
    llm.add(call("write_todos", todos=[{"content": "check the logs"}]))
    paused = subprocess.run(
        [*cli, "run", "careful", "-m", "plan", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    paused_id = json.loads(paused.stdout)["id"]
    assert json.loads(paused.stdout)["phase"] == "WAITING_APPROVAL", paused.stdout + paused.stderr

    port = free_port()
    proc = subprocess.Popen(
        [*cli, "console", "--no-open", "--port", str(port)], env=env, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        base, link = _read_link(proc)
        assert base == f"http://127.0.0.1:{port}/console/"
        with httpx.Client(follow_redirects=False, timeout=30) as client:
            answer = client.get(link)
            assert answer.status_code == 303 and answer.headers["location"].endswith("/console/runs")
            listed = client.get(f"{base}runs")
            assert listed.status_code == 200 and "Agent/echo" in listed.text  # the CLI's run
            form = client.get(f"{base}definitions/agent/echo")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            llm.add(text("from the console"))
            started = client.post(
                f"{base}definitions/agent/echo/run", data={"csrf": csrf.group(1), "message": "hello there"}
            )
            assert started.status_code == 303, started.text
            run_url = started.headers["location"]
            assert re.search(r"/console/runs/aex_[0-9a-z]+$", run_url)
            deadline = time.monotonic() + 90
            while True:
                page = client.get(f"http://127.0.0.1:{port}{run_url}")
                if 'id="phase">SUCCEEDED' in page.text or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert 'id="phase">SUCCEEDED' in page.text, page.text[-3000:]
            assert "from the console" in page.text
            # approve the terminal's paused run: the console's server resumes it
            paused_page = client.get(f"{base}runs/{paused_id}")
            assert 'id="approval"' in paused_page.text
            approval = re.search(r'name="approval_id" value="([^"]+)"', paused_page.text)
            assert approval
            llm.add(text("planned and done"))
            approved = client.post(
                f"{base}runs/{paused_id}/approve",
                data={"csrf": csrf.group(1), "approval_id": approval.group(1), "reason": "go"},
            )
            assert approved.status_code == 303, approved.text
            deadline = time.monotonic() + 90
            while True:
                page = client.get(f"{base}runs/{paused_id}")
                if 'id="phase">SUCCEEDED' in page.text or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert 'id="phase">SUCCEEDED' in page.text, page.text[-3000:]
            assert "planned and done" in page.text
        # The link works once: a second browser cannot use it.
        with httpx.Client(follow_redirects=False, timeout=30) as other:
            again = other.get(link)
            assert again.status_code == 401
            assert other.get(f"{base}runs").status_code == 303  # to the login page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.stderr is not None
        rest = proc.stderr.read().decode()
        proc.stderr.close()
    assert code == 0, rest
    assert "Traceback" not in rest


def test_console_refuses_a_port_in_use_and_a_server_context(stigmer: Any, stigmer_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = stigmer("console", "--no-open", "--port", str(port))
    assert busy.returncode == 1
    assert f"port {port} is already in use on 127.0.0.1; choose another with --port" in busy.stderr
    assert "Traceback" not in busy.stderr
    (stigmer_home / "config.yaml").write_text(
        "currentContext: prod\ncontexts:\n  - {name: prod, endpoint: 'grpc://127.0.0.1:1'}\n"
    )
    remote = stigmer("console", "--no-open")
    assert remote.returncode == 1
    assert "context 'prod' is a server" in remote.stderr and "/console/" in remote.stderr
    assert "Traceback" not in remote.stderr
