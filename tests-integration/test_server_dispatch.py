"""Executions created through the server run in child processes (the real runners, started with
``python -m stigmer.runner.<name> --execution ID``) that talk back to a real server over gRPC."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format
from stigmer.backend.local import LocalBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server import admin_token_path, serve
from stigmer.server._dispatch import (
    ChildDispatcher,
    child_environment,
    orphaned,
    runner_command,
    runner_name,
)

P = execution_pb2
REFUSAL = "run: shell is not allowed on this server; an admin can enable it with `stigmer server --allow-run`"
pytestmark = pytest.mark.timeout(120)


def workflow(name: str, tasks: str) -> str:
    return (
        f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
        f"  document: {{dsl: 1.0.0, namespace: t, name: {name}, version: 1.0.0}}\n  do:\n{tasks}"
    )


SET = workflow("flow", "    - a: {set: {x: 1}}\n")
SLOW = workflow(
    "slow",
    "    - first: {set: {a: 1}}\n    - pause: {wait: {seconds: 2}}\n    - last: {set: {a: '${ .a }', b: 2}}\n",
)
STUCK = workflow("stuck", "    - first: {set: {a: 1}}\n    - pause: {wait: {seconds: 60}}\n")


class Server:
    """A real server (in this process) whose executions run in child processes."""

    def __init__(
        self, channel: grpc.aio.Channel, token: str, backend: LocalBackend, dispatcher: ChildDispatcher
    ) -> None:
        self.channel = channel
        self.stub = svc_grpc.BackendServiceStub(self.channel)
        self.meta = (("authorization", f"Bearer {token}"),)
        self.backend = backend
        self.dispatcher = dispatcher
        self.task: asyncio.Task[None] | None = None

    async def apply(self, text: str) -> None:
        for loaded in parse_manifest(text, "test.yaml"):
            await self.stub.Apply(svc.ApplyRequest(resource=loaded.resource), metadata=self.meta)  # type: ignore[arg-type]

    async def run(self, name: str) -> str:
        created = await self.stub.CreateExecution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
            ),
            metadata=self.meta,
        )
        return str(created.metadata.id)

    async def get(self, execution_id: str) -> execution_pb2.Execution:
        got: execution_pb2.Execution = await self.stub.GetExecution(
            svc.GetExecutionRequest(id=execution_id), metadata=self.meta
        )
        return got

    async def until(
        self, execution_id: str, check: Callable[[execution_pb2.Execution], bool], timeout: float = 60
    ) -> execution_pb2.Execution:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self.get(execution_id)
            if check(got):
                return got
            assert loop.time() < deadline, f"execution {execution_id} never got there: {got.status}"
            await asyncio.sleep(0.05)

    async def phase(self, execution_id: str, *phases: int) -> execution_pb2.Execution:
        return await self.until(execution_id, lambda e: e.status.phase in phases)

    async def child_of(self, execution_id: str) -> int:
        """The pid of the child process running ``execution_id`` (once it reported RUNNING)."""
        await self.until(
            execution_id,
            lambda e: e.status.phase == P.PHASE_RUNNING and execution_id in self.dispatcher.children(),
        )
        return self.dispatcher.children()[execution_id]


Start = Callable[..., Awaitable[Server]]


@pytest_asyncio.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[tuple[asyncio.Task[None], Server]] = []
    backends: dict[bool, LocalBackend] = {}

    async def factory(*, allow_run: bool = False, grace: float = 10.0, **options: Any) -> Server:
        backend = backends.get(allow_run)
        if backend is None:
            backend = LocalBackend(
                f"sqlite:///{tmp_path / f's{int(allow_run)}.db'}",
                home=tmp_path,
                master_key=os.urandom(32),
                allow_run=allow_run,
            )
            backends[allow_run] = backend
        dispatcher = ChildDispatcher(backend, **options)
        ready = asyncio.Event()
        bound: list[str] = []
        task = asyncio.create_task(
            serve(
                backend,
                "127.0.0.1:0",
                home=tmp_path,
                ready=ready,
                on_ready=bound.append,
                dispatcher=dispatcher,
                grace=grace,
            )
        )
        await asyncio.wait_for(ready.wait(), 30)
        channel = grpc.aio.insecure_channel(bound[0])
        server = Server(channel, admin_token_path(tmp_path).read_text().strip(), backend, dispatcher)
        server.task = task
        started.append((task, server))
        return server

    yield factory
    for task, server in started:
        await server.channel.close()
        if not task.done():
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for backend in backends.values():
        await backend.close()


def runner_pid(execution: execution_pb2.Execution) -> int:
    """The process id in a runner identity ``host:pid:workflow``."""
    return int(execution.status.runner.split(":")[1])


def test_runner_name_by_kind() -> None:
    assert runner_name("WorkflowExecution") == "workflow"
    assert runner_name("AgentExecution") == "agent"


def test_runners_are_started_with_the_servers_interpreter_by_their_public_package() -> None:
    bin_dir = Path(sys.executable).parent
    assert runner_command("workflow") == [str(bin_dir / "stigmer-workflow-runner")]
    assert runner_command("agent") == [str(bin_dir / "stigmer-agent-runner")]
    assert runner_command("no-such-runner") is None


def test_the_child_environment_keeps_nothing_of_the_store() -> None:
    server_env = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/opt/stigmer/lib",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/root",
        "STIGMER_MASTER_KEY": "k" * 44,
        "STIGMER_DATABASE_URL": "postgresql://u:p@db/stigmer",
        "STIGMER_HOME": "/srv/stigmer",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "OPENAI_API_KEY": "sk-server",
    }
    env = child_environment("/tmp/stigmer-run-x", server_env)
    assert env == {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/opt/stigmer/lib",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/tmp/stigmer-run-x",
        "TMPDIR": "/tmp/stigmer-run-x",
    }


def test_the_child_gets_the_servers_limits_and_nothing_else_of_stigmer() -> None:
    from stigmer.core import Limits

    env = child_environment("/tmp/h", {"PATH": "/bin", "STIGMER_MASTER_KEY": "k"}, Limits(tasks=500))
    stigmer = {key: value for key, value in env.items() if key.startswith("STIGMER_")}
    assert stigmer["STIGMER_LIMIT_TASKS"] == "500"
    assert Limits.load(stigmer) == Limits(tasks=500)  # what the child reads is what the server had
    assert set(stigmer) == {name for name in stigmer if name.startswith("STIGMER_LIMIT_")}


async def test_an_execution_runs_in_a_child_process_with_a_scoped_token(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="stigmer.server")
    server = await start()
    await server.apply(SET)
    execution_id = await server.run("flow")
    done = await server.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output) == {"x": 1}
    pid = runner_pid(done)
    assert pid != os.getpid()
    assert f"running execution {execution_id} in child process {pid}" in caplog.text
    # The child called in with a token of its own (xtk_...), which is gone once it exited.
    child_calls = re.findall(r"rpc method=(\w+) code=OK .* token=(xtk_\w+)", caplog.text)
    assert {"GetExecution", "UpdateExecutionStatus"} <= {method for method, _ in child_calls}
    assert len({token for _, token in child_calls}) == 1
    await server.until(execution_id, lambda _e: server.dispatcher.running == 0)
    assert server.dispatcher.tokens is not None and len(server.dispatcher.tokens) == 0


async def test_the_scoped_token_resolves_while_the_run_lasts_and_is_revoked_after(start: Start) -> None:
    server = await start()
    await server.apply(SLOW)
    execution_id = await server.run("slow")
    await server.child_of(execution_id)
    tokens = server.dispatcher.tokens
    assert tokens is not None and len(tokens) == 1
    done = await server.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    await server.until(execution_id, lambda _e: server.dispatcher.running == 0)
    assert len(tokens) == 0


async def test_a_shell_task_is_refused_without_allow_run_and_nothing_runs(
    start: Start, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    server = await start()
    await server.apply(workflow("pwn", f"    - sh: {{run: {{shell: {{command: 'id; touch {marker}'}}}}}}\n"))
    execution_id = await server.run("pwn")
    failed = await server.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert failed.status.phase == P.PHASE_FAILED
    assert failed.status.error.detail == REFUSAL
    assert failed.status.error.status == 403
    assert not marker.exists()


async def test_with_allow_run_a_shell_task_runs_in_a_scrubbed_grandchild(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the server's process holds must not reach what a user's command sees.
    monkeypatch.setenv("STIGMER_MASTER_KEY", "bWFzdGVyLWtleS1jYW5hcnktdmFsdWUtMDEyMzQ1Njc=")
    monkeypatch.setenv("STIGMER_DATABASE_URL", "postgresql://stigmer:db-canary-pw@db/stigmer")
    monkeypatch.setenv("SERVER_ONLY_TOKEN", "server-canary-7f3a")
    server = await start(allow_run=True)
    await server.apply(workflow("look", "    - sh: {run: {shell: {command: 'echo PPID=$PPID; env'}}}\n"))
    execution_id = await server.run("look")
    done = await server.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    stdout = json_format.MessageToDict(done.status.output)
    assert isinstance(stdout, str)
    lines = stdout.splitlines()
    ppid = int(next(line for line in lines if line.startswith("PPID="))[5:])
    assert ppid == runner_pid(done) != os.getpid()  # the shell's parent is the runner child
    assert not [line for line in lines if line.startswith("STIGMER_")]
    for canary in ("db-canary-pw", "server-canary-7f3a", "bWFzdGVyLWtleS1jYW5hcnk"):
        assert canary not in stdout
    home = next(line for line in lines if line.startswith("HOME="))[5:]
    assert home != os.environ.get("HOME") and "stigmer-run-" in home
    await server.until(execution_id, lambda _e: execution_id not in server.dispatcher.children())
    await server.until(execution_id, lambda _e: not Path(home).exists())  # it went with the child


async def test_a_child_that_dies_fails_its_execution_with_the_reason(start: Start) -> None:
    server = await start()
    await server.apply(STUCK)
    execution_id = await server.run("stuck")
    pid = await server.child_of(execution_id)
    os.kill(pid, signal.SIGKILL)
    failed = await server.phase(execution_id, P.PHASE_FAILED)
    assert failed.status.error.title == "runner process died"
    assert failed.status.error.detail == (
        "the workflow runner process was killed by SIGKILL (out of memory, or killed by someone) "
        "before the execution finished; see the server log"
    )
    tokens = server.dispatcher.tokens
    assert tokens is not None and len(tokens) == 0


async def test_a_missing_runner_fails_the_execution_naming_the_package(start: Start) -> None:
    server = await start(command=lambda name: None)
    await server.apply(SET)
    execution_id = await server.run("flow")
    failed = await server.phase(execution_id, P.PHASE_FAILED)
    assert failed.kind == "WorkflowExecution"
    assert failed.status.error.title == "runner not installed"
    assert "pip install stigmer-runner-workflow" in failed.status.error.detail


async def test_the_server_answers_while_a_run_computes(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heavy jq expression keeps its child busy, never the server's event loop."""
    # The expression takes ~1 s on an idle machine; on a loaded one it must not meet the jq time limit.
    monkeypatch.setenv("STIGMER_LIMIT_JQ_SECONDS", "120")
    server = await start()
    await server.apply(
        workflow("heavy", "    - crunch: {set: {n: '${ reduce range(0; 6000000) as $i (0; . + $i) }'}}\n")
    )
    execution_id = await server.run("heavy")
    await server.child_of(execution_id)
    await asyncio.sleep(0.5)  # the child loads the definition and starts computing
    answered = 0
    for _ in range(20):
        await server.stub.List(svc.ListRequest(kind="Workflow"), metadata=server.meta)
        answered += 1
    still = await server.get(execution_id)
    # Twenty calls were answered while the expression was still being computed.
    assert answered == 20
    assert still.status.phase == P.PHASE_RUNNING
    done = await server.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output) == {"n": 17999997000000}


