"""Retry of a failed agent run on Temporal (issue 21): a new execution (``resumedFrom``) that keeps
the conversation of the old run's completed turns and starts its failed turn over (the calls it
paused on are asked for again: they will run again); no model request of a completed turn is sent
again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent.temporal._host import RETRY_PATCH
from stigmer.runner.agent.temporal._worker import agent_worker
from stigmer.runner.agent.temporal._workflow import AGENT_WORKFLOW, APPROVAL_SIGNAL
from stigmer.testing import ScriptedLLM, TemporalServer, call, error, history_patches, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server, summary
from temporalio.client import Client, WorkflowFailureError

P = execution_pb2
pytestmark = pytest.mark.timeout(120)
HISTORIES = Path(__file__).parent / "histories"
SETTLED = (P.PHASE_SUCCEEDED, P.PHASE_FAILED, P.PHASE_CANCELLED, P.PHASE_WAITING_APPROVAL)


async def _settled(backend: Backend, eid: str, timeout: float = 40) -> execution_pb2.Execution:
    """The execution once it ended or waits for an approval."""
    deadline = time.monotonic() + timeout
    while True:
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        if current.status.phase in SETTLED:
            return current
        assert time.monotonic() < deadline, f"{eid} stayed {P.Phase.Name(current.status.phase)}"
        await asyncio.sleep(0.1)


async def _retry_of(backend: Backend, failed: execution_pb2.Execution) -> str:
    """What ``stigmer execution retry`` creates: the same spec, linked by ``resumedFrom``."""
    spec = execution_pb2.ExecutionSpec()
    spec.CopyFrom(failed.spec)
    spec.resumed_from = failed.metadata.id
    del spec.secret_refs[:]
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    return str(created.metadata.id)


async def _approve(backend: Backend, handle: Any, eid: str, *, approved: bool = True) -> None:
    """Wait for the execution's approval request and answer it (and signal the workflow)."""
    waiting = await _settled(backend, eid)
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL, P.Phase.Name(waiting.status.phase)
    await backend.submit_approval(
        svc.SubmitApprovalRequest(
            execution_id=eid,
            approval_id=waiting.status.pending_approval.id,
            approved=approved,
            reason="" if approved else "not twice",
        )
    )
    await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})


async def _run(client: Client, queue: str, eid: str) -> Any:
    handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
    return handle


@pytest.fixture
async def temporal(temporal_server: TemporalServer) -> tuple[Client, str]:
    client = await Client.connect(temporal_server.address)
    return client, f"agents-{uuid.uuid4().hex[:8]}"


