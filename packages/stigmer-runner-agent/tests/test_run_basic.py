"""End to end on a real LocalBackend: scripted conversations through the real SDK clients."""

from __future__ import annotations

from google.protobuf import json_format
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.runner.agent._models import NO_MODEL_MESSAGE
from stigmer.testing import ScriptedLLM, call, error, text
from stigmer.testing.agents import apply, events, openai_agent, sequences_ok, start, stdio_server, summary

P = execution_pb2


async def test_plain_answer_exact_events(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(text("Hello there, friend."))
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED
    assert from_value(done.status.output) == "Hello there, friend."
    log = await events(backend, eid)
    assert sequences_ok(log)
    assert summary(log) == [
        ("message.user", "hi"),
        ("phase", "RUNNING"),
        ("text.delta", "Hello there, friend."),
        ("message.assistant", "Hello there, friend."),
        ("usage",),
        ("phase", "SUCCEEDED"),
    ]
    assert done.status.usage.input_tokens == 11
    assert done.status.usage.output_tokens == 7
    assert done.status.usage.requests == 1
    assert done.status.runner.startswith("agent-runner@")
    # a run started without a session got one: the conversation is kept for a next turn
    assert done.spec.session_id.startswith("ses_")
    assert '"content":"hi"' in done.status.checkpoint
    # The model received the instructions as the system prompt and the user's message.
    sent = llm.requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1] == {"role": "user", "content": "hi"}


async def test_mcp_tool_call_exact_events(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=2, b=3), text("2 + 3 = 5"))
    await apply(backend, stdio_server("calc"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc, tools: [add]}]\n"))
    eid = await start(backend, "bot", "what is 2+3?")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    log = await events(backend, eid)
    assert summary(log) == [
        ("message.user", "what is 2+3?"),
        ("phase", "RUNNING"),
        ("tool.call", "add"),
        ("tool.result", "add"),
        ("text.delta", "2 + 3 = 5"),
        ("message.assistant", "2 + 3 = 5"),
        ("usage",),
        ("phase", "SUCCEEDED"),
    ]
    call_event = next(e for e in log if e.type == "tool.call")
    result_event = next(e for e in log if e.type == "tool.result")
    assert call_event.subject == result_event.subject != ""
    assert json_format.MessageToDict(call_event.data) == {"tool": "add", "args": {"a": 2, "b": 3}}
    assert json_format.MessageToDict(result_event.data)["result"] == 5
    # Only the allowed tool was offered to the model.
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["add"]
    # The tool result went back to the model.
    assert {"role": "tool", "tool_call_id": call_event.subject, "content": "5"} in llm.requests[1]["messages"]
    assert done.status.usage.requests == 2
    assert done.status.usage.tool_calls == 1


async def test_no_model_configured_fails_with_one_line(backend: Backend) -> None:
    await apply(
        backend, "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bare}\nspec: {instructions: hi}\n"
    )
    eid = await start(backend, "bare", "hello")
    done = await AgentRunner(environ={}).execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.detail == NO_MODEL_MESSAGE
    assert "\n" not in done.status.error.detail
    assert "Traceback" not in done.status.error.detail
    assert done.status.error.type.endswith("/configuration")
    for way in ("`model:", "STIGMER_LLM_PROVIDER", "STIGMER_LLM_MODEL", "spec.model"):
        assert way in done.status.error.detail


async def test_environment_configures_the_model(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(text("from env"))
    await apply(
        backend, "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bare}\nspec: {instructions: hi}\n"
    )
    eid = await start(backend, "bare", "hello")
    environ = {
        "STIGMER_LLM_PROVIDER": "openai-compatible",
        "STIGMER_LLM_MODEL": "local-model",
        "STIGMER_LLM_BASE_URL": llm.url,  # without /v1: the runner adds it
    }
    done = await AgentRunner(environ=environ).execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert llm.requests[0]["model"] == "local-model"


async def test_ollama_by_base_url(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(text("llama says hi"))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: local}\n"
        "spec: {instructions: hi, model: {provider: ollama, name: 'llama3.2:1b'}}\n",
    )
    eid = await start(backend, "local", "hello")
    done = await AgentRunner(environ={"OLLAMA_BASE_URL": llm.url}).execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "llama says hi"
    assert llm.requests[0]["model"] == "llama3.2:1b"