async def test_shutdown_stops_children_and_the_next_start_resumes_their_executions(start: Start) -> None:
    first = await start(grace=0.2)
    await first.apply(SLOW)
    execution_id = await first.run("slow")
    await first.until(execution_id, lambda e: e.status.phase == P.PHASE_RUNNING and bool(e.status.checkpoint))
    pid = await first.child_of(execution_id)
    assert first.task is not None
    first.task.cancel()  # what SIGTERM does: a graceful shutdown
    with pytest.raises(asyncio.CancelledError):
        await first.task
    left = await first.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert left.status.phase == P.PHASE_RUNNING  # not failed: stopped for a restart
    assert orphaned(left.status.runner)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    second = await start()
    done = await second.phase(execution_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output) == {"a": 1, "b": 2}
    assert runner_pid(done) != pid


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphaned_runner_identities() -> None:
    host, gone = socket.gethostname(), dead_pid()
    assert orphaned(f"{host}:{gone}:workflow")
    assert orphaned(f"agent-runner@{host}:{gone}")
    assert not orphaned(f"{host}:{os.getppid()}:workflow")  # alive
    assert not orphaned(f"{host}:{os.getpid()}:workflow")  # this process
    assert not orphaned(f"elsewhere:{gone}:workflow")  # another machine: cannot tell
    assert not orphaned("temporal:stigmer-workflows")
    assert not orphaned("")


