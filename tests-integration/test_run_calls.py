"""What a run costs against a real `stigmer server`, counted in the server's own request log
(``--log-level DEBUG``: one ``rpc method=... code=... token=...`` line per call).

``run(name, input=...)`` with no kind creates the run in one ``CreateExecution`` (the server finds
the workflow or agent), ``follow()`` watches to the end and takes the final snapshot from the
watch's last event (no ``GetExecution``); a missing or ambiguous name still reads as before, in
the SDK and in the CLI, and starts nothing."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from stigmer.core import InvalidArgument, NotFound
from stigmer.proto.v1 import execution_pb2
from stigmer.sdk import Agent, AsyncStigmer, Set, Stigmer, Workflow
from stigmer.server import ServerProcess, TokenStore

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

_RPC = re.compile(r"rpc method=(\w+) code=(\w+) duration_ms=\S+ token=(\S+)")


@dataclass
class Server:
    """The server, and the tokens whose calls are counted (the run's own process calls with a token
    of the execution's, counted by neither)."""

    process: ServerProcess
    token: str  # a user token (the SDK's)
    token_id: str
    cli_token: str  # another user token (the CLI's), so each counts only its own calls
    cli_token_id: str

    def mark(self) -> int:
        """Where the request log ends now."""
        return self.process.log_path.stat().st_size

    def calls(
        self,
        since: int,
        token_id: str | None = None,
        until: Callable[[list[tuple[str, str]]], bool] | None = None,
    ) -> list[tuple[str, str]]:
        """``(method, code)`` of each call the token (default: the SDK's) made after ``since``, in
        the order they were logged. With ``until``: once it holds (at most 10 s), and a moment
        later, for a line logged late. A call is logged as it ends: a unary call that succeeds
        before its answer is sent, but one that fails, and a stream, just after the client has
        its status."""
        wanted = token_id or self.token_id

        def read() -> list[tuple[str, str]]:
            with self.process.log_path.open("rb") as log:
                log.seek(since)
                text = log.read().decode("utf-8", errors="replace")
            return [(m[1], m[2]) for m in _RPC.finditer(text) if m[3] == wanted]

        if until is None:
            return read()
        deadline = time.monotonic() + 10
        while not until(read()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return read()

    def client(self) -> AsyncStigmer:
        return AsyncStigmer(endpoint=self.process.endpoint, token=self.token)


def _methods(calls: list[tuple[str, str]]) -> list[str]:
    return [method for method, _code in calls]


def _logged(method: str, code: str = "OK") -> Callable[[list[tuple[str, str]]], bool]:
    """``until=``: once the log has a call of ``method`` that ended with ``code``."""
    return lambda calls: (method, code) in calls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that runs executions itself (embedded), logging every call; ``hello`` (a `set`
    workflow) and ``triage`` (a workflow and an agent) applied."""
    home = tmp_path_factory.mktemp("run-calls") / "server-home"
    process = ServerProcess(
        home=home, database_url=f"sqlite:///{home / 'stigmer.db'}", args=["--log-level", "DEBUG"]
    )
    process.start()
    try:
        store = TokenStore(database_url=process.database_url)
        try:
            sdk = store.create("user", "sdk")
            cli = store.create("user", "cli")
        finally:
            store.close()
        with Stigmer(endpoint=process.endpoint, token=sdk.token) as stigmer:
            assert not stigmer.local
            stigmer.apply(
                Workflow(
                    "hello", namespace="t", do={"greet": Set({"greeting": '${ "Hello, " + .name + "!" }'})}
                ),
                Workflow("triage", namespace="t", do={"label": Set({"label": "bug"})}),
                Agent("triage", instructions="Label the issue.", model="ollama:llama3.2"),
            )
        yield Server(process, sdk.token, sdk.id, cli.token, cli.id)
    finally:
        assert process.stop() == 0
    assert "Traceback" not in process.log_path.read_text()


async def _execution_ids(stigmer: AsyncStigmer) -> set[str]:
    page = await stigmer.list_executions(limit=1000)
    return {ex.metadata.id for ex in page.executions}


async def test_a_run_by_name_is_one_create_and_follow_needs_no_get(server: Server) -> None:
    async with server.client() as stigmer:
        # The count sees a Get: a run without input is one of a kind that must be found first.
        before = server.mark()
        found = await stigmer.run("hello")
        methods = _methods(server.calls(before, until=_logged("CreateExecution")))
        assert "Get" in methods and methods[-1] == "CreateExecution", methods
        await found.wait(timeout=60)

        before = server.mark()
        handle = await stigmer.run("hello", input={"name": "server"})
        assert server.calls(before, until=_logged("CreateExecution")) == [("CreateExecution", "OK")]
        assert handle.kind == "WorkflowExecution"

        seen: list[execution_pb2.ExecutionEvent] = []
        before = server.mark()
        final = await handle.follow(on_event=seen.append)
        assert server.calls(before, until=_logged("WatchExecution")) == [("WatchExecution", "OK")]
        assert final is handle.execution
        assert final.metadata.id == handle.id
        assert handle.phase == "SUCCEEDED"
        assert handle.output == {"greeting": "Hello, server!"}
        assert final.status.last_sequence == seen[-1].sequence
        assert seen[0].type == "phase" and seen[-1].type == "phase"

        # The count would see a GetExecution: refresh() makes one.
        before = server.mark()
        again = await handle.refresh()
        assert server.calls(before) == [("GetExecution", "OK")]
        assert again.status.output == final.status.output

        # With the kind given, no existence check first either.
        before = server.mark()
        explicit = await stigmer.run("hello", kind="workflow", input={"name": "kind"})
        assert server.calls(before, until=_logged("CreateExecution")) == [("CreateExecution", "OK")]
        assert (await explicit.follow()).status.output == (await explicit.refresh()).status.output
        assert explicit.output == {"greeting": "Hello, kind!"}


async def test_on_event_never_sees_the_final_execution(server: Server) -> None:
    from stigmer.backend.cloud import CloudBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc

    async with server.client() as stigmer:
        handle = await stigmer.run("hello", input={"name": "events"})
        seen: list[execution_pb2.ExecutionEvent] = []
        final = await handle.follow(on_event=seen.append)
        assert seen and [e.HasField("execution") for e in seen] == [False] * len(seen)
        assert final.status.output == (await handle.refresh()).status.output
        assert handle.output == {"greeting": "Hello, events!"}

    # The server does send it, on the last event, when asked: follow() takes it off.
    backend = CloudBackend(server.process.endpoint, token=server.token)
    try:
        events = [
            ev
            async for ev in backend.watch_execution(
                svc.WatchExecutionRequest(execution_id=handle.id, final_execution=True)
            )
        ]
    finally:
        await backend.close()
    assert [e.sequence for e in events] == [e.sequence for e in seen]
    assert [e.HasField("execution") for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1].execution.metadata.id == handle.id
    assert events[-1].execution.status.output == final.status.output


async def test_a_missing_or_ambiguous_name_reads_as_before_and_starts_nothing(server: Server) -> None:
    async with server.client() as stigmer:
        existing = await _execution_ids(stigmer)

        before = server.mark()
        with pytest.raises(NotFound) as missing:
            await stigmer.run("helo", input={"name": "x"})
        assert str(missing.value) == "no workflow or agent named 'helo'; did you mean 'hello'?"
        calls = server.calls(before, until=_logged("CreateExecution", "NOT_FOUND"))
        assert _methods(calls).count("CreateExecution") == 1, calls
        assert ("CreateExecution", "NOT_FOUND") in calls

        before = server.mark()
        with pytest.raises(InvalidArgument) as both:
            await stigmer.run("triage", input={"title": "crash"})
        assert (
            str(both.value) == "'triage' names both a workflow and an agent; pass kind='workflow' or 'agent'"
        )
        assert both.value.field_paths == ("kind",)
        until = _logged("CreateExecution", "INVALID_ARGUMENT")
        assert server.calls(before, until=until) == [("CreateExecution", "INVALID_ARGUMENT")]

        before = server.mark()
        with pytest.raises(NotFound) as kind_given:
            await stigmer.run("helo", kind="workflow", input={})
        assert str(kind_given.value) == "no workflow named 'helo'; did you mean 'hello'?"
        calls = server.calls(before, until=_logged("CreateExecution", "NOT_FOUND"))
        assert _methods(calls).count("CreateExecution") == 1, calls
        assert ("CreateExecution", "NOT_FOUND") in calls

        assert await _execution_ids(stigmer) == existing  # nothing was created

        # With the kind given, the ambiguous name runs.
        chosen = await stigmer.run("triage", kind="workflow", input={})
        await chosen.follow()
        assert chosen.phase == "SUCCEEDED"
        assert chosen.output == {"label": "bug"}


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_the_cli_runs_by_name_through_a_server_context(stigmer: StigmerCli, server: Server) -> None:
    login = stigmer(
        "login", "--endpoint", server.process.endpoint, "--token", server.cli_token, "--name", "team"
    )
    assert login.returncode == 0, login.stderr

    def executions() -> set[str]:
        listed = stigmer("execution", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        return {ex["id"] for ex in json.loads(listed.stdout)}

    existing = executions()

    before = server.mark()
    missing = stigmer("run", "helo", "--input", "{}")
    assert _one_error_line(missing) == "error: no workflow or agent named 'helo'; did you mean 'hello'?"
    assert missing.stdout == ""
    calls = server.calls(before, server.cli_token_id, until=_logged("CreateExecution", "NOT_FOUND"))
    assert _methods(calls).count("CreateExecution") == 1, calls
    assert ("CreateExecution", "NOT_FOUND") in calls

    before = server.mark()
    both = stigmer("run", "triage", "--input", '{"title": "crash"}')
    assert _one_error_line(both) == (
        "error: 'triage' names both a workflow and an agent; say which: "
        "`stigmer workflow run triage` or `stigmer agent execute triage MESSAGE`"
    )
    until = _logged("CreateExecution", "INVALID_ARGUMENT")
    assert server.calls(before, server.cli_token_id, until=until) == [("CreateExecution", "INVALID_ARGUMENT")]

    assert executions() == existing  # nothing was started

    before = server.mark()
    good = stigmer("run", "hello", "--input", '{"name": "cli"}', "-o", "json")
    assert good.returncode == 0, good.stderr
    execution = json.loads(good.stdout)
    assert execution["phase"] == "SUCCEEDED"
    assert execution["output"] == {"greeting": "Hello, cli!"}
    assert execution["id"] not in existing
    calls = server.calls(before, server.cli_token_id, until=_logged("WatchExecution"))
    assert calls == [("CreateExecution", "OK"), ("WatchExecution", "OK")]  # no Get, no GetExecution
