"""The ``shell`` and ``fetch`` tools and the rules built-in tools share with MCP tools: allow-lists,
approvals (refused and given), the ``run`` and ``private_network`` capabilities, timeouts, output
caps and the bubblewrap sandbox."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import HttpWorld, Request, Response, ScriptedLLM, call, text
from stigmer.testing.agents import KEY, apply, data, events, openai_agent, start

P = execution_pb2


def _results(log: list[execution_pb2.ExecutionEvent]) -> list[str]:
    return [str(data(e)["result"]) for e in log if e.type == "tool.result"]


async def _run(
    backend: Backend, llm: ScriptedLLM, tools: str, *replies: object
) -> tuple[execution_pb2.Execution, list[str]]:
    await apply(backend, openai_agent(llm, extra=f"  tools: {tools}\n"))
    llm.add(*replies)  # type: ignore[arg-type]
    eid = await start(backend, "bot", "go")
    done = await AgentRunner().execute(backend, eid)
    return done, _results(await events(backend, eid))


@pytest.fixture
async def server_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    """A store as a shared server configures it: no `run`, no private network."""
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(
        f"sqlite:///{tmp_path / 'server.db'}",
        home=tmp_path,
        master_key=KEY,
        allow_run=False,
        allow_private_network=False,
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def site() -> Iterator[HttpWorld]:
    def handle(request: Request) -> Response:
        if request.path == "/page":
            html = b"<html><head><script>evil()</script></head><body><h1>Title</h1><p>Some <b>bold</b> text.</p></body></html>"
            return Response(body=html, content_type="text/html; charset=utf-8")
        if request.path == "/big":
            return Response(body=b"x" * 5000, content_type="text/plain")
        if request.path == "/slow":
            time.sleep(3)
            return Response(body=b"late", content_type="text/plain")
        if request.path == "/binary":
            return Response(body=b"\x89PNG....", content_type="image/png")
        if request.path == "/hop":
            return Response(status=302, headers={"Location": "/page"}, content_type="text/plain")
        return Response(status=404, body=b"not here", content_type="text/plain")

    with HttpWorld(handle) as world:
        yield world


# -- shell ---------------------------------------------------------------------------------------
async def test_shell_runs_in_the_workspace(backend: Backend, llm: ScriptedLLM) -> None:
    done, results = await _run(
        backend,
        llm,
        "[files, {name: shell, autoApprove: true}]",
        call("write_file", path="hello.sh", content="echo hello from $(pwd | xargs basename)\n"),
        call("run_command", command="sh hello.sh; echo made > made.txt; exit 3"),
        call("read_file", path="made.txt"),
        text("ok"),
    )
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert results[1].startswith("exit code 3\nhello from ")
    assert results[2] == "made\n"


async def test_shell_needs_approval_by_default_and_a_refusal_runs_nothing(
    backend: Backend, llm: ScriptedLLM, _home: Path
) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [shell]\n"))
    llm.add(call("run_command", command="echo pwned > pwned.txt"), text("Understood."))
    eid = await start(backend, "bot", "go")
    waiting = await AgentRunner().execute(backend, eid)
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
    assert waiting.status.pending_approval.tool == "run_command"
    assert waiting.status.workspace.artifact  # saved at the pause
    await backend.submit_approval(
        svc.SubmitApprovalRequest(
            execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=False, reason="no"
        )
    )
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert _results(await events(backend, eid)) == ["The user refused this tool call: no"]
    assert done.status.workspace.files == 0


async def test_shell_approved_call_runs_after_resume(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [files, shell]\n"))
    llm.add(
        call("write_file", path="a.txt", content="kept across the pause\n"),
        call("run_command", command="cat a.txt"),
        text("ok"),
    )
    eid = await start(backend, "bot", "go")
    waiting = await AgentRunner().execute(backend, eid)
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
    await backend.submit_approval(
        svc.SubmitApprovalRequest(
            execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=True
        )
    )
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert _results(await events(backend, eid))[-1] == "exit code 0\nkept across the pause"


async def test_shell_timeout_kills_the_command(backend: Backend, llm: ScriptedLLM) -> None:
    started = time.monotonic()
    done, results = await _run(
        backend,
        llm,
        "[{name: shell, autoApprove: true, timeoutSeconds: 1}]",
        call("run_command", command="echo before; sleep 30; echo after"),
        text("ok"),
    )
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert time.monotonic() - started < 15
    assert results[0] == "timed out after 1 s; the command was killed\nbefore"


async def test_shell_output_is_capped(backend: Backend, llm: ScriptedLLM) -> None:
    done, results = await _run(
        backend,
        llm,
        "[{name: shell, autoApprove: true, maxOutputBytes: 100}]",
        call("run_command", command="yes | head -c 5000"),
        text("ok"),
    )
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert results[0] == "exit code 0\n" + "y\n" * 50 + "\n[output cut at 100 bytes of 5,000]"


async def test_shell_sandbox_sees_only_the_workspace_and_no_network(
    backend: Backend, llm: ScriptedLLM, _home: Path, site: HttpWorld
) -> None:
    assert shutil.which("bwrap"), "install bubblewrap (apt-get install bubblewrap): the sandbox is under test"
    (_home / "secret.txt").parent.mkdir(parents=True, exist_ok=True)
    (_home / "secret.txt").write_text("runner secret")
    probe = (
        f"cat {_home / 'secret.txt'} || echo no-home; "
        "ls /work >/dev/null 2>&1 && echo sees-work || echo no-work; "
        f"python3 -c \"import urllib.request; urllib.request.urlopen('{site.url}/page', timeout=3)\" "
        "2>/dev/null && echo net || echo no-net; echo ok > inside.txt; pwd"
    )
    done, results = await _run(
        backend, llm, "[files, {name: shell, autoApprove: true}]",
        call("run_command", command=probe), call("read_file", path="inside.txt"), text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    out = results[0]
    assert "runner secret" not in out and "no-home" in out
    assert "no-work" in out and "no-net" in out
    assert out.rstrip().endswith("/workspace")
    assert results[1] == "ok\n"
    assert site.count("/page") == 0


async def test_shell_network_option_lets_the_sandbox_reach_out(
    backend: Backend, llm: ScriptedLLM, site: HttpWorld
) -> None:
    done, results = await _run(
        backend, llm, "[{name: shell, autoApprove: true, network: true}]",
        call("run_command", command=f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{site.url}/page').status)\""),
        text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert results[0] == "exit code 0\n200"


async def test_shell_without_a_sandbox_has_a_bare_environment(
    backend: Backend, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_SHELL_SANDBOX", "none")
    monkeypatch.setenv("STIGMER_SOMETHING", "should-not-leak")
    done, results = await _run(
        backend, llm, "[{name: shell, autoApprove: true}]",
        call("run_command", command="env | sort | cut -d= -f1 | tr '\\\\n' ' '"), text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    names = set(results[0].split("\n", 1)[1].split())
    assert "STIGMER_SOMETHING" not in names and "STIGMER_HOME" not in names
    assert {"PATH", "HOME", "LANG"} <= names


async def test_shell_is_refused_on_a_server_without_run(server_backend: Backend, llm: ScriptedLLM) -> None:
    await apply(server_backend, openai_agent(llm, extra="  tools: [{name: shell, autoApprove: true}]\n"))
    eid = await start(server_backend, "bot", "go")
    done = await AgentRunner().execute(server_backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "the shell tool" in done.status.error.detail
    assert "--allow-run" in done.status.error.detail
    assert llm.requests == []  # refused before the model was asked


# -- fetch ---------------------------------------------------------------------------------------
async def test_fetch_gives_html_as_markdown(backend: Backend, llm: ScriptedLLM, site: HttpWorld) -> None:
    done, results = await _run(
        backend, llm, "[fetch]",
        call("fetch_url", url=f"{site.url}/page"),
        call("fetch_url", url=f"{site.url}/hop"),
        call("fetch_url", url=f"{site.url}/binary"),
        call("fetch_url", url="ftp://example.com/x"),
        text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert results[0] == "# Title\n\nSome **bold** text.\n"
    assert results[1] == f"HTTP 200 {site.url}/page\n\n# Title\n\nSome **bold** text.\n"
    assert results[2].startswith("error: ") and "is not text (image/png" in results[2]
    assert results[3] == "error: only http and https URLs can be fetched, not 'ftp'"


async def test_fetch_is_bounded_in_size_and_time(backend: Backend, llm: ScriptedLLM, site: HttpWorld) -> None:
    done, results = await _run(
        backend, llm, "[{name: fetch, maxOutputBytes: 1000, timeoutSeconds: 1}]",
        call("fetch_url", url=f"{site.url}/big"),
        call("fetch_url", url=f"{site.url}/slow"),
        text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert results[0] == "x" * 1000 + "\n[cut at 1,000 bytes]"
    assert results[1] == f"error: {site.url}/slow did not answer within 1 s"


async def test_fetch_refuses_loopback_on_a_server(
    server_backend: Backend, llm: ScriptedLLM, site: HttpWorld
) -> None:
    done, results = await _run(
        server_backend, llm, "[fetch]",
        call("fetch_url", url=f"{site.url}/page"),
        call("fetch_url", url=f"http://localhost:{site.port}/page"),
        call("fetch_url", url="http://10.1.2.3/"),
        call("fetch_url", url="http://[::1]/"),
        text("ok"),
    )  # fmt: skip
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert len(results) == 4
    for result in results:
        assert result.startswith("error: ") and "loopback or private address" in result, result
        assert "--allow-private-network" in result
    assert site.count("/page") == 0


# -- rules shared with MCP tools -----------------------------------------------------------------
async def test_allow_list_and_read_only(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(
        backend,
        openai_agent(
            llm, extra="  tools: [{name: files, readOnly: true}, {name: todos, allow: [read_todos]}]\n"
        ),
    )
    llm.add(text("ok"))
    await AgentRunner().execute(backend, await start(backend, "bot", "go"))
    offered = sorted(t["function"]["name"] for t in llm.requests[0]["tools"])
    assert offered == ["grep", "list_files", "read_file", "read_todos"]


async def test_required_approval_on_a_files_function(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [{name: files, requireApproval: [write_file]}]\n"))
    llm.add(call("write_file", path="x.txt", content="x"), text("ok"))
    eid = await start(backend, "bot", "go")
    waiting = await AgentRunner().execute(backend, eid)
    assert waiting.status.phase == P.PHASE_WAITING_APPROVAL
    assert waiting.status.pending_approval.tool == "write_file"
    assert waiting.status.pending_approval.server == ""


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("[filez]", "unknown built-in tool 'filez' (did you mean files?)"),
        ("[{name: files, allow: [delete_file]}]", "the files tool has no function delete_file"),
        ("[files, files]", "the files tool is listed twice"),
    ],
)
async def test_bad_tool_entries_fail_with_one_line(
    backend: Backend, llm: ScriptedLLM, tools: str, message: str
) -> None:
    await apply(backend, openai_agent(llm, extra=f"  tools: {tools}\n"))
    done = await AgentRunner().execute(backend, await start(backend, "bot", "go"))
    assert done.status.phase == P.PHASE_FAILED
    assert message in done.status.error.detail


async def test_model_requests_in_a_turn_are_bounded_by_the_agent_requests_limit(
    backend: Backend, llm: ScriptedLLM
) -> None:
    import os

    await apply(backend, openai_agent(llm, extra="  tools: [todos]\n"))
    llm.add(*[call("read_todos") for _ in range(5)], text("never"))
    eid = await start(backend, "bot", "loop")
    runner = AgentRunner(environ={**os.environ, "STIGMER_LIMIT_AGENT_REQUESTS": "3"})
    done = await runner.execute(backend, eid)
    assert done.status.phase == P.PHASE_FAILED
    assert "request_limit of 3" in done.status.error.detail
    assert "STIGMER_LIMIT_AGENT_REQUESTS" in done.status.error.detail
    assert len(llm.requests) == 3
