"""Approvals: a tool in ``requireApproval`` pauses the run in WAITING_APPROVAL; after
SubmitApproval a new runner resumes it from the checkpoint."""

from __future__ import annotations

import json

from google.protobuf import json_format
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, events, openai_agent, sequences_ok, start, stdio_server, summary

P = execution_pb2
USAGE = "  mcpServers: [{name: items, tools: [delete_item, add], requireApproval: [delete_item]}]\n"


async def _pause(backend: Backend, llm: ScriptedLLM) -> tuple[str, execution_pb2.Execution]:
    await apply(backend, stdio_server("items"))
    await apply(backend, openai_agent(llm, extra=USAGE))
    eid = await start(backend, "bot", "delete item 42")
    waiting = await AgentRunner().execute(backend, eid)
    return eid, waiting


async def test_approved_call_runs_after_resume(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("delete_item", item="42"), text("Item 42 is gone."))
    eid, waiting = await _pause(backend, llm)

    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
    pending = waiting.status.pending_approval
    assert pending.tool == "delete_item"
    assert pending.server == "items"
    assert json_format.MessageToDict(pending.arguments) == {"item": "42"}
    assert pending.id
    assert len(llm.requests) == 1
    checkpoint = json.loads(waiting.status.checkpoint)
    assert checkpoint["pending"][0]["id"] == pending.id

    await backend.submit_approval(
        svc.SubmitApprovalRequest(execution_id=eid, approval_id=pending.id, approved=True)
    )
    done = await AgentRunner().execute(backend, eid)  # a new runner instance: state comes from the backend

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "Item 42 is gone."
    log = await events(backend, eid)
    assert sequences_ok(log)
    assert summary(log) == [
        ("message.user", "delete item 42"),
        ("phase", "RUNNING"),
        ("tool.call", "delete_item"),
        ("usage",),
        ("approval.requested", "delete_item"),
        ("phase", "WAITING_APPROVAL"),
        ("approval.resolved", "delete_item"),
        ("phase", "RUNNING"),
        ("tool.result", "delete_item"),
        ("text.delta", "Item 42 is gone."),
        ("message.assistant", "Item 42 is gone."),
        ("usage",),
        ("phase", "SUCCEEDED"),
    ]
    result = next(e for e in log if e.type == "tool.result")
    assert json_format.MessageToDict(result.data)["result"] == "deleted 42"
    # The tool's result reached the model on resume.
    assert {"role": "tool", "tool_call_id": pending.id, "content": "deleted 42"} in llm.requests[1][
        "messages"
    ]
    assert done.status.usage.requests == 2


async def test_rejected_call_is_refused_with_the_reason(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("delete_item", item="42"), text("Understood, I did not delete it."))
    eid, waiting = await _pause(backend, llm)
    pending = waiting.status.pending_approval

    await backend.submit_approval(
        svc.SubmitApprovalRequest(
            execution_id=eid, approval_id=pending.id, approved=False, reason="item 42 is needed"
        )
    )
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    tool_messages = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1
    assert tool_messages[0]["tool_call_id"] == pending.id
    assert "refused" in tool_messages[0]["content"]
    assert "item 42 is needed" in tool_messages[0]["content"]
    log = await events(backend, eid)
    result = next(e for e in log if e.type == "tool.result")
    assert "item 42 is needed" in json_format.MessageToDict(result.data)["result"]
    assert [e.type for e in log].count("tool.call") == 1


async def test_execute_while_waiting_does_nothing(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("delete_item", item="1"))
    eid, waiting = await _pause(backend, llm)
    again = await AgentRunner().execute(backend, eid)
    assert again.status.phase == P.PHASE_WAITING_APPROVAL
    assert again.status.last_sequence == waiting.status.last_sequence
    assert len(llm.requests) == 1


async def test_two_approvals_in_one_response_are_asked_one_at_a_time(
    backend: Backend, llm: ScriptedLLM
) -> None:
    from stigmer.testing import Reply

    llm.add(
        Reply(tool_calls=[("delete_item", {"item": "a"}), ("delete_item", {"item": "b"})]),
        text("Both handled."),
    )
    eid, waiting = await _pause(backend, llm)
    first = waiting.status.pending_approval
    assert json_format.MessageToDict(first.arguments) == {"item": "a"}

    await backend.submit_approval(
        svc.SubmitApprovalRequest(execution_id=eid, approval_id=first.id, approved=True)
    )
    second_wait = await AgentRunner().execute(backend, eid)
    assert second_wait.status.phase == P.PHASE_WAITING_APPROVAL
    second = second_wait.status.pending_approval
    assert second.id != first.id
    assert json_format.MessageToDict(second.arguments) == {"item": "b"}
    assert len(llm.requests) == 1  # no model call until every decision is in

    await backend.submit_approval(
        svc.SubmitApprovalRequest(execution_id=eid, approval_id=second.id, approved=False, reason="keep b")
    )
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    tools = {m["tool_call_id"]: m["content"] for m in llm.requests[1]["messages"] if m["role"] == "tool"}
    assert tools[first.id] == "deleted a"
    assert "keep b" in tools[second.id]


async def test_killed_run_continues_after_its_last_tool_results(backend: Backend, llm: ScriptedLLM) -> None:
    import asyncio
    import time

    llm.add(call("add", a=20, b=22), call("wait", seconds=30), text("The answer is 42."))
    await apply(backend, stdio_server("items"))
    await apply(
        backend, openai_agent(llm, extra="  mcpServers: [{name: items, tools: [add, delete_item, wait]}]\n")
    )
    eid = await start(backend, "bot", "add 20 and 22")
    # Stop the first runner once `add` ran and its result was saved (it then waits in a slow tool).
    first = asyncio.ensure_future(AgentRunner().execute(backend, eid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        if '"inflight":true' in current.status.checkpoint:
            break
        await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    stopped = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert stopped.status.phase == P.PHASE_RUNNING
    assert json.loads(stopped.status.checkpoint)["inflight"] is True

    llm.replies[:] = [text("The answer is 42.")]
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    log = summary(await events(backend, eid))
    assert log.count(("message.user", "add 20 and 22")) == 1
    assert log.count(("tool.call", "add")) == 1  # not called again
    # The continued run sent the saved conversation, ending with the tool result.
    last = llm.requests[-1]["messages"]
    assert last[-1]["role"] == "tool" and last[-1]["content"] == "42"
