"""A retry on Temporal (issue 21) continues an agent run after its last completed turn and starts
the failed turn over, so the calls that turn paused on would run again. An approval given on the
old run approved one run of a call: whoever retries must not get the call run again on it. The
retry asks again, and a refusal keeps the call from running a second time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent.temporal._worker import agent_worker
from stigmer.runner.agent.temporal._workflow import AGENT_WORKFLOW, APPROVAL_SIGNAL
from stigmer.testing import ScriptedLLM, TemporalServer, call, error, text
from stigmer.testing.agents import KEY, apply, events, openai_agent, start, stdio_server, summary
from temporalio.client import Client

P = execution_pb2
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalBackend]:
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    yield store
    await store.close()


async def _phase(backend: LocalBackend, eid: str, phases: set[int]) -> execution_pb2.Execution:
    deadline = time.monotonic() + 40
    while True:
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        if current.status.phase in phases:
            return current
        assert time.monotonic() < deadline, P.Phase.Name(current.status.phase)
        await asyncio.sleep(0.1)


async def test_a_retry_does_not_run_a_call_on_the_approval_of_the_old_run(
    backend: LocalBackend, temporal_server: TemporalServer
) -> None:
    with ScriptedLLM() as llm:
        llm.add(call("delete_item", item="1"), error(400, "bad request: model unloaded"))
        await apply(backend, stdio_server("items"))
        await apply(
            backend,
            openai_agent(
                llm,
                extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n",
            ),
        )
        client = await Client.connect(temporal_server.address)
        queue = f"attack-{uuid.uuid4().hex[:8]}"
        eid = await start(backend, "bot", "delete item 1")
        async with agent_worker(client, queue, backend):
            handle = await client.start_workflow(
                AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue
            )
            waiting = await _phase(backend, eid, {P.PHASE_WAITING_APPROVAL})
            await backend.submit_approval(  # the owner approves one deletion
                svc.SubmitApprovalRequest(
                    execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=True
                )
            )
            await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})
            failed = await _phase(backend, eid, {P.PHASE_FAILED, P.PHASE_SUCCEEDED})
            assert failed.status.phase == P.PHASE_FAILED

            # someone retries it, hoping the deletion runs again on the owner's approval
            llm.replies[:] = [text("done")]
            spec = execution_pb2.ExecutionSpec()
            spec.CopyFrom(failed.spec)
            spec.resumed_from = eid
            del spec.secret_refs[:]
            retry = (await backend.create_execution(svc.CreateExecutionRequest(spec=spec))).metadata.id
            await client.start_workflow(AGENT_WORKFLOW, {"executionId": retry}, id=retry, task_queue=queue)
            stopped = await _phase(
                backend, retry, {P.PHASE_WAITING_APPROVAL, P.PHASE_SUCCEEDED, P.PHASE_FAILED}
            )
            log = summary(await events(backend, retry))
            await backend.cancel_execution(svc.CancelExecutionRequest(id=retry, reason="attack over"))
    assert stopped.status.phase == P.PHASE_WAITING_APPROVAL  # asked again
    assert ("tool.call", "delete_item") not in log  # nothing ran on the old approval
    assert len(llm.requests) == 2  # and no model request was made for it
