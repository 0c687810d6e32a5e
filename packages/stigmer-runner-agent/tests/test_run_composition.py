"""Skills, sub-agents, sessions, and MCP servers' lifetime."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

from google.protobuf import json_format
from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, error, text
from stigmer.testing.agents import apply, events, openai_agent, pid_alive, start, stdio_server, summary

P = execution_pb2


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_skills_in_prompt_and_files_through_a_tool(backend: Backend, llm: ScriptedLLM) -> None:
    archive = _tar(
        {
            "SKILL.md": "---\nname: acme-faq\ndescription: Answers about Acme\n---\nAlways cite the FAQ.",
            "faq/pricing.md": "Acme costs 10 euros.",
        }
    )
    blob = await backend.put_artifact(svc.PutArtifactRequest(content=archive, media_type="application/x-tar"))
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: acme-faq}\n"
        f"spec: {{artifact: '{blob.key}'}}\n---\n"
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: tone}\n"
        "spec: {description: How to sound, content: Be cheerful.}\n",
    )
    llm.add(call("read_skill_file", skill="acme-faq", path="faq/pricing.md"), text("It costs 10 euros."))
    await apply(backend, openai_agent(llm, extra="  skills: [{name: acme-faq}, {name: tone}]\n"))
    eid = await start(backend, "bot", "price?")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    system = llm.requests[0]["messages"][0]["content"]
    assert system.startswith("Be brief.")
    for expected in (
        "## Skill: acme-faq",
        "Answers about Acme",
        "Always cite the FAQ.",
        "faq/pricing.md",
        "## Skill: tone",
        "How to sound",
        "Be cheerful.",
    ):
        assert expected in system
    assert "read_skill_file" in [t["function"]["name"] for t in llm.requests[0]["tools"]]
    result = next(e for e in await events(backend, eid) if e.type == "tool.result")
    assert json_format.MessageToDict(result.data)["result"] == "Acme costs 10 euros."


async def test_sub_agent_runs_as_a_tool(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(
        call("researcher", task="Find the capital of France."),  # parent
        text("Paris (source: atlas)."),  # sub-agent
        text("The capital is Paris."),  # parent again
    )
    sub = "  subAgents: [{name: researcher, description: Finds facts., instructions: Cite sources.}]\n"
    await apply(backend, openai_agent(llm, extra=sub))
    eid = await start(backend, "bot", "capital of France?")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    log = await events(backend, eid)
    assert summary(log) == [
        ("message.user", "capital of France?"),
        ("phase", "RUNNING"),
        ("tool.call", "researcher"),
        ("agent.started", "researcher"),
        ("agent.completed", "researcher"),
        ("tool.result", "researcher"),
        ("text.delta", "The capital is Paris."),
        ("message.assistant", "The capital is Paris."),
        ("usage",),
        ("phase", "SUCCEEDED"),
    ]
    completed = next(e for e in log if e.type == "agent.completed")
    assert json_format.MessageToDict(completed.data)["output"] == "Paris (source: atlas)."
    tool = next(t for t in llm.requests[0]["tools"] if t["function"]["name"] == "researcher")
    assert "Finds facts." in tool["function"]["description"]
    # The sub-agent got its own instructions and the task.
    assert llm.requests[1]["messages"][0] == {"role": "system", "content": "Cite sources."}
    assert llm.requests[1]["messages"][-1] == {"role": "user", "content": "Find the capital of France."}
    # Its usage counts towards the run.
    assert done.status.usage.requests == 3


async def test_session_continues_across_runner_instances(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm))
    session = await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: chat-1}\nspec: {agent: {kind: Agent, name: bot}}\n",
    )
    session_id = session[0].session.metadata.id

    llm.add(text("Nice to meet you, Ada."))
    first = await start(backend, "bot", "My name is Ada.", session_id=session_id)
    assert (await AgentRunner().execute(backend, first)).status.phase == P.PHASE_SUCCEEDED

    llm.add(text("Your name is Ada."))
    second = await start(backend, "bot", "What is my name?", session_id=session_id)
    done = await AgentRunner().execute(backend, second)  # a fresh runner: no process memory

    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    sent = [(m["role"], m.get("content")) for m in llm.requests[1]["messages"]]
    assert sent == [
        ("system", "Be brief."),
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    # A run outside the session starts afresh.
    llm.add(text("I don't know."))
    third = await start(backend, "bot", "What is my name?")
    await AgentRunner().execute(backend, third)
    assert [m["role"] for m in llm.requests[2]["messages"]] == ["system", "user"]


async def test_mcp_server_stops_when_the_run_fails(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    pid_file = tmp_path / "server.pid"
    script = tmp_path / "pid_server.py"
    from stigmer.testing.agents import MCP_SERVER

    script.write_text(
        "import os, runpy, sys\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"sys.argv = [{MCP_SERVER!r}]\n"
        f"runpy.run_path({MCP_SERVER!r}, run_name='__main__')\n"
    )
    manifest = stdio_server("calc").replace(repr(MCP_SERVER), repr(str(script)))
    await apply(backend, manifest)
    llm.add(call("add", a=1, b=2), error(401, "key revoked"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: calc}]\n"))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)

    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.status == 401
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


async def test_mcp_server_that_cannot_start_names_the_server(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: broken}\n"
        "spec: {stdio: {command: /nonexistent/mcp-server-binary}}\n",
    )
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: broken}]\n"))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "MCP server broken failed to start" in done.status.error.detail
    assert llm.requests == []


async def test_deleted_mcp_server_is_a_clear_error(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, stdio_server("nowhere"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: nowhere}]\n"))
    await backend.delete(svc.DeleteRequest(ref=meta_pb2.ResourceRef(kind="McpServer", name="nowhere")))
    eid = await start(backend, "bot", "hi")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "nowhere" in done.status.error.detail
    assert done.status.error.status == 404


async def test_cancel_during_a_slow_tool_stops_the_run(backend: Backend, llm: ScriptedLLM) -> None:
    import asyncio

    llm.add(call("pid"), call("wait", seconds=60), text("never"))
    await apply(backend, stdio_server("slow"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: slow}]\n"))
    eid = await start(backend, "bot", "wait a minute")
    run = asyncio.ensure_future(AgentRunner(cancel_poll=0.1).execute(backend, eid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if [e for e in await events(backend, eid) if e.type == "tool.call" and "wait" in str(e.data)]:
            break
        await asyncio.sleep(0.05)
    began = time.monotonic()
    await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="too slow"))
    done = await asyncio.wait_for(run, 20)
    assert time.monotonic() - began < 10
    assert done.status.phase == P.PHASE_CANCELLED
    pid_result = next(e for e in await events(backend, eid) if e.type == "tool.result")
    pid = int(json_format.MessageToDict(pid_result.data)["result"])
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not pid_alive(pid)
    assert len(llm.requests) == 2


async def test_sub_agent_by_reference_uses_that_agents_spec(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("checker", task="Check: 2+2=4"), text("Correct."), text("Verified: correct."))
    await apply(backend, openai_agent(llm, name="fact-checker", instructions="You check facts."))
    await apply(backend, openai_agent(llm, extra="  subAgents: [{name: checker, agent: fact-checker}]\n"))
    eid = await start(backend, "bot", "is 2+2=4?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert llm.requests[1]["messages"][0] == {"role": "system", "content": "You check facts."}
    started = next(e for e in await events(backend, eid) if e.type == "agent.started")
    assert json_format.MessageToDict(started.data) == {"agent": "checker", "task": "Check: 2+2=4"}


async def test_sub_agents_are_not_offered_tools_that_need_approval(
    backend: Backend, llm: ScriptedLLM
) -> None:
    llm.add(call("janitor", task="tidy up"), text("tidied"), text("done"))
    await apply(backend, stdio_server("items"))
    sub = (
        "  subAgents:\n"
        "    - name: janitor\n"
        "      instructions: You tidy up.\n"
        "      mcpServers: [{name: items, tools: [add, delete_item], requireApproval: [delete_item]}]\n"
    )
    await apply(backend, openai_agent(llm, extra=sub))
    eid = await start(backend, "bot", "tidy")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert [t["function"]["name"] for t in llm.requests[1]["tools"]] == ["add"]


async def test_failing_tool_is_reported_and_the_model_continues(backend: Backend, llm: ScriptedLLM) -> None:
    llm.add(call("fail", reason="disk full"), text("The tool failed: disk full."))
    await apply(backend, stdio_server("flaky"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: flaky, tools: [fail]}]\n"))
    eid = await start(backend, "bot", "try it")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    result = next(e for e in await events(backend, eid) if e.type == "tool.result")
    assert "failed on purpose: disk full" in str(json_format.MessageToDict(result.data)["result"])
    tool_msg = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")
    assert "failed on purpose: disk full" in tool_msg["content"]
