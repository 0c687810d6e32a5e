"""Every example in `examples/` is applied and run with the real `stigmer` executable, offline.

Each test runs in a fresh ``STIGMER_HOME`` (a real SQLite store) from the repository root, as a user
following the example's header would. Where an example talks to a model or a web API, a real HTTP
server on 127.0.0.1 stands in for it: an OpenAI-compatible chat-completions server (streaming and
tool calls, answering from a script) and small JSON APIs. Agents are pointed at the stand-in with
``STIGMER_LLM_BASE_URL``, exactly as a user points them at a local Ollama or vLLM server.

The stand-ins live here (not in a conftest) so the docs tests can import them by path.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
STIGMER = BIN / "stigmer"


# -- running the CLI -------------------------------------------------------------------------------


def example_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: a private store, this environment's executables first on PATH, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMER_", "OPENAI_", "OLLAMA_"))}
    env.update(
        STIGMER_HOME=str(home),
        NO_COLOR="1",
        COLUMNS="200",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@dataclass
class Cli:
    """Runs ``stigmer ARGS`` from the repository root in one private home."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, input: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STIGMER), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=example_env(self.home, **self.extra_env),
        )

    def ok(self, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        done = self(*args, input=input)
        assert done.returncode == 0, f"stigmer {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, input: str = "") -> Any:
        return json.loads(self.ok(*args, "-o", "json", input=input).stdout)

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        out = self.ok("execution", "logs", execution_id, "-o", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return Cli(home)


# -- stand-in servers ------------------------------------------------------------------------------


class _Server:
    """A threaded HTTP server on 127.0.0.1:0 whose handler calls ``self.handle``."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                owner.handle(self, json.loads(self.rfile.read(length) or b"{}"))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, request: BaseHTTPRequestHandler, body: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def send_json(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


@dataclass
class Reply:
    """One scripted model answer: text, or tool calls ``(name, arguments)``."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def say(text: str) -> Reply:
    return Reply(text=text)


def use_tool(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


class StandInLLM(_Server):
    """An OpenAI-compatible chat-completions server (JSON or SSE, with tool calls) answering from a
    script, recording every request body and its headers."""

    def __init__(self, *replies: Reply, default: str = "OK") -> None:
        super().__init__()
        self.replies = list(replies)
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def env(self) -> dict[str, str]:
        """Point every agent at this server, as one would at a local Ollama."""
        return {"STIGMER_LLM_BASE_URL": self.base_url}

    def messages(self, index: int) -> list[dict[str, Any]]:
        return list(self.requests[index]["messages"])

    def handle(self, request: BaseHTTPRequestHandler, body: Any) -> None:
        if not request.path.endswith("/chat/completions"):
            self.send_json(request, 404, {"error": {"message": f"no route {request.path}"}})
            return
        with self._lock:
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            reply = self.replies.pop(0) if self.replies else Reply(text=self.default)
        calls = [
            {
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, args in reply.tool_calls
        ]
        finish = "tool_calls" if calls else "stop"
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        head = {"id": f"chatcmpl-{next(self._ids)}", "created": 1700000000, "model": body.get("model", "m")}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish}
            self.send_json(
                request, 200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice]}

        def chunks() -> Iterator[Any]:
            yield chunk({"role": "assistant", "content": ""})
            if reply.text:
                yield chunk({"content": reply.text})
            for index, call in enumerate(calls):
                yield chunk({"tool_calls": [{"index": index, **call}]})
            yield chunk({}, finish)
            yield {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            yield "[DONE]"

        request.send_response(200)
        request.send_header("content-type", "text/event-stream")
        request.send_header("connection", "close")
        request.end_headers()
        for item in chunks():
            data = item if isinstance(item, str) else json.dumps(item)
            request.wfile.write(f"data: {data}\n\n".encode())
            request.wfile.flush()
        request.close_connection = True


class StandInAPI(_Server):
    """A JSON web API answering GET routes from a table (a callable may compute the answer);
    records the path and headers of every request."""

    def __init__(self, routes: dict[str, Callable[[dict[str, str]], tuple[int, Any]]]) -> None:
        super().__init__()
        self.routes = routes
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def hits(self, path: str) -> int:
        return sum(1 for seen, _ in self.seen if seen == path)

    def handle(self, request: BaseHTTPRequestHandler, body: Any) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.seen.append((request.path, headers))
        route = self.routes.get(request.path)
        if route is None:
            self.send_json(request, 404, {"message": "Not Found"})
            return
        status, payload = route(headers)
        self.send_json(request, status, payload)


# -- the examples ----------------------------------------------------------------------------------


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def _every_text(cli: Cli) -> str:
    """Everything the store holds on disk (database, WAL), as text, to grep for secret values."""
    return "".join(p.read_bytes().decode("latin-1") for p in cli.home.rglob("stigmer.db*"))


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_every_example_starts_with_a_schema_modeline(path: Path) -> None:
    lines = path.read_text().splitlines()
    first = next(line for line in lines if line.strip())
    assert first.startswith("# yaml-language-server: $schema=../docs/schemas/"), first
    schema = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert schema.is_file(), f"{path.name}: the modeline points at a missing schema {schema}"
    kinds = [line.split(":", 1)[1].strip() for line in lines if line.startswith("kind:")]
    assert schema.name == f"{kinds[0]}.schema.json", "the modeline names the schema of the first kind"
    if len(kinds) > 1:
        assert "modeline names the schema of the first" in path.read_text()


def test_every_example_applies_in_one_go_and_hello_runs(cli: Cli) -> None:
    applied = cli.ok("apply", "-f", "examples")
    names = {line.split()[0] for line in applied.stdout.splitlines() if line.strip()}
    assert {
        "workflow/hello",
        "workflow/issue-triage",
        "workflow/fan-out",
        "agent/assistant",
        "agent/triager",
        "agent/support",
        "skill/refund-policy",
        "mcpserver/orders",
    } <= names, applied.stdout
    again = cli.ok("apply", "-f", "examples")
    assert all(line.endswith("unchanged") for line in again.stdout.splitlines() if line.strip()), again.stdout
    # the smallest one runs at once (the README's main command, tests-integration/test_readme.py)
    execution = cli.json("run", "hello")
    assert execution["phase"] == "SUCCEEDED"
    assert execution["output"] == {"greeting": "Hello, world!"}


GH_TOKEN = "ghp_example0123456789abcdefSECRET"
ISSUE = {
    "number": 42,
    "title": "Crash when the config file is empty",
    "body": "stigmer apply -f empty.yaml raises a traceback.",
    "user": {"login": "octocat"},
    "state": "open",
}


def test_issue_triage_calls_the_api_with_the_secret_then_the_agent(cli: Cli) -> None:
    def issue(headers: dict[str, str]) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {GH_TOKEN}":
            return 401, {"message": "Bad credentials"}
        return 200, ISSUE

    with StandInAPI({"/repos/octo/demo/issues/42": issue}) as github, StandInLLM(say("Bug")) as llm:
        cli.extra_env.update(llm.env())
        assert "GH_TOKEN" in cli.ok("secret", "set", "GH_TOKEN", input=GH_TOKEN + "\n").stdout
        cli.ok("apply", "-f", "examples/issue-triage.yaml")
        run_input = json.dumps({"repo": "octo/demo", "number": 42, "apiUrl": github.url})
        execution = cli.json("run", "issue-triage", "--input", run_input)

        assert execution["phase"] == "SUCCEEDED", execution["error"]
        assert execution["output"] == {"number": 42, "title": ISSUE["title"], "label": "bug"}
        # the API saw the token resolved from the secret store, as a bearer token
        [(path, headers)] = github.seen
        assert path == "/repos/octo/demo/issues/42"
        assert headers["authorization"] == f"Bearer {GH_TOKEN}"
        assert headers["accept"] == "application/vnd.github+json"
        # the agent got the issue
        [request] = llm.requests
        user = [m for m in request["messages"] if m["role"] == "user"]
        assert "Issue #42 by octocat: Crash when the config file is empty" in json.dumps(user)
        assert "triage GitHub issues" in json.dumps(request["messages"])

    # the agent ran as a child execution of the workflow
    children = [e for e in cli.json("execution", "list") if e["kind"] == "AgentExecution"]
    assert [c["target"]["name"] for c in children] == ["triager"]
    assert children[0]["output"] == "Bug"

    # the value is never recorded: the execution, its events and the store hold only the reference
    record = cli.ok("execution", "get", execution["id"], "-o", "json").stdout
    logs = cli.ok("execution", "logs", execution["id"], "-o", "json").stdout
    stored = cli.ok("get", "workflow", "issue-triage", "-o", "yaml").stdout
    for text in (record, logs, stored, _every_text(cli)):
        assert GH_TOKEN not in text
    assert "$secrets.GH_TOKEN" in stored
    assert [s["name"] for s in cli.json("secret", "list")] == ["GH_TOKEN"]


def test_issue_triage_masks_a_token_pasted_into_the_issue(cli: Cli) -> None:
    """Someone pasted the token into the issue: every record shows *** in its place."""

    def issue(headers: dict[str, str]) -> tuple[int, Any]:
        return 200, {**ISSUE, "body": f"my token is {GH_TOKEN}, please help"}

    with StandInAPI({"/repos/octo/demo/issues/42": issue}) as github, StandInLLM(say("Question")) as llm:
        cli.extra_env.update(llm.env())
        cli.ok("secret", "set", "GH_TOKEN", input=GH_TOKEN)
        cli.ok("apply", "-f", "examples/issue-triage.yaml")
        run_input = json.dumps({"repo": "octo/demo", "number": 42, "apiUrl": github.url})
        execution = cli.json("run", "issue-triage", "--input", run_input)
        assert execution["phase"] == "SUCCEEDED", execution["error"]
        assert execution["output"]["label"] == "question"

    parent_events = json.dumps(cli.events(execution["id"]))
    assert "my token is ***, please help" in parent_events and GH_TOKEN not in parent_events
    [child] = [e for e in cli.json("execution", "list") if e["kind"] == "AgentExecution"]
    assert "my token is ***, please help" in child["message"]
    assert GH_TOKEN not in json.dumps(cli.events(child["id"]))
    assert GH_TOKEN not in _every_text(cli)


def test_issue_triage_without_the_secret_fails_with_one_clear_line(cli: Cli) -> None:
    cli.ok("apply", "-f", "examples/issue-triage.yaml")
    run = cli(
        "run", "issue-triage", "--input", '{"repo": "octo/demo", "number": 1, "apiUrl": "http://127.0.0.1:9"}'
    )
    assert run.returncode == 1
    assert "GH_TOKEN" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_fan_out_runs_branches_in_parallel_and_retries_a_flaky_service(cli: Cli) -> None:
    calls = {"web": 0}

    def healthy(headers: dict[str, str]) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    def flaky(headers: dict[str, str]) -> tuple[int, Any]:
        calls["web"] += 1
        return (503, {"status": "starting"}) if calls["web"] < 3 else (200, {"status": "ok"})

    routes = {"/health/api": healthy, "/health/web": flaky, "/health/db": healthy}
    routes["/version"] = lambda headers: (200, {"version": "1.4.2"})
    with StandInAPI(routes) as status:
        cli.ok("apply", "-f", "examples/fan-out.yaml")
        release = cli.home.parent / "release.json"
        release.write_text(json.dumps({"baseUrl": status.url, "services": ["api", "web", "db"]}))
        execution = cli.json("run", "fan-out", "--input", f"@{release}")
        assert execution["phase"] == "SUCCEEDED", execution["error"]
        assert execution["output"] == {"healthy": ["api", "web", "db"], "version": "1.4.2"}
        assert status.hits("/health/web") == 3  # two 503s retried, then healthy
        assert status.hits("/health/api") == status.hits("/health/db") == status.hits("/version") == 1

    events = cli.events(execution["id"])
    retried = [e for e in events if e["type"] == "task.retried"]
    assert len(retried) == 2
    assert all("/probe" in e["subject"] for e in retried)


def test_fan_out_gives_up_after_the_retry_limit(cli: Cli) -> None:
    routes: dict[str, Callable[[dict[str, str]], tuple[int, Any]]] = {
        "/health/api": lambda headers: (503, {"status": "down"}),
        "/version": lambda headers: (200, {"version": "1.4.2"}),
    }
    with StandInAPI(routes) as status:
        cli.ok("apply", "-f", "examples/fan-out.yaml")
        run_input = json.dumps({"baseUrl": status.url, "services": ["api"]})
        done = cli("run", "fan-out", "--input", run_input, "-o", "json")
        assert done.returncode == 1
        execution = json.loads(done.stdout)
        assert execution["phase"] == "FAILED"
        assert execution["error"]["status"] == 503
        assert execution["error"]["type"].endswith("/errors/communication")
        assert status.hits("/health/api") == 4  # the first attempt and `limit.attempt.count: 3` retries


def test_support_agent_uses_its_skill_and_mcp_tools_and_waits_for_approval(cli: Cli) -> None:
    script = [
        use_tool("lookup_order", order_id="A-1001"),
        use_tool("refund_order", order_id="A-1001", reason="arrived broken"),
        say("Done: order A-1001 is refunded, 249.00 EUR."),
    ]
    with StandInLLM(*script) as llm:
        cli.extra_env.update(llm.env())
        cli.ok("apply", "-f", "examples/support.yaml")
        done = cli(
            "agent", "execute", "support", "Please refund order A-1001, it arrived broken.", "-o", "json"
        )
        paused = json.loads(done.stdout)
        assert paused["phase"] == "WAITING_APPROVAL", (done.stdout, done.stderr)
        assert paused["pendingApproval"]["tool"] == "refund_order"
        assert paused["pendingApproval"]["server"] == "orders"
        assert paused["pendingApproval"]["arguments"] == {"order_id": "A-1001", "reason": "arrived broken"}
        assert len(llm.requests) == 2  # nothing ran after the model asked for the refund

        # the skill is in the system prompt, the MCP tools are offered
        first = llm.requests[0]
        assert "Orders delivered less than 30 days ago may be refunded in full." in json.dumps(
            first["messages"]
        )
        tools = {t["function"]["name"] for t in first["tools"]}
        assert {"lookup_order", "refund_order"} <= tools
        # the lookup ran on the real MCP server, with the manifest's env
        [tool_answer] = [m for m in llm.messages(1) if m["role"] == "tool"]
        order = json.loads(tool_answer["content"])
        assert order["item"] == "espresso machine" and order["region"] == "eu"

        approved = cli.json("execution", "approve", paused["id"])
        assert approved["phase"] == "SUCCEEDED", approved
        assert approved["output"] == "Done: order A-1001 is refunded, 249.00 EUR."
        assert "refunded A-1001: 249.00 EUR (arrived broken)" in json.dumps(llm.messages(2))

    events = cli.events(paused["id"])
    types = [e["type"] for e in events]
    assert types.index("approval.requested") < types.index("approval.resolved")
    results = [e for e in events if e["type"] == "tool.result"]
    assert [e["data"]["tool"] for e in results] == ["lookup_order", "refund_order"]


def test_support_agent_rejection_tells_the_agent_and_refunds_nothing(cli: Cli) -> None:
    script = [
        use_tool("refund_order", order_id="A-1002", reason="changed my mind"),
        say("I cannot refund that."),
    ]
    with StandInLLM(*script) as llm:
        cli.extra_env.update(llm.env())
        cli.ok("apply", "-f", "examples/support.yaml")
        paused = json.loads(cli("agent", "execute", "support", "Refund A-1002", "-o", "json").stdout)
        assert paused["phase"] == "WAITING_APPROVAL"
        rejected = cli.json("execution", "reject", paused["id"], "--reason", "not delivered yet")
        assert rejected["phase"] == "SUCCEEDED"
        assert rejected["output"] == "I cannot refund that."
        told = json.dumps(llm.messages(1))
        assert "not delivered yet" in told and "refunded A-1002" not in told


def test_two_turn_session_sees_the_first_turn(cli: Cli) -> None:
    with StandInLLM(say("Nice to meet you, Ada."), say("Your name is Ada.")) as llm:
        cli.extra_env.update(llm.env())
        cli.ok("apply", "-f", "examples/assistant.yaml")
        first = cli.json("agent", "execute", "assistant", "Hi, my name is Ada.", "--session", "demo")
        second = cli.json("agent", "execute", "assistant", "What is my name?", "--session", "demo")
        assert first["phase"] == second["phase"] == "SUCCEEDED"
        assert second["output"] == "Your name is Ada."
        assert first["id"] != second["id"]
        # the second turn's request carries the whole first turn
        history = [(m["role"], m.get("content")) for m in llm.messages(1) if m["role"] != "system"]
        assert history == [
            ("user", "Hi, my name is Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "What is my name?"),
        ]
        # the session is a resource of the agent; both turns belong to it, also by its id
        session = cli.json("get", "session", "demo")
        assert session["spec"]["agent"]["name"] == "assistant"
        assert first["session"] == second["session"] == session["metadata"]["id"]
        third = cli.json(
            "agent", "execute", "assistant", "And again?", "--session", session["metadata"]["id"]
        )
        assert "What is my name?" in json.dumps(llm.messages(2)) and third["phase"] == "SUCCEEDED"
        # a run outside the session starts afresh
        cli.ok("agent", "execute", "assistant", "What is my name?")
        assert [m["role"] for m in llm.messages(3) if m["role"] != "system"] == ["user"]
