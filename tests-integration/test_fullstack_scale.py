"""Scaling the full stack out and surviving Temporal restarts, without Docker.

``stigmer local start`` brings up a real Temporal dev server, a real ``stigmer server`` and workers
in a private STIGMER_HOME on free ports. The test then kills the supervisor (the components keep
running, unsupervised) and its workers, so it owns every process it stops and starts: two
``stigmer-workflow-runner`` and two ``stigmer-agent-runner`` processes started here, the way a worker
machine starts them (``--backend``, ``--token``, ``--temporal``, ``--namespace``, ``--task-queue``,
``--concurrency``), and the Temporal dev server, which is stopped and started again mid-run.

The stack (``LocalStack``) and its helpers come from ``stigmer.testing``; the world the workflows
call and the stand-in model (``fullstack_world``) from the conftest, as in ``test_fullstack_local.py``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import FullstackWorld, LocalStack, history_text, temporal_cli_json, wait_for

Stack = LocalStack


@pytest.fixture(scope="module")
def world(fullstack_world: FullstackWorld) -> FullstackWorld:
    return fullstack_world


pytestmark = pytest.mark.timeout(300)

WORKFLOW_QUEUE = "stigmer-workflows"
AGENT_QUEUE = "stigmer-agents"


class ScaledStack:
    """A stack whose workers (and, when restarted, Temporal) are this test's own processes."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.temporal_address = f"127.0.0.1:{stack.temporal_port}"
        self.endpoint = f"grpc://127.0.0.1:{stack.server_port}"
        self.token = (stack.home / "local" / "runner.token").read_text(encoding="utf-8").strip()
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.temporal: subprocess.Popen[bytes] | None = None
        self.logs: list[Any] = []

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.stack.home / "local" / f"{name}.log", "ab", buffering=0)  # noqa: SIM115
        self.logs.append(log)
        env = {**self.stack.env, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def start_worker(self, name: str, kind: str, concurrency: int) -> int:
        script = "stigmer-workflow-runner" if kind == "workflow" else "stigmer-agent-runner"
        queue = WORKFLOW_QUEUE if kind == "workflow" else AGENT_QUEUE
        process = self._spawn(
            name,
            [
                str(Path(sys.executable).parent / script),
                "--backend",
                self.endpoint,
                "--token",
                self.token,
                "--temporal",
                self.temporal_address,
                "--namespace",
                "default",
                "--task-queue",
                queue,
                "--concurrency",
                str(concurrency),
            ],
        )
        self.workers[name] = process
        return process.pid

    def pollers(self, queue: str) -> dict[int, set[str]]:
        """Pid → task queue types ("workflow", "activity") Temporal lists as polling ``queue``."""
        found: dict[int, set[str]] = {}
        with contextlib.suppress(ValueError):
            described = temporal_cli_json(
                self.temporal_address, "task-queue", "describe", "--task-queue", queue, check=False
            )
            for poller in described.get("pollers") or []:
                head = str(poller.get("identity", "")).split("@", 1)[0]
                if head.isdigit():
                    found.setdefault(int(head), set()).add(str(poller.get("taskQueueType")))
        return found

    def wait_polling(self, queue: str, pids: list[int]) -> None:
        seen: dict[int, set[str]] = {}

        def ready() -> bool:
            for name, process in self.workers.items():
                assert process.poll() is None, f"{name} exited\n{self.stack.log_tails()}"
            seen.clear()
            seen.update(self.pollers(queue))
            return all({"workflow", "activity"} <= seen.get(pid, set()) for pid in pids)

        try:
            wait_for(ready, 60, f"workers {pids} to poll {queue}", every=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; pollers seen: {seen}") from None

    def history(self, execution_id: str) -> dict[str, Any]:
        history: dict[str, Any] = temporal_cli_json(
            self.temporal_address, "workflow", "show", "-w", execution_id
        )
        return history

    def activity_pids(self, execution_id: str) -> set[int]:
        """Pids of the workers that started the execution's activities (identity ``pid@host``)."""
        pids = set()
        for event in self.history(execution_id).get("events", []):
            started = event.get("activityTaskStartedEventAttributes")
            if started:
                head = str(started.get("identity", "")).split("@", 1)[0]
                if head.isdigit():
                    pids.add(int(head))
        return pids

    def close(self) -> None:
        for process in [*self.workers.values(), *([self.temporal] if self.temporal else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers.values(), *([self.temporal] if self.temporal else [])]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("fullstack-scale") / "home"
    home.mkdir()
    stack = Stack(home)
    owned: ScaledStack | None = None
    try:
        stack.start()
        # Without its supervisor nothing is restarted behind the test's back.
        os.kill(int((home / "local" / "supervisor.pid").read_text()), signal.SIGKILL)
        wait_for(
            lambda: all(r["state"] == "unsupervised" for r in stack.status()), 15, "unsupervised components"
        )
        for name in ("workflow-runner", "agent-runner"):
            pid = stack.pid(name)
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            wait_for(functools.partial(_exited, pid), 30, f"{name} to exit")
        owned = ScaledStack(stack)
        yield owned
    finally:
        if owned is not None:
            owned.close()
        stack.force_cleanup()


def _exited(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_two_workflow_workers_share_the_executions(scaled: ScaledStack, world: Any) -> None:
    # Two slots per worker and ten executions whose one call takes 3 s: neither worker can take
    # them all, so both must run some.
    first = scaled.start_worker("workflow-runner-a", "workflow", concurrency=2)
    second = scaled.start_worker("workflow-runner-b", "workflow", concurrency=2)
    scaled.wait_polling(WORKFLOW_QUEUE, [first, second])
    tag = time.monotonic_ns()
    scaled.stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: shared-load}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: shared-load, version: 1.0.0}}
  do:
    - call:
        call: http
        with: {{method: get, endpoint: '${{ "{world.url}/slow-{tag}-" + (.n | tostring) }}'}}
""")
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stigmer.cli",
                "run",
                "shared-load",
                "--input",
                json.dumps({"n": n}),
                "--detach",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=scaled.stack.env,
        )
        for n in range(10)
    ]
    ids = []
    for run in runs:
        try:
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        ids.append(out.strip().splitlines()[-1])
    started = time.monotonic()
    outputs = set()
    for execution_id in ids:
        done = scaled.stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED", "CANCELLED"}, 120)
        assert done["phase"] == "SUCCEEDED", done
        outputs.add(done["output"]["path"])
    assert outputs == {f"/slow-{tag}-{n}" for n in range(10)}
    for n in range(10):
        assert world.count(f"/slow-{tag}-{n}") == 1
    by_worker: dict[int, int] = {}
    for execution_id in ids:
        for pid in scaled.activity_pids(execution_id):
            by_worker[pid] = by_worker.get(pid, 0) + 1
    assert set(by_worker) == {first, second}, by_worker
    assert sum(by_worker.values()) == 10
    assert time.monotonic() - started < 100


def test_two_agent_workers_share_runs_and_the_model_key_stays_out_of_temporal(
    scaled: ScaledStack, world: Any
) -> None:
    # Every model answer takes 3 s and each worker runs two agents at a time: with six runs in
    # flight at once, both workers must take some.
    world.chat_delay = 3.0
    try:
        first = scaled.start_worker("agent-runner-a", "agent", concurrency=2)
        second = scaled.start_worker("agent-runner-b", "agent", concurrency=2)
        scaled.wait_polling(AGENT_QUEUE, [first, second])
        secret = "sk-agent-key-9f3e1d-plaintext"
        scaled.stack.cli("secret", "set", "STIGMER_LLM_API_KEY", input=secret + "\n")
        scaled.stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: keyed}}
spec:
  instructions: Greet the user.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  secrets: [STIGMER_LLM_API_KEY]
""")
        before = world.count("/v1/chat/completions")
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "stigmer.cli", "agent", "execute", "keyed", f"hi {n}", "--detach"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=scaled.stack.env,
            )
            for n in range(6)
        ]
        ids = []
        for run in runs:
            try:
                out, err = run.communicate(timeout=120)
            finally:
                if run.poll() is None:
                    run.kill()
            assert run.returncode == 0, err
            ids.append(out.strip().splitlines()[-1])
        for execution_id in ids:
            done = scaled.stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED", "CANCELLED"}, 120)
            assert done["phase"] == "SUCCEEDED", done
            assert done["output"] == world.reply
    finally:
        world.chat_delay = 0.0
    assert world.count("/v1/chat/completions") == before + 6
    assert f"Bearer {secret}" in world.auth  # the stand-in model got the key
    workers: set[int] = set()
    for execution_id in ids:
        history = scaled.history(execution_id)
        text = history_text(history)
        assert execution_id in text and "PHASE_SUCCEEDED" in text  # payloads were decoded …
        assert secret not in text  # … the key is not
        workers |= scaled.activity_pids(execution_id)
    assert workers == {first, second}
    logs = sorted((scaled.stack.home / "local").glob("*.log"))
    assert logs, "the stack wrote no logs to scan"
    for log in logs:
        assert secret not in log.read_text(encoding="utf-8", errors="replace"), log.name


