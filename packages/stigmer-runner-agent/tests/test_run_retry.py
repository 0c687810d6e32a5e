"""Retry of a failed agent run (issue 21): a new execution (``resumedFrom``) that continues after
the failed run's last completed tool calls, without calling those tools again."""

from __future__ import annotations

from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, error, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server, summary

P = execution_pb2


async def test_a_retried_agent_run_continues_after_its_last_completed_tool_call(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("add", a=20, b=22), *[error(400, "bad gateway day")] * 5)
    await apply(backend, stdio_server("items"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: items, tools: [add]}]\n"))
    eid = await start(backend, "bot", "add 20 and 22")
    failed = await AgentRunner().execute(backend, eid)
    assert failed.status.phase == P.PHASE_FAILED
    assert summary(await events(backend, eid)).count(("tool.call", "add")) == 1

    llm.replies[:] = [text("The answer is 42.")]
    spec = execution_pb2.ExecutionSpec()
    spec.CopyFrom(failed.spec)
    spec.resumed_from = eid
    del spec.secret_refs[:]
    retry = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    done = await AgentRunner().execute(backend, retry.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "The answer is 42."
    log = summary(await events(backend, retry.metadata.id))
    assert ("tool.call", "add") not in log  # not called again
    last = llm.requests[-1]["messages"]
    assert last[-1]["role"] == "tool" and last[-1]["content"] == "42"
    assert [m["content"] for m in last if m["role"] == "user"] == ["add 20 and 22"]
