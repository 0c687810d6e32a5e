"""Two MCP servers offering the same tool name: each is offered as ``<server>_<tool>``, calls reach
the right server, and approvals still name the server's own tool in ``requireApproval``."""

from __future__ import annotations

from google.protobuf import json_format
from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server, summary

P = execution_pb2
TWO = (
    "  mcpServers:\n"
    "    - {name: left, tools: [echo_env, add, pid]}\n"
    "    - {name: right, tools: [echo_env, add, delete_item], requireApproval: [delete_item]}\n"
)


async def _servers(backend: Backend, llm: ScriptedLLM, extra: str = TWO) -> None:
    await apply(backend, stdio_server("left", env={"WHO": "left"}))
    await apply(backend, stdio_server("right", env={"WHO": "right"}))
    await apply(backend, openai_agent(llm, extra=extra))


async def test_a_shared_tool_name_is_offered_once_per_server(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(
        call("left_echo_env", name="WHO"),
        call("right_echo_env", name="WHO"),
        call("pid"),
        text("left, then right"),
    )
    await _servers(backend, llm)
    eid = await start(backend, "bot", "who are you?")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    offered = sorted(t["function"]["name"] for t in llm.requests[0]["tools"])
    # Names only one server offers are unchanged; shared ones are prefixed with their server.
    assert offered == ["delete_item", "left_add", "left_echo_env", "pid", "right_add", "right_echo_env"]
    log = await events(backend, eid)
    results = [json_format.MessageToDict(e.data)["result"] for e in log if e.type == "tool.result"]
    assert results[:2] == ["WHO=left", "WHO=right"]  # each call reached its own server
    assert ("tool.call", "left_echo_env") in summary(log) and ("tool.call", "pid") in summary(log)


async def test_approval_of_a_shared_tool_name(backend: Backend, llm: ScriptedLLM) -> None:
    extra = (
        "  mcpServers:\n"
        "    - {name: left, tools: [delete_item]}\n"
        "    - {name: right, tools: [delete_item], requireApproval: [delete_item]}\n"
    )
    llm.add(call("left_delete_item", item="1"), call("right_delete_item", item="2"), text("both gone"))
    await _servers(backend, llm, extra)
    eid = await start(backend, "bot", "delete 1 and 2")
    waiting = await AgentRunner().execute(backend, eid)

    # The left server's tool needs no approval and ran; the right one's waits.
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL, waiting.status.error
    pending = waiting.status.pending_approval
    assert (pending.tool, pending.server) == ("right_delete_item", "right")
    assert json_format.MessageToDict(pending.arguments) == {"item": "2"}
    await backend.submit_approval(
        svc.SubmitApprovalRequest(execution_id=eid, approval_id=pending.id, approved=True)
    )
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    log = await events(backend, eid)
    results = [json_format.MessageToDict(e.data)["result"] for e in log if e.type == "tool.result"]
    assert results == ["deleted 1", "deleted 2"]