async def test_a_retry_keeps_the_completed_turn_and_starts_the_failed_one_over(
    backend: Backend, llm: ScriptedLLM, temporal: tuple[Client, str], tmp_path: Path
) -> None:
    # Turn 1: the model asks for a call that needs approval. Turn 2 (after the approval): the tool
    # runs, then the model request fails (a 400 is not retried).
    llm.add(call("delete_item", item="42"), error(400, "bad request: model unloaded"))
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    client, queue = temporal
    eid = await start(backend, "bot", "delete item 42")
    async with agent_worker(client, queue, backend):
        handle = await _run(client, queue, eid)
        await _approve(backend, handle, eid)
        with contextlib.suppress(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
        failed = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert failed.status.phase == P.PHASE_FAILED
        assert "model unloaded" in failed.status.error.detail
        assert len(llm.requests) == 2

        # A retry that fails in the same turn, and a retry of that retry. Each asks for the
        # approval again (the call runs again), and sends no model request of turn 1.
        llm.replies[:] = [error(400, "bad request: model still unloaded")]
        again = await _retry_of(backend, failed)
        await _approve(backend, await _run(client, queue, again), again)
        failed_again = await _settled(backend, again)
        assert failed_again.status.phase == P.PHASE_FAILED, P.Phase.Name(failed_again.status.phase)
        assert "still unloaded" in failed_again.status.error.detail
        assert len(llm.requests) == 3

        llm.replies[:] = [text("Item 42 is gone.")]
        retry = await _retry_of(backend, failed_again)
        handle = await _run(client, queue, retry)
        await _approve(backend, handle, retry)
        done = await _settled(backend, retry)
        assert done.status.phase == P.PHASE_SUCCEEDED, (P.Phase.Name(done.status.phase), done.status.error)
        assert await asyncio.wait_for(handle.result(), 30) == {"phase": "PHASE_SUCCEEDED"}
        history = await handle.fetch_history()
    kept = HISTORIES if os.environ.get("STIGMER_RECORD_HISTORIES") else tmp_path  # replayed by
    (kept / "retry-after-last-turn.json").write_text(history.to_json())  # test_replay_histories.py
    assert RETRY_PATCH in history_patches(kept / "retry-after-last-turn.json")
    assert from_value(done.status.output) == "Item 42 is gone."
    # Only the failed turn's model request was sent again (once by each retry): not turn 1's.
    assert len(llm.requests) == 4
    last = llm.requests[-1]["messages"]
    assert last != llm.requests[0]["messages"]  # not turn 1's request again
    assert [m["content"] for m in last if m["role"] == "user"] == ["delete item 42"]
    assert [m["content"] for m in last if m["role"] == "tool"] == ["deleted 42"]
    log = summary(await events(backend, retry))
    assert ("tool.call", "delete_item") in log  # the failed turn started over: its call ran again
    assert done.spec.resumed_from == again and failed_again.spec.resumed_from == eid


async def test_a_retry_never_runs_a_call_on_the_old_runs_approval(
    backend: Backend, llm: ScriptedLLM, temporal: tuple[Client, str]
) -> None:
    """The approval given on the old run approved one run of the call: the retry asks again, and
    a refusal there means the call does not run again (the model is told)."""
    llm.add(call("delete_item", item="9"), error(400, "bad request: model unloaded"))
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    client, queue = temporal
    eid = await start(backend, "bot", "delete item 9")
    async with agent_worker(client, queue, backend):
        handle = await _run(client, queue, eid)
        await _approve(backend, handle, eid)
        failed = await _settled(backend, eid)
        assert failed.status.phase == P.PHASE_FAILED
        llm.replies[:] = [text("Left item 9 alone.")]
        retry = await _retry_of(backend, failed)
        handle = await _run(client, queue, retry)
        await _approve(backend, handle, retry, approved=False)
        done = await _settled(backend, retry)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert ("tool.call", "delete_item") not in summary(await events(backend, retry))
    results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert results == ["The user refused this tool call: not twice"]


async def test_a_retry_of_a_first_turn_keeps_the_sessions_earlier_turns(
    backend: Backend, llm: ScriptedLLM, temporal: tuple[Client, str]
) -> None:
    """A session's first run succeeded; its second failed in its only turn: the retry sends the
    conversation of the first run with the second message, and nothing of the first run again."""
    llm.add(text("Noted: blue."), error(400, "bad request: model unloaded"))
    await apply(backend, openai_agent(llm))
    (session,) = await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: chat}\nspec: {agent: {name: bot}}\n",
    )
    sid = session.session.metadata.id
    client, queue = temporal
    async with agent_worker(client, queue, backend):
        first = await start(backend, "bot", "my colour is blue", session_id=sid)
        await _run(client, queue, first)
        assert (await _settled(backend, first)).status.phase == P.PHASE_SUCCEEDED
        second = await start(backend, "bot", "what is my colour?", session_id=sid)
        await _run(client, queue, second)
        failed = await _settled(backend, second)
        assert failed.status.phase == P.PHASE_FAILED
        assert len(llm.requests) == 2

        llm.replies[:] = [text("Blue.")]
        retry = await _retry_of(backend, failed)
        await _run(client, queue, retry)
        done = await _settled(backend, retry)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "Blue."
    assert len(llm.requests) == 3
    users = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["my colour is blue", "what is my colour?"]


async def test_a_retry_of_a_run_cancelled_while_waiting_for_an_approval_asks_again(
    backend: Backend, llm: ScriptedLLM, temporal: tuple[Client, str]
) -> None:
    """No decision was given: the retry keeps the conversation (no model request again) and asks
    for the call's approval again; approved, the call runs and the model answers."""
    llm.add(call("delete_item", item="7"))
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    client, queue = temporal
    eid = await start(backend, "bot", "delete item 7")
    async with agent_worker(client, queue, backend):
        handle = await _run(client, queue, eid)
        assert (await _settled(backend, eid)).status.phase == P.PHASE_WAITING_APPROVAL
        await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="later"))
        await handle.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(handle.result(), 30)
        cancelled = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert cancelled.status.phase == P.PHASE_CANCELLED

        llm.replies[:] = [text("Item 7 is gone.")]
        retry = await _retry_of(backend, cancelled)
        handle = await _run(client, queue, retry)
        waiting = await _settled(backend, retry)
        assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
        assert waiting.status.pending_approval.tool == "delete_item"
        assert len(llm.requests) == 1  # the conversation was kept: no model request yet
        await backend.submit_approval(
            svc.SubmitApprovalRequest(
                execution_id=retry, approval_id=waiting.status.pending_approval.id, approved=True
            )
        )
        await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})
        done = await _settled(backend, retry)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert len(llm.requests) == 2
    assert [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"] == ["deleted 7"]
