"""Executions created through the server are run by the runners (Lite hosts) in the background."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from stigmer.backend.local import LocalBackend
from stigmer.backend.local._server import serve
from stigmer.backend.local._server_dispatch import InlineDispatcher, runner_name
from stigmer.backend.local._tokens import admin_token_path
from stigmer.core import Backend, PluginNotFound
from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2, resource_pb2, workflow_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc

P = execution_pb2


class ScriptedRunner:
    """A runner that asks for approval on its first run and finishes on the next."""

    def __init__(self) -> None:
        self.calls: list[tuple[Backend, str]] = []
        self.fail_with: Exception | None = None

    async def execute(self, backend: Backend, execution_id: str) -> execution_pb2.Execution:
        self.calls.append((backend, execution_id))
        if self.fail_with is not None:
            await backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=P.PHASE_RUNNING)
            )
            raise self.fail_with
        if len(self.calls) == 1:
            await backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=P.PHASE_RUNNING)
            )
            return await backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(
                    execution_id=execution_id,
                    phase=P.PHASE_WAITING_APPROVAL,
                    pending_approval=P.ApprovalRequest(id="call-1", tool="create_issue"),
                )
            )
        return await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=P.PHASE_SUCCEEDED)
        )


class Harness:
    def __init__(self, address: str, token: str, backend: LocalBackend) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = svc_grpc.BackendServiceStub(self.channel)
        self.meta = (("authorization", f"Bearer {token}"),)
        self.backend = backend

    async def create(self, kind: str) -> str:
        if kind == "Agent":
            resource = resource_pb2.Resource(
                agent=agent_pb2.Agent(
                    api_version="stigmer.ai/v1",
                    kind="Agent",
                    metadata=meta_pb2.Metadata(name="bot"),
                    spec=agent_pb2.AgentSpec(
                        instructions="hi", model=agent_pb2.ModelConfig(provider="openai", name="m")
                    ),
                )
            )
        else:
            doc = resource_pb2.Resource(
                workflow=workflow_pb2.Workflow(
                    api_version="stigmer.ai/v1", kind="Workflow", metadata=meta_pb2.Metadata(name="flow")
                )
            )
            doc.workflow.spec.update(
                {
                    "document": {"dsl": "1.0.0", "namespace": "t", "name": "flow", "version": "1.0.0"},
                    "do": [{"a": {"set": {"x": 1}}}],
                }
            )
            resource = doc
        await self.stub.Apply(svc.ApplyRequest(resource=resource), metadata=self.meta)
        name = "bot" if kind == "Agent" else "flow"
        created = await self.stub.CreateExecution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind=kind, name=name), message="hi")
            ),
            metadata=self.meta,
        )
        return str(created.metadata.id)

    async def wait_phase(self, execution_id: str, *phases: int) -> execution_pb2.Execution:
        for _ in range(200):
            got = await self.stub.GetExecution(svc.GetExecutionRequest(id=execution_id), metadata=self.meta)
            if got.status.phase in phases:
                return got  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)
        raise AssertionError(f"execution {execution_id} never reached {phases}: {got.status}")


@pytest_asyncio.fixture
async def make(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[tuple[asyncio.Task[None], Harness]] = []
    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=os.urandom(32))

    async def factory(load: Any) -> Harness:
        ready = asyncio.Event()
        bound: list[str] = []
        task = asyncio.create_task(
            serve(
                backend,
                "127.0.0.1:0",
                home=tmp_path,
                ready=ready,
                on_ready=bound.append,
                dispatcher=InlineDispatcher(backend, load=load),
            )
        )
        await asyncio.wait_for(ready.wait(), 30)
        harness = Harness(bound[0], admin_token_path(tmp_path).read_text().strip(), backend)
        started.append((task, harness))
        return harness

    yield factory
    for task, harness in started:
        await harness.channel.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await backend.close()


def test_runner_name_by_kind() -> None:
    assert runner_name("WorkflowExecution") == "workflow"
    assert runner_name("AgentExecution") == "agent"


async def test_created_execution_is_run_and_resumed_after_approval(make: Any) -> None:
    runner = ScriptedRunner()
    asked: list[str] = []

    def load(name: str) -> ScriptedRunner:
        asked.append(name)
        return runner

    h = await make(load)
    execution_id = await h.create("Agent")
    waiting = await h.wait_phase(execution_id, P.PHASE_WAITING_APPROVAL)
    assert waiting.status.pending_approval.tool == "create_issue"
    assert asked == ["agent"]
    assert runner.calls[0] == (h.backend, execution_id)
    approved = await h.stub.SubmitApproval(
        svc.SubmitApprovalRequest(execution_id=execution_id, approval_id="call-1", approved=True),
        metadata=h.meta,
    )
    assert approved.status.phase == P.PHASE_RUNNING
    done = await h.wait_phase(execution_id, P.PHASE_SUCCEEDED)
    assert done.status.phase == P.PHASE_SUCCEEDED
    assert [c[1] for c in runner.calls] == [execution_id, execution_id]


async def test_an_execution_the_caller_dispatches_is_left_to_the_caller(make: Any) -> None:
    runner = ScriptedRunner()
    h = await make(lambda name: runner)
    dispatched = await h.create("Workflow")  # the server runs this one
    await h.wait_phase(dispatched, P.PHASE_WAITING_APPROVAL)
    created = await h.stub.CreateExecution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="flow")),
            dispatch_by_caller=True,
        ),
        metadata=h.meta,
    )
    await asyncio.sleep(0.5)
    again = await h.stub.GetExecution(svc.GetExecutionRequest(id=created.metadata.id), metadata=h.meta)
    assert again.status.phase == P.PHASE_PENDING
    assert [call[1] for call in runner.calls] == [dispatched]


async def test_missing_runner_fails_the_execution_naming_the_package(make: Any) -> None:
    def load(name: str) -> Any:
        raise PluginNotFound(
            f"no '{name}' plugin in entry-point group 'stigmer.runners' (installed: none); "
            f"install it with: pip install stigmer-runner-{name}"
        )

    h = await make(load)
    execution_id = await h.create("Workflow")
    failed = await h.wait_phase(execution_id, P.PHASE_FAILED)
    assert failed.kind == "WorkflowExecution"
    assert failed.status.error.title == "runner not installed"
    assert "pip install stigmer-runner-workflow" in failed.status.error.detail


async def test_crashing_runner_fails_the_execution_without_its_message(make: Any) -> None:
    runner = ScriptedRunner()
    runner.fail_with = RuntimeError("the value was hunter2")
    h = await make(lambda name: runner)
    execution_id = await h.create("Agent")
    failed = await h.wait_phase(execution_id, P.PHASE_FAILED)
    assert "RuntimeError" in failed.status.error.detail
    assert "hunter2" not in failed.status.error.detail
    # The server keeps serving.
    again = await h.stub.GetExecution(svc.GetExecutionRequest(id=execution_id), metadata=h.meta)
    assert again.status.phase == P.PHASE_FAILED


async def test_failed_create_dispatches_nothing(make: Any) -> None:
    runner = ScriptedRunner()
    h = await make(lambda name: runner)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await h.stub.CreateExecution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="absent"))
            ),
            metadata=h.meta,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(0.1)
    assert runner.calls == []


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphaned_runner_identities() -> None:
    import socket

    from stigmer.backend.local._server_dispatch import orphaned

    host, gone = socket.gethostname(), dead_pid()
    assert orphaned(f"{host}:{gone}:workflow")
    assert orphaned(f"agent-runner@{host}:{gone}")
    assert not orphaned(f"{host}:{os.getppid()}:workflow")  # alive
    assert not orphaned(f"{host}:{os.getpid()}:workflow")  # this process
    assert not orphaned(f"elsewhere:{gone}:workflow")  # another machine: cannot tell
    assert not orphaned("temporal:stigmer-workflows")
    assert not orphaned("")


async def test_recover_resumes_only_executions_of_dead_local_processes(tmp_path: Path) -> None:
    import socket

    backend = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=os.urandom(32))
    agent = resource_pb2.Resource(
        agent=agent_pb2.Agent(
            api_version="stigmer.ai/v1",
            kind="Agent",
            metadata=meta_pb2.Metadata(name="bot"),
            spec=agent_pb2.AgentSpec(
                instructions="hi", model=agent_pb2.ModelConfig(provider="openai", name="m")
            ),
        )
    )
    await backend.apply(svc.ApplyRequest(resource=agent))
    ids = {}
    for label, runner in (
        ("dead", f"{socket.gethostname()}:{dead_pid()}:agent"),
        ("alive", f"{socket.gethostname()}:{os.getppid()}:agent"),
    ):
        created = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
            )
        )
        await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=created.metadata.id, phase=P.PHASE_RUNNING, runner=runner
            )
        )
        ids[label] = created.metadata.id
    runner = ScriptedRunner()
    runner.calls.append((backend, "earlier run"))  # so the scripted runner finishes at once
    dispatcher = InlineDispatcher(backend, load=lambda name: runner)
    assert await dispatcher.recover() == [ids["dead"]]
    await dispatcher.shutdown(10)
    assert [c[1] for c in runner.calls[1:]] == [ids["dead"]]
    done = await backend.get_execution(svc.GetExecutionRequest(id=ids["dead"]))
    assert done.status.phase == P.PHASE_SUCCEEDED
    await backend.close()
