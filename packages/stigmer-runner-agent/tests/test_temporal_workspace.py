"""The workspace on Temporal: each built-in tool call is its own activity, and the workspace
survives the worker — a session's second turn, on another worker with another disk (the first one
stopped), reads the file the first turn wrote; a tool call on a worker that never held the folder
restores it from the last save."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Backend, read_tree
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.runner.agent.temporal._activities import AgentActivities
from stigmer.runner.agent.temporal._worker import agent_worker
from stigmer.runner.agent.temporal._workflow import AGENT_WORKFLOW
from stigmer.testing import ScriptedLLM, TemporalServer, call, text
from stigmer.testing.agents import apply, data, events, openai_agent, start
from temporalio.client import Client

P = execution_pb2
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def temporal_address(temporal_server: TemporalServer) -> str:
    return temporal_server.address


def _activities(backend: Backend, home: Path) -> AgentActivities:
    """A worker's activities with a disk of its own (``STIGMER_HOME``): another machine."""
    return AgentActivities(backend, AgentRunner(environ={**os.environ, "STIGMER_HOME": str(home)}))


async def _run_on(client: Client, backend: Backend, home: Path, eid: str) -> dict[str, Any]:
    queue = f"agents-{uuid.uuid4().hex[:8]}"
    async with agent_worker(client, queue, backend, activities=_activities(backend, home)):
        handle = await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        result: dict[str, Any] = await asyncio.wait_for(handle.result(), 60)
        history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    result["scheduled"] = scheduled
    return result


async def test_two_turns_on_two_workers_share_the_workspace(
    backend: Backend, llm: ScriptedLLM, temporal_address: str, tmp_path: Path
) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [files, todos]\n"))
    made = await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: s}\nspec: {agent: {kind: Agent, name: bot}}\n",
    )
    session = made[0].session.metadata.id
    client = await Client.connect(temporal_address)

    llm.add(
        call("write_file", path="notes.txt", content="from turn one\n"),
        call("write_todos", todos=[{"content": "write notes", "status": "completed"}]),
        text("Written."),
    )
    first = await start(backend, "bot", "write notes", session_id=session)
    one = await _run_on(client, backend, tmp_path / "worker-a", first)
    assert one["phase"] == "PHASE_SUCCEEDED"
    # Each built-in tool call was an activity of its own.
    assert one["scheduled"].count("stigmer.agent.tool") == 2
    done = await backend.get_execution(svc.GetExecutionRequest(id=first))
    assert [(t.content, t.status) for t in done.status.todos] == [("write notes", "completed")]
    assert not (tmp_path / "worker-a" / "workspaces" / first).exists()  # cleaned up on finish

    # Turn two on another worker (the first is gone), with a disk that never held the folder.
    llm.add(call("read_file", path="notes.txt"), text("It says: from turn one."))
    second = await start(backend, "bot", "what do the notes say?", session_id=session)
    two = await _run_on(client, backend, tmp_path / "worker-b", second)
    assert two["phase"] == "PHASE_SUCCEEDED"
    results = [data(e)["result"] for e in await events(backend, second) if e.type == "tool.result"]
    assert results == ["from turn one\n"]
    final = await backend.get_execution(svc.GetExecutionRequest(id=second))
    blob = await backend.get_artifact(svc.GetArtifactRequest(key=final.status.workspace.artifact))
    assert set(read_tree(blob.content)) == {"notes.txt"}