def test_an_execution_survives_a_temporal_restart_during_a_wait(scaled: ScaledStack, world: Any) -> None:
    if not scaled.workers:
        scaled.start_worker("workflow-runner-a", "workflow", concurrency=2)
    scaled.wait_polling(
        WORKFLOW_QUEUE, [p.pid for n, p in scaled.workers.items() if n.startswith("workflow")]
    )
    tag = time.monotonic_ns()
    before, after = f"/before-restart-{tag}", f"/after-restart-{tag}"
    scaled.stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: outlives-temporal}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: outlives-temporal, version: 1.0.0}}
  do:
    - before:
        call: http
        with: {{method: get, endpoint: {world.url}{before}}}
    - pause:
        wait: {{seconds: 5}}
    - after:
        call: http
        with: {{method: get, endpoint: {world.url}{after}}}
""")
    execution_id = scaled.stack.cli("run", "outlives-temporal", "--detach").stdout.strip().splitlines()[-1]
    wait_for(lambda: world.count(before) == 1, 30, "the call before the wait")
    time.sleep(0.5)  # the durable timer is started
    pid = scaled.stack.pid("temporal")
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert b"--db-filename" in argv
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: _zombie(pid), 30, "the Temporal dev server to exit")
    assert not _port_open(scaled.stack.temporal_port)
    scaled.temporal = scaled._spawn("temporal-restarted", [a.decode() for a in argv])
    wait_for(lambda: _port_open(scaled.stack.temporal_port), 30, "the Temporal dev server to listen again")
    done = scaled.stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED", "CANCELLED"}, 90)
    assert done["phase"] == "SUCCEEDED", done
    assert world.count(before) == 1  # not repeated after the restart
    assert world.count(after) == 1
    assert all(process.poll() is None for process in scaled.workers.values()), scaled.stack.log_tails()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
