"""Just-in-time secrets: resolved from GetExecutionContext at launch, masked everywhere they
would be written, absent from the database file."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server, summary

P = execution_pb2
SECRET = "tok-3f9a1c77-very-secret"


def _all_text(log: list[execution_pb2.ExecutionEvent]) -> str:
    return "\n".join(e.text + str(json_format.MessageToDict(e.data)) + e.subject for e in log)


async def test_secret_from_mcp_tool_is_masked_everywhere(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    # The model repeats what the tool returned, in its text, its next call's arguments and its answer.
    llm.add(
        call("echo_env", name="GH_TOKEN"),
        call("echo_env", name=f"token was {SECRET}"),
        text(f"The token is {SECRET}."),
    )
    await backend.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value=SECRET))
    await apply(backend, stdio_server("gh", env={"GH_TOKEN": "${ $secrets.GH_TOKEN }"}, secrets=["GH_TOKEN"]))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: gh}]\n"))
    # In a session, so the checkpoint keeps the conversation (which holds the tool's answer).
    (session,) = await apply(
        backend, "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: s}\nspec: {agent: {name: bot}}\n"
    )
    eid = await start(backend, "bot", "what is the token?", session_id=session.session.metadata.id)
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    # The MCP server really received the value (the tool echoed it to the model) ...
    tool_msg = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")
    assert tool_msg["content"] == f"GH_TOKEN={SECRET}"
    # ... and nothing the runner wrote holds it.
    assert from_value(done.status.output) == "The token is ***."
    log = await events(backend, eid)
    written = _all_text(log)
    assert SECRET not in written
    assert "GH_TOKEN=***" in written
    assert ("message.assistant", "The token is ***.") in summary(log)
    assert SECRET not in done.status.checkpoint
    assert "GH_TOKEN=***" in done.status.checkpoint
    # The execution spec holds the reference only.
    server = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="McpServer", name="gh")))
    assert server.mcp_server.spec.stdio.env["GH_TOKEN"] == "${ $secrets.GH_TOKEN }"
    # The database file and its write-ahead log, while the store is open and after it closed.
    files = sorted(tmp_path.glob("stigmer.db*"))
    assert {p.name for p in files} >= {"stigmer.db", "stigmer.db-wal"}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path.name
    await backend.close()
    paths = list(tmp_path.glob("stigmer.db*"))
    assert paths, "found no files to check"
    for path in paths:
        assert SECRET.encode() not in path.read_bytes(), path.name


async def test_http_header_expression_and_failure_detail(
    backend: Backend, llm: ScriptedLLM, http_mcp: str
) -> None:
    llm.add(call("whoami"), text("done"))
    await backend.set_secret(svc.SetSecretRequest(name="API_TOKEN", value=SECRET))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: remote}\n"
        f"spec: {{http: {{url: '{http_mcp}', headers: {{Authorization: '${{ \"Bearer \" + $secrets.API_TOKEN }}'}}}},"
        " secrets: [API_TOKEN]}\n",
    )
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: remote, tools: [whoami]}]\n"))
    eid = await start(backend, "bot", "who am I?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    tool_msg = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")
    assert tool_msg["content"] == f"auth=Bearer {SECRET}"
    result = next(e for e in await events(backend, eid) if e.type == "tool.result")
    assert json_format.MessageToDict(result.data)["result"] == "auth=Bearer ***"


async def test_missing_secret_is_a_clear_error(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, stdio_server("gh", env={"GH_TOKEN": "${.secrets.NOPE}"}))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: gh}]\n"))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "secret NOPE is not available" in done.status.error.detail
    assert "stigmer secret set NOPE" in done.status.error.detail
    assert llm.requests == []


async def test_model_key_from_context_is_masked(backend: Backend, llm: ScriptedLLM) -> None:
    key = "sk-test-model-key-0042"
    llm.add(text(f"I was called with {key}"))
    await backend.set_secret(svc.SetSecretRequest(name="OPENAI_API_KEY", value=key))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: oa}\n"
        f"spec: {{model: {{provider: openai, name: gpt-test, baseUrl: '{llm.openai_base_url}'}}, secrets: [OPENAI_API_KEY]}}\n",
    )
    eid = await start(backend, "oa", "hi")
    done = await AgentRunner(environ={}).execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert llm.headers[0]["authorization"] == f"Bearer {key}"
    assert from_value(done.status.output) == "I was called with ***"
    assert key not in _all_text(await events(backend, eid))


async def test_missing_model_key_says_how_to_set_it(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: oa}\n"
        "spec: {model: {provider: openai, name: gpt-test}}\n",
    )
    eid = await start(backend, "oa", "hi")
    done = await AgentRunner(environ={}).execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "OPENAI_API_KEY" in done.status.error.detail
    assert "stigmer secret set OPENAI_API_KEY" in done.status.error.detail


async def test_stdio_server_gets_plain_variables_but_no_unnamed_secret(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("echo_env", name="REGION"), call("echo_env", name="OTHER_TOKEN"), text("ok"))
    await backend.set_secret(svc.SetSecretRequest(name="OTHER_TOKEN", value=SECRET))
    await apply(backend, stdio_server("envy"))
    await apply(backend, openai_agent(llm, extra="  secrets: [OTHER_TOKEN]\n  mcpServers: [{name: envy}]\n"))
    eid = await start(backend, "bot", "where?", env={"REGION": "eu-west-1"})
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    results = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert results == ["REGION=eu-west-1", "OTHER_TOKEN="]


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)


async def test_a_multiline_secret_refused_as_an_mcp_header_is_not_quoted(
    backend: Backend, llm: ScriptedLLM, http_mcp: str, tmp_path: Path
) -> None:
    # httpx refuses the header and quotes it (b'-----BEGIN ...\\nMIIE...'): the record must not.
    llm.add(call("whoami"), text("done"))
    await backend.set_secret(svc.SetSecretRequest(name="PEM", value=PEM))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: remote}\n"
        f"spec: {{http: {{url: '{http_mcp}', headers: {{X-Key: '${{ $secrets.PEM }}'}}}}, secrets: [PEM]}}\n",
    )
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: remote, tools: [whoami]}]\n"))
    eid = await start(backend, "bot", "who am I?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "http.headers.X-Key: the value of header X-Key has a line break" in done.status.error.detail
    written = [str(done).encode(), _all_text(await events(backend, eid)).encode()]
    written += [p.read_bytes() for p in tmp_path.glob("stigmer.db*")]
    for line in PEM.splitlines()[1:-1]:
        for form in (line, line.replace("/", "%2F").replace("+", "%2B")):
            assert not any(form.encode() in blob for blob in written), form[:12]
    assert not any(repr(PEM.encode())[2:40].encode() in blob for blob in written)