def test_a_dead_runner_not_yet_reaped_is_orphaned() -> None:
    """A child whose server was killed exits at once but stays a zombie until init reaps it."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_bytes().split(b") ")[1][:1] != b"Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, 0)  # still "exists"
        assert orphaned(f"{socket.gethostname()}:{proc.pid}:workflow")
    finally:
        proc.wait()


async def test_start_resumes_only_executions_of_dead_local_processes(start: Start, tmp_path: Path) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 's0.db'}", home=tmp_path, master_key=os.urandom(32))
    for loaded in parse_manifest(SET, "flow.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    ids = {}
    for label, runner in (
        ("dead", f"{socket.gethostname()}:{dead_pid()}:workflow"),
        ("alive", f"{socket.gethostname()}:{os.getppid()}:workflow"),
    ):
        created = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="flow"))
            )
        )
        await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=created.metadata.id, phase=P.PHASE_RUNNING, runner=runner
            )
        )
        ids[label] = created.metadata.id
    await backend.close()

    server = await start()  # the same database file: recover() runs at start
    done = await server.phase(ids["dead"], P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    alive = await server.get(ids["alive"])
    assert alive.status.phase == P.PHASE_RUNNING


async def test_the_next_execution_runs_in_a_spare_started_ahead_which_shutdown_ends(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="stigmer.server")
    server = await start()
    await server.apply(SET)
    first = await server.phase(await server.run("flow"), P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert first.status.phase == P.PHASE_SUCCEEDED, first.status.error
    await server.until(first.metadata.id, lambda _e: "workflow" in server.dispatcher.spares())
    spare = server.dispatcher.spares()["workflow"]
    assert spare != runner_pid(first)

    second_id = await server.run("flow")
    second = await server.phase(second_id, P.PHASE_SUCCEEDED, P.PHASE_FAILED)
    assert second.status.phase == P.PHASE_SUCCEEDED, second.status.error
    assert runner_pid(second) == spare
    assert f"running execution {second_id} in child process {spare} (started ahead)" in caplog.text

    await server.until(second_id, lambda _e: "workflow" in server.dispatcher.spares())
    next_spare = server.dispatcher.spares()["workflow"]
    assert server.task is not None
    server.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server.task
    assert orphaned(f"{socket.gethostname()}:{next_spare}:workflow")  # the spare is gone too


async def test_a_cancelled_execution_does_not_leave_its_child_running(start: Start) -> None:
    server = await start()
    await server.apply(STUCK)
    execution_id = await server.run("stuck")
    pid = await server.child_of(execution_id)
    cancelled = await server.stub.CancelExecution(
        svc.CancelExecutionRequest(id=execution_id), metadata=server.meta
    )
    assert cancelled.status.phase == P.PHASE_CANCELLED
    # The child sits in a 60 s wait; the server stops it instead of letting it hold its token.
    await server.until(execution_id, lambda _e: execution_id not in server.dispatcher.children(), timeout=20)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    done = await server.get(execution_id)
    assert done.status.phase == P.PHASE_CANCELLED  # not turned into a failure
    tokens = server.dispatcher.tokens
    assert tokens is not None and len(tokens) == 0


async def test_behind_tls_children_reach_the_server_on_a_loopback_port_of_their_own(
    tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    backend = LocalBackend(f"sqlite:///{tmp_path / 'tls.db'}", home=tmp_path, master_key=os.urandom(32))
    dispatcher = ChildDispatcher(backend)
    ready = asyncio.Event()
    bound: list[str] = []
    task = asyncio.create_task(
        serve(
            backend,
            "127.0.0.1:0",
            home=tmp_path,
            tls_cert=cert,
            tls_key=key,
            ready=ready,
            on_ready=bound.append,
            dispatcher=dispatcher,
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    channel = grpc.aio.secure_channel(
        bound[0], grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    )
    server = Server(channel, admin_token_path(tmp_path).read_text().strip(), backend, dispatcher)
    try:
        await server.apply(SET)
        done = await server.phase(await server.run("flow"), P.PHASE_SUCCEEDED, P.PHASE_FAILED)
        assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
        assert dispatcher.endpoint.startswith("grpc://127.0.0.1:")  # plaintext, loopback only
        assert dispatcher.endpoint != f"grpc://{bound[0]}"  # not the TLS port
    finally:
        await channel.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.close()


async def test_a_graceful_shutdown_lets_a_running_child_finish_through_the_server(start: Start) -> None:
    server = await start(grace=30.0)
    await server.apply(SLOW)
    execution_id = await server.run("slow")
    await server.until(
        execution_id, lambda e: e.status.phase == P.PHASE_RUNNING and bool(e.status.checkpoint)
    )
    assert server.task is not None
    server.task.cancel()  # SIGTERM while the child is inside its 2 s wait
    with pytest.raises(asyncio.CancelledError):
        await server.task
    done = await server.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status  # it reported to the server until the end
    assert json_format.MessageToDict(done.status.output) == {"a": 1, "b": 2}