async def test_a_tool_call_on_a_worker_without_the_folder_restores_it(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """What a worker that takes over mid-turn does: the steps of one execution on two disks."""
    await apply(backend, openai_agent(llm, extra="  tools: [files, {name: shell, autoApprove: true}]\n"))
    eid = await start(backend, "bot", "go")
    a = _activities(backend, tmp_path / "a").steps
    b = _activities(backend, tmp_path / "b").steps
    plan = await a.start(eid)
    tools = {t["definition"]["name"]: t["toolset"] for t in plan["tools"]}
    assert tools["run_command"] == "builtin:shell" and tools["write_file"] == "builtin:files"
    await a.call_tool(eid, {"toolset": "builtin:files", "name": "write_file", "callId": "c1",
                            "args": {"path": "a.txt", "content": "one\n"}})  # fmt: skip
    # Worker b never saw this execution: its call finds the file a wrote.
    out = await b.call_tool(eid, {"toolset": "builtin:shell", "name": "run_command", "callId": "c2",
                                  "args": {"command": "cat a.txt; echo two >> a.txt"}})  # fmt: skip
    assert out["return"] == "exit code 0\none"
    # Back on worker a, whose folder is stale now: it is restored from b's save.
    again = await a.call_tool(eid, {"toolset": "builtin:files", "name": "read_file", "callId": "c3",
                                    "args": {"path": "a.txt"}})  # fmt: skip
    assert again["return"] == "one\ntwo\n"


async def test_a_call_that_died_half_way_runs_again_on_the_files_it_started_from(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """A worker killed during a shell command, restarted on the same disk: the retried call finds
    the workspace as it was saved before the call, not half-changed."""
    await apply(backend, openai_agent(llm, extra="  tools: [files, {name: shell, autoApprove: true}]\n"))
    eid = await start(backend, "bot", "go")
    steps = _activities(backend, tmp_path / "a").steps
    await steps.start(eid)
    await steps.call_tool(eid, {"toolset": "builtin:files", "name": "write_file", "callId": "c1",
                                "args": {"path": "count.txt", "content": "1\n"}})  # fmt: skip
    shell = {"toolset": "builtin:shell", "name": "run_command", "callId": "c2",
             "args": {"command": "echo 2 >> count.txt; sleep 31.7"}}  # fmt: skip
    first = asyncio.ensure_future(steps.call_tool(eid, shell))
    folder = tmp_path / "a" / "workspaces" / eid
    for _ in range(100):  # the command has appended its line and sleeps: the worker dies now
        await asyncio.sleep(0.05)
        if (folder / "count.txt").read_text() == "1\n2\n":
            break
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (folder / "count.txt").read_text() == "1\n2\n"  # what the killed call left behind
    await asyncio.sleep(0.2)
    assert "sleep 31.7" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    retry = dict(shell, args={"command": "echo 2 >> count.txt; cat count.txt"})
    again = await _activities(backend, tmp_path / "a").steps.call_tool(eid, retry, report_call=False)
    assert again["return"] == "exit code 0\n1\n2"  # the call ran once on the saved files


async def test_an_image_attachment_goes_to_the_model_on_temporal_but_not_into_the_history(
    backend: Backend, llm: ScriptedLLM, temporal_address: str, tmp_path: Path
) -> None:
    """The model activity adds the run's images to its prompt on every request; the workflow's
    history carries the text only."""
    png = b"\x89PNG\r\n\x1a\n" + b"IMAGEBYTES" * 8
    meta = await backend.put_artifact(svc.PutArtifactRequest(content=png, media_type="image/png"))
    await apply(backend, openai_agent(llm, extra="  tools: [files]\n"))
    spec = execution_pb2.ExecutionSpec(message="what is in the picture?")
    spec.target.kind, spec.target.name = "Agent", "bot"
    spec.attachments.add(name="shot.png", artifact=meta.key, media_type="image/png", size=len(png))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    llm.add(call("list_files"), text("A picture."))
    client = await Client.connect(temporal_address)
    done = await _run_on(client, backend, tmp_path / "worker", created.metadata.id)
    assert done["phase"] == "PHASE_SUCCEEDED", done
    for request in llm.requests[-2:]:  # both requests of the run carry the image
        user = next(m for m in request["messages"] if m["role"] == "user")
        assert user["content"][0] == {"type": "text", "text": "what is in the picture?"}
        assert user["content"][1]["type"] == "image_url"
    history = await client.get_workflow_handle(created.metadata.id).fetch_history()
    assert base64.b64encode(png).decode() not in history.to_json()
