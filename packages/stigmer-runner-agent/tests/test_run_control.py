"""Agents under control, in Lite: limits (requests, tool calls, tokens, cost), cost per model
request, and structured output — against the scripted model stand-in and a real stdio MCP server."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, InvalidArgument, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server

P = execution_pb2
TOOLS = "  mcpServers: [{name: items, tools: [add]}]\n"


def _agent(llm: ScriptedLLM, extra: str = "", model: str = "stand-in", price: str = "") -> str:
    manifest = openai_agent(llm, extra=TOOLS + extra)
    return manifest.replace("name: stand-in,", f"name: {model},{' price: ' + price + ',' if price else ''}")


async def _run(
    backend: Backend, message: str = "add things", **spec_fields: object
) -> execution_pb2.Execution:
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message=message)
    for key, value in spec_fields.items():
        json_format.ParseDict(value, getattr(spec, key))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    return await AgentRunner().execute(backend, created.metadata.id)


async def test_a_request_limit_stops_the_run_before_the_next_request_after_the_tool_ran(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("add", a=1, b=2), call("add", a=3, b=4), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, "  limits: {maxRequests: 2}\n"))
    done = await _run(backend)

    assert done.status.phase == P.PHASE_FAILED
    detail = done.status.error.detail
    assert "max_requests = 2 model requests" in detail, detail
    assert "spent: 2 model requests, 2 tool calls" in detail, detail
    assert len(llm.requests) == 2  # the third request was never sent
    # both calls of the answered requests ran: the limit never cuts a tool call in half
    results = [e for e in await events(backend, done.metadata.id) if e.type == "tool.result"]
    assert len(results) == 2
    # what was spent is recorded, per request too
    usage = done.status.usage
    assert (usage.requests, usage.tool_calls, usage.input_tokens) == (2, 2, 22)
    assert [r.input_tokens for r in usage.by_request] == [11, 11]


async def test_a_tool_call_limit_refuses_the_call_before_it_runs(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=1, b=2), call("add", a=3, b=4), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm))
    done = await _run(backend, limits={"maxToolCalls": 1})

    assert done.status.phase == P.PHASE_FAILED
    assert "max_tool_calls = 1 tool calls" in done.status.error.detail
    results = [e for e in await events(backend, done.metadata.id) if e.type == "tool.result"]
    assert len(results) == 1  # the second call never ran
    assert done.status.usage.tool_calls == 1


async def test_the_lowest_limit_wins_and_a_token_limit_counts_the_whole_run(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("add", a=1, b=2), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, "  limits: {maxTokens: 1000}\n"))
    # the run's own limit is lower: 18 tokens per request (11 in, 7 out) -> the second is refused
    done = await _run(backend, limits={"maxTokens": 10})
    assert done.status.phase == P.PHASE_FAILED
    assert "max_tokens = 10 tokens" in done.status.error.detail, done.status.error.detail
    assert len(llm.requests) == 1
    # a higher run limit does not raise the agent's own
    llm.add(call("add", a=1, b=2), text("done"))
    await apply(backend, _agent(llm, "  limits: {maxTokens: 10}\n"))
    again = await _run(backend, limits={"maxTokens": 5000})
    assert again.status.phase == P.PHASE_FAILED and "max_tokens = 10 tokens" in again.status.error.detail


async def test_cost_comes_from_the_price_table_for_a_known_model(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=1, b=2), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, model="gpt-4o-mini"))
    done = await _run(backend)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    usage = done.status.usage
    assert not usage.cost_unknown
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
    per_request = 11 * 0.15e-6 + 7 * 0.60e-6
    assert [r.cost_usd for r in usage.by_request] == pytest.approx([per_request, per_request])
    assert usage.cost_usd == pytest.approx(2 * per_request)
    assert {r.model for r in usage.by_request} == {"gpt-4o-mini"}
    # the usage event says it too
    event = next(e for e in await events(backend, done.metadata.id) if e.type == "usage")
    assert json_format.MessageToDict(event.data)["cost_usd"] == pytest.approx(2 * per_request)


async def test_a_models_own_price_is_used_and_a_cost_limit_stops_the_run(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("add", a=1, b=2), call("add", a=3, b=4), text("done"))
    await apply(backend, stdio_server("items"))
    # $1000 per million input and output tokens: 18 tokens a request = $0.018
    price = "{inputPerMillion: 1000, outputPerMillion: 1000}"
    await apply(backend, _agent(llm, "  limits: {maxCostUsd: 0.03}\n", model="my-local-model", price=price))
    done = await _run(backend)

    assert done.status.phase == P.PHASE_FAILED
    detail = done.status.error.detail
    assert "max_cost_usd = $0.03" in detail and "$0.0360" in detail, detail
    assert len(llm.requests) == 2
    assert done.status.usage.cost_usd == pytest.approx(0.036)


async def test_a_cost_limit_on_an_unpriced_model_fails_clearly(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=1, b=2), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, "  limits: {maxCostUsd: 1}\n"))
    done = await _run(backend)
    assert done.status.phase == P.PHASE_FAILED
    assert "price of model stand-in is unknown" in done.status.error.detail
    assert done.status.usage.cost_unknown and done.status.usage.by_request[0].cost_unknown


async def test_structured_output_is_a_json_value_and_an_invalid_answer_is_sent_back(
    backend: Backend, llm: ScriptedLLM
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["city", "temperature"],
    }
    llm.add(call("final_result", city="Paris"), call("final_result", city="Paris", temperature=21.5))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, f"  outputSchema: {json.dumps(schema)}\n"))
    done = await _run(backend, message="weather?")

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == {"city": "Paris", "temperature": 21.5}
    # the model was offered the schema as its answer tool, and told what was wrong the first time
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in llm.requests[0]["tools"]}
    assert offered["final_result"]["required"] == ["city", "temperature"]
    retry = json.dumps(llm.requests[1]["messages"])
    assert "does not match the required output schema" in retry and "temperature" in retry


async def test_a_run_schema_replaces_the_agents_and_a_non_object_schema_is_unwrapped(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("final_result", result=["a", "b"]))
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, "  outputSchema: {type: object, properties: {x: {type: string}}}\n"))
    done = await _run(backend, output_schema={"type": "array", "items": {"type": "string"}})
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == ["a", "b"]


async def test_bad_limits_and_schemas_are_refused_when_applied_or_run(
    backend: Backend, llm: ScriptedLLM
) -> None:
    await apply(backend, stdio_server("items"))
    with pytest.raises(InvalidArgument, match=r"spec\.outputSchema is not a valid JSON Schema"):
        await apply(backend, _agent(llm, "  outputSchema: {type: nonsense}\n"))
    with pytest.raises(InvalidArgument, match=r"spec\.limits\.maxRequests must not be negative"):
        await apply(backend, _agent(llm, "  limits: {maxRequests: -1}\n"))
    await apply(backend, _agent(llm))
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"), message="x")
    spec.output_schema.update({"type": 5})
    with pytest.raises(InvalidArgument, match="outputSchema is not a valid JSON Schema"):
        await backend.create_execution(svc.CreateExecutionRequest(spec=spec))


async def test_usage_of_a_run_paused_for_approval_counts_against_its_limit_after_resume(
    backend: Backend, llm: ScriptedLLM
) -> None:
    """A run resumed after an approval keeps the budget it spent before the pause."""
    usage = "  mcpServers: [{name: items, tools: [delete_item, add], requireApproval: [delete_item]}]\n"
    llm.add(call("add", a=1, b=1), call("delete_item", item="42"), call("add", a=2, b=2), text("done"))
    await apply(backend, stdio_server("items"))
    await apply(backend, openai_agent(llm, extra=usage + "  limits: {maxRequests: 3}\n"))
    eid = await start(backend, "bot", "go")
    waiting = await AgentRunner().execute(backend, eid)
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
    assert waiting.status.usage.requests == 2
    pending = waiting.status.pending_approval
    await backend.submit_approval(
        svc.SubmitApprovalRequest(execution_id=eid, approval_id=pending.id, approved=True)
    )
    done = await AgentRunner().execute(backend, eid)
    # request 3 was allowed (the deleted item's result went back), a 4th would exceed the limit
    assert done.status.phase == P.PHASE_FAILED, done.status.error
    assert "max_requests = 3" in done.status.error.detail
    assert len(llm.requests) == 3 and done.status.usage.requests == 3


async def test_a_sub_agents_requests_are_priced_recorded_and_limited_with_the_run(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(
        call("researcher", task="Find it."),  # parent
        text("Found."),  # sub-agent
        text("Done."),  # parent again
    )
    sub = "  subAgents: [{name: researcher, description: Finds facts., instructions: Cite sources.}]\n"
    price = "{inputPerMillion: 1000, outputPerMillion: 1000}"
    await apply(backend, stdio_server("items"))
    await apply(backend, _agent(llm, sub, model="my-model", price=price))
    done = await _run(backend)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    usage = done.status.usage
    assert usage.requests == 3 and len(usage.by_request) == 3
    assert usage.cost_usd == pytest.approx(3 * 0.018)
    # a cost limit counts the sub-agent's requests: after parent + sub-agent ($0.036) no more
    llm.add(call("researcher", task="Find it."), text("Found."), text("Done."))
    stopped = await _run(backend, limits={"maxCostUsd": 0.03})
    assert stopped.status.phase == P.PHASE_FAILED
    assert "max_cost_usd = $0.03" in stopped.status.error.detail, stopped.status.error.detail


def _summary_or(reply: str) -> object:
    """A stand-in that answers summary requests with a summary and everything else with ``reply``."""

    def respond(body: dict[str, object]) -> object:
        messages = body.get("messages") or []
        first = messages[0] if isinstance(messages, list) and messages else {}
        if isinstance(first, dict) and "Summarise the conversation" in str(first.get("content")):
            return text("SUMMARY: the user's number is 42.")
        return text(reply)

    return respond


async def test_long_tool_results_are_cut_in_what_is_sent_but_kept_whole(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("delete_item", item="x" * 300), text("done"))
    usage = "  mcpServers: [{name: items, tools: [delete_item]}]\n  context: {maxToolResultChars: 40}\n"
    await apply(backend, stdio_server("items"))
    await apply(backend, openai_agent(llm, extra=usage))
    eid = await start(backend, "bot", "delete it")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error

    sent = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")["content"]
    assert sent.startswith("deleted xxx") and sent.endswith("more characters cut]")
    assert len(sent) < 100
    # the conversation kept for the session, and the event, hold the whole result
    assert "x" * 300 in done.status.checkpoint
    result = next(e for e in await events(backend, eid) if e.type == "tool.result")
    assert "x" * 300 in json.dumps(json_format.MessageToDict(result.data))


async def test_older_turns_are_summarised_in_what_is_sent_and_the_session_keeps_them(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.respond = _summary_or("Noted.")  # type: ignore[assignment]
    context = "  context: {maxHistoryTokens: 120, keepRecentMessages: 2}\n"
    await apply(backend, openai_agent(llm, extra=context))
    first = await start(backend, "bot", "My number is 42. " + "Please remember it. " * 3)
    turn1 = await AgentRunner().execute(backend, first)
    assert turn1.status.phase == P.PHASE_SUCCEEDED, turn1.status.error
    session = turn1.spec.session_id
    before = len(llm.requests)
    second = await start(backend, "bot", "Which number did I give you?", session_id=session)
    turn2 = await AgentRunner().execute(backend, second)
    assert turn2.status.phase == P.PHASE_SUCCEEDED, turn2.status.error

    summary_request, answer_request = llm.requests[before:]
    assert "Summarise the conversation" in summary_request["messages"][0]["content"]
    assert "My number is 42" in json.dumps(summary_request["messages"])
    sent = answer_request["messages"]
    user = [m["content"] for m in sent if m["role"] == "user"]
    assert user[0].startswith("Summary of the earlier conversation") and "42" in user[0]
    assert user[-1] == "Which number did I give you?"
    assert not any("Please remember it" in str(m.get("content")) for m in sent)
    # the summary request is counted and recorded; the session's history is whole
    assert turn2.status.usage.requests == 2 and len(turn2.status.usage.by_request) == 2
    assert "Please remember it" in turn2.status.checkpoint
