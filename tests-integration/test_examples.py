"""Every example in `examples/` is applied and run with the real `stigmer` executable, offline.

Each test runs in a fresh ``STIGMER_HOME`` (a real SQLite store) from the repository root, as a user
following the example's header would. Where an example talks to a model or a web API, a real HTTP
server on 127.0.0.1 stands in for it: an OpenAI-compatible chat-completions server (streaming and
tool calls, answering from a script) and small JSON APIs. Agents are pointed at the stand-in with
``STIGMER_LLM_BASE_URL``, exactly as a user points them at a local Ollama or vLLM server.

The stand-ins come from ``stigmer.testing`` (``ScriptedLLM``, ``HttpWorld``, ``UserCli``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import HttpWorld, Request, Response, ScriptedLLM, UserCli, json_response
from stigmer.testing import call as use_tool
from stigmer.testing import text as say

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


# -- running the CLI -------------------------------------------------------------------------------

Cli = UserCli


@pytest.fixture
def cli(tmp_path: Path) -> UserCli:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return UserCli(home, cwd=ROOT)


# -- stand-in servers (the model is stigmer.testing's ScriptedLLM) ---------------------------------


class StandInAPI(HttpWorld):
    """A JSON web API answering GET routes from a table (a callable may compute the answer);
    records the path and headers of every request."""

    def __init__(self, routes: Mapping[str, Callable[[dict[str, str]], tuple[int, Any]]]) -> None:
        super().__init__()
        self.routes = routes

    @property
    def seen(self) -> list[tuple[str, dict[str, str]]]:
        with self.lock:
            return [(r.target, r.headers) for r in self.received]

    def hits(self, path: str) -> int:
        return self.count(path)

    def handle(self, request: Request) -> Response:
        route = self.routes.get(request.target)
        if route is None:
            return json_response({"message": "Not Found"}, 404)
        status, payload = route(request.headers)
        return json_response(payload, status)


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
        "agent/fixer",
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

    with (
        StandInAPI({"/repos/octo/demo/issues/42": issue}) as github,
        ScriptedLLM([say("Bug")], default="OK") as llm,
    ):
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

    with (
        StandInAPI({"/repos/octo/demo/issues/42": issue}) as github,
        ScriptedLLM([say("Question")], default="OK") as llm,
    ):
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
    with ScriptedLLM(script, default="OK") as llm:
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
    with ScriptedLLM(script, default="OK") as llm:
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
    with ScriptedLLM([say("Nice to meet you, Ada."), say("Your name is Ada.")], default="OK") as llm:
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


def test_the_fixer_agent_fixes_the_failing_test_with_files_shell_and_todos(cli: Cli, tmp_path: Path) -> None:
    source = EXAMPLES / "fixer" / "repo" / "calc.py"
    before = source.read_text()
    plan = [
        {"content": "run the tests", "status": "in_progress"},
        {"content": "fix the code", "status": "pending"},
        {"content": "run the tests again", "status": "pending"},
    ]
    done_plan = [dict(item, status="completed") for item in plan]
    script = [
        use_tool("write_todos", todos=plan),
        use_tool("run_command", command="python3 -m unittest -q"),
        use_tool("read_file", path="calc.py", start_line=4, end_line=6),
        use_tool("edit_file", path="calc.py", old_text="return a - b", new_text="return a + b"),
        use_tool("run_command", command="python3 -m unittest -q"),
        use_tool("write_todos", todos=done_plan),
        say("add() subtracted instead of adding; the tests pass now."),
    ]
    with ScriptedLLM(script) as llm:
        cli.extra_env.update(llm.env())
        cli.ok("apply", "-f", "examples/fixer.yaml")
        run = cli.json("agent", "execute", "fixer", "The tests fail; fix the code.", "--session", "fix-1")
        assert run["phase"] == "SUCCEEDED", run["error"]
        assert run["output"] == "add() subtracted instead of adding; the tests pass now."
        results = [m["content"] for m in llm.messages(len(script) - 1) if m["role"] == "tool"]
        assert results[1].startswith("exit code 1\n") and "FAILED (failures=1)" in results[1]
        assert (
            results[2] == 'def add(a: int, b: int) -> int:\n    """The sum of a and b."""\n    return a - b\n'
        )
        assert results[4].startswith("exit code 0\n") and results[4].rstrip().endswith("OK")
        execution = cli.json("execution", "get", run["id"])
        assert execution["id"] == run["id"]
        files = {f["path"] for f in cli.json("execution", "files", run["id"])}
        assert files == {"calc.py", "test_calc.py"}
        assert "return a + b" in cli.ok("execution", "files", run["id"], "calc.py").stdout
        out = tmp_path / "fixed"
        cli.ok("session", "export", "fix-1", "-o", str(out))
        assert "return a + b" in (out / "calc.py").read_text()
    assert source.read_text() == before  # the example's own folder is never touched