async def test_anthropic_over_sse(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("add", a=1, b=1), text("It is 2."))
    await apply(backend, stdio_server("calc"))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: claude}\n"
        f"spec: {{instructions: Be exact., model: {{provider: anthropic, name: claude-test, baseUrl: '{llm.url}'}},"
        " secrets: [ANTHROPIC_API_KEY], mcpServers: [{name: calc}]}\n",
    )
    await backend.set_secret(_secret("ANTHROPIC_API_KEY", "sk-ant-test-key-123"))
    eid = await start(backend, "claude", "1+1?")
    done = await AgentRunner(environ={}).execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "It is 2."
    assert summary(await events(backend, eid))[2:5] == [
        ("tool.call", "add"),
        ("tool.result", "add"),
        ("text.delta", "It is 2."),
    ]
    first = llm.requests[0]
    assert first["stream"] is True
    assert first["system"] == "Be exact." or first["system"][0]["text"] == "Be exact."
    # The key came from the execution context (the secret store), not the environment.
    auth = llm.headers[0].get("x-api-key") or llm.headers[0].get("authorization", "")
    assert "sk-ant-test-key-123" in auth


async def test_rate_limit_is_retried(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(error(429, "slow down"), text("after the retry"))
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "after the retry"
    assert len(llm.requests) == 2


async def test_persistent_rate_limit_is_a_clear_error(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(*[error(429, "slow down")] * 2)
    params = "  model: {provider: openai-compatible, name: m, baseUrl: '%s', params: {maxRetries: 1}}\n"
    await apply(backend, openai_agent(llm).split("  model:")[0] + params % llm.openai_base_url)
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.status == 429
    assert done.status.error.title == "Model provider rate limit"
    assert "429" in done.status.error.detail and "retries" in done.status.error.detail
    assert len(llm.requests) == 2


async def test_bad_key_is_an_authentication_error(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(error(401, "invalid api key"))
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.type.endswith("/authentication")
    assert done.status.error.status == 401
    assert "API key" in done.status.error.detail
    assert done.status.error.detail.endswith("The provider said: invalid api key")
    assert len(llm.requests) == 1  # a 401 is not retried


async def test_unreachable_host_is_a_communication_error(backend: Backend) -> None:
    from stigmer.testing import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: gone}\n"
        f"spec: {{model: {{provider: openai-compatible, name: m, baseUrl: '{url}', params: {{maxRetries: 0}}}}}}\n",
    )
    eid = await start(backend, "gone", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.type.endswith("/communication")
    assert done.status.error.title == "Model provider unreachable"
    assert url in done.status.error.detail


async def test_cancelled_execution_is_left_alone(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="changed my mind"))
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_CANCELLED
    assert llm.requests == []


def _secret(name: str, value: str) -> svc.SetSecretRequest:
    return svc.SetSecretRequest(name=name, value=value)


async def test_timeout_is_retried(backend: Backend, llm: ScriptedLLM) -> None:
    from stigmer.testing import Reply

    llm.add(Reply(text="too late", delay=5.0), text("in time"))
    params = "  model: {provider: openai-compatible, name: m, baseUrl: '%s', params: {timeout: 1.5, maxRetries: 2}}\n"
    await apply(backend, openai_agent(llm).split("  model:")[0] + params % llm.openai_base_url)
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "in time"
    assert len(llm.requests) == 2


async def test_structured_input_is_the_message(backend: Backend, llm: ScriptedLLM) -> None:
    from stigmer.proto.v1 import meta_pb2

    llm.add(text("ok"))
    await apply(backend, openai_agent(llm))
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
    spec.input.struct_value.update({"city": "Paris"})
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    done = await AgentRunner().execute(backend, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert llm.requests[0]["messages"][-1] == {"role": "user", "content": '{"city": "Paris"}'}


async def test_required_environment_variable_is_checked(backend: Backend, llm: ScriptedLLM) -> None:
    extra = "  env: [{name: REGION, required: true, description: Where to deploy}]\n"
    await apply(backend, openai_agent(llm, extra=extra))
    eid = await start(backend, "bot", "deploy")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "the agent requires REGION" in done.status.error.detail
    assert llm.requests == []
    llm.add(text("deployed"))
    eid = await start(backend, "bot", "deploy", env={"REGION": "eu-west-1"})
    assert (await AgentRunner().execute(backend, eid)).status.phase == P.PHASE_SUCCEEDED
