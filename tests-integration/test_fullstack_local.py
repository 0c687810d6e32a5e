"""The full stack without Docker: ``stigmer local start`` in a private STIGMER_HOME on free ports
(a real Temporal dev server, a real ``stigmer server`` on Temporal, real runner workers under a
real supervisor), driven by the real CLI (``stigmer.testing.LocalStack``); a local HTTP server counts
the calls workflows make and stands in for an OpenAI-compatible model (``fullstack_world`` of the
conftest)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import (
    MCP_SERVER,
    FullstackWorld,
    LocalStack,
    history_text,
    temporal_binary,
    temporal_cli_json,
    wait_for,
)

Stack = LocalStack
World = FullstackWorld


# ----------------------------------------------------------------------------------- tests
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def world(fullstack_world: FullstackWorld) -> FullstackWorld:
    return fullstack_world


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("fullstack") / "home"
    home.mkdir()
    running = Stack(home)
    try:
        started = running.start()
        assert "context 'local-stack' selected" in started.stderr
        yield running
    finally:
        running.force_cleanup()


HELLO = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: hello}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }'}
"""


def test_status_json_lists_every_component_running(stack: Stack) -> None:
    rows = stack.status()
    assert [r["name"] for r in rows] == [
        "temporal",
        "temporal-ui",  # on by default: what the Temporal dev server serves
        "server",
        "server-http",  # the server's HTTP listener (/metrics, webhooks, events)
        "console",  # the web console the listener serves
        "workflow-runner",
        "agent-runner",
    ]
    for row in rows:
        assert set(row) == {"name", "state", "pid", "address", "uptime"}
        assert row["state"] == "running", rows
        assert isinstance(row["pid"], int) and row["pid"] > 0
        assert isinstance(row["uptime"], int | float) and row["uptime"] >= 0
    addresses = {r["name"]: r["address"] for r in rows}
    assert addresses["server"] == f"127.0.0.1:{stack.server_port}"
    assert addresses["temporal"] == f"127.0.0.1:{stack.temporal_port}"
    assert addresses["temporal-ui"] == f"http://127.0.0.1:{stack.ui_port}"
    assert addresses["server-http"] == f"http://127.0.0.1:{stack.http_port}"
    contexts = stack.cli("context", "show", "-o", "json").stdout
    assert json.loads(contexts)["name"] == "local-stack"


def test_starting_twice_is_harmless(stack: Stack) -> None:
    before = {r["name"]: r["pid"] for r in stack.status()}
    again = stack.start()
    assert "already running" in again.stderr
    assert {r["name"]: r["pid"] for r in stack.status()} == before


def test_a_workflow_runs_on_temporal_through_the_cli(stack: Stack) -> None:
    stack.apply(HELLO)
    done = stack.cli("run", "hello", "--input", '{"name": "full stack"}', "-o", "json")
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", done.stdout
    assert execution["output"] == {"greeting": "Hello, full stack!"}
    # It really ran as a Temporal workflow whose id is the execution id.
    info = describe_workflow(stack, execution["id"])
    assert info["workflowExecutionInfo"]["type"]["name"] == "stigmer.workflow"
    assert info["workflowExecutionInfo"]["taskQueue"] == "stigmer-workflows"
    assert info["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


def test_an_agent_runs_on_temporal_against_a_local_model(stack: Stack, world: World) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: greeter}}
spec:
  instructions: Greet the user.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
""")
    before = world.count("/v1/chat/completions")
    done = stack.cli("agent", "execute", "greeter", "hi", "-o", "json")
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", done.stdout + done.stderr
    assert execution["output"] == world.reply
    assert world.count("/v1/chat/completions") == before + 1
    assert execution["session"].startswith("ses_")  # every agent run belongs to a session
    described = subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "describe",
            "-w",
            execution["id"],
            "--address",
            f"127.0.0.1:{stack.temporal_port}",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(described.stdout)["workflowExecutionInfo"]["taskQueue"] == "stigmer-agents"


MCP_TEST_SERVER = MCP_SERVER


def test_an_agent_approval_is_a_signal_and_the_run_continues(stack: Stack, world: World) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: items}}
spec:
  stdio: {{command: {sys.executable!r}, args: [{str(MCP_TEST_SERVER)!r}]}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: janitor}}
spec:
  instructions: Delete what you are asked to.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  mcpServers: [{{name: items, tools: [delete_item], requireApproval: [delete_item]}}]
""")
    execution_id = (
        stack.cli("agent", "execute", "janitor", "delete item 42", "--detach").stdout.strip().splitlines()[-1]
    )
    waiting = stack.wait_phase(execution_id, {"WAITING_APPROVAL", "FAILED", "SUCCEEDED"}, 60)
    assert waiting["phase"] == "WAITING_APPROVAL", waiting
    stack.cli("execution", "approve", execution_id)
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 60)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == "Item 42 is gone."


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_support_example_applied_from_another_folder_runs_on_the_stack(
    stack: Stack, world: World, tmp_path: Path
) -> None:
    """Its stdio MCP server's path is relative to the manifest (resolved at apply), not to the
    folder the worker runs in (issue 16: "Connection closed", the cause only in the logs)."""
    applied = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "apply", "-f", str(EXAMPLES / "support.yaml")],
        capture_output=True,
        text=True,
        env=stack.env,
        cwd=tmp_path,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    done = stack.cli(
        "agent",
        "execute",
        "support",
        "Where is order A-1001?",
        "--env",
        f"STIGMER_LLM_BASE_URL={world.url}/v1",
        "-o",
        "json",
        check=False,
    )
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", (execution["error"], stack.log_tails())
    assert execution["output"] == world.reply


def test_an_mcp_server_that_exits_is_named_in_the_runs_error_on_the_stack(
    stack: Stack, world: World, tmp_path: Path
) -> None:
    script = tmp_path / "broken_mcp.py"
    script.write_text("import sys\nsys.exit('orders database unreachable: db.internal:5432')\n")
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: broken}}
spec:
  stdio: {{command: {sys.executable!r}, args: [{str(script)!r}], cwd: {str(tmp_path)!r}}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: broken-tools}}
spec:
  instructions: Use your tools.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  mcpServers: [{{name: broken}}]
""")
    done = stack.cli("agent", "execute", "broken-tools", "hi", "-o", "json", check=False)
    execution = json.loads(done.stdout)
    assert execution["phase"] == "FAILED", execution
    detail = execution["error"]["detail"]
    assert "MCP server broken failed to start" in detail
    assert "orders database unreachable: db.internal:5432" in detail
    assert f"{sys.executable} {script}" in detail and f"in folder {tmp_path}" in detail


def test_a_session_workspace_survives_a_restarted_agent_worker(stack: Stack, world: World) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: scribe}}
spec:
  instructions: Keep notes.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  tools: [files]
""")
    first = json.loads(
        stack.cli("agent", "execute", "scribe", "WORKSPACE write", "--session", "notes", "-o", "json").stdout
    )
    assert first["phase"] == "SUCCEEDED", first
    assert first["output"] == "tool said: wrote 13 bytes to notes.txt"
    listed = json.loads(stack.cli("execution", "files", first["id"], "-o", "json").stdout)
    assert listed == [{"path": "notes.txt", "size": 13}]
    # The worker goes away between the turns; the supervisor starts a new one.
    old_pid = stack.pid("agent-runner")
    assert old_pid is not None
    os.kill(old_pid, 9)
    wait_for(lambda: stack.pid("agent-runner") not in (None, old_pid), 60, "the restarted agent worker")
    second = json.loads(
        stack.cli("agent", "execute", "scribe", "WORKSPACE read", "--session", "notes", "-o", "json").stdout
    )
    assert second["phase"] == "SUCCEEDED", second
    assert second["output"] == "tool said: from turn one"
    assert _scheduled_activities(stack, second["id"]).count("stigmer.agent.tool") == 1


def test_a_killed_agent_worker_resumes_without_repeating_finished_model_requests(
    stack: Stack, world: World
) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: adder}}
spec:
  instructions: Ask the counter.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  subAgents: [{{name: counter, instructions: SUBAGENT that adds numbers.}}]
""")
    old_pid = stack.pid("agent-runner")
    assert old_pid is not None
    execution_id = (
        stack.cli("agent", "execute", "adder", "add 2 and 3", "--detach").stdout.strip().splitlines()[-1]
    )
    # The tool ran and the model is answering the request that carries its result: kill the worker.
    wait_for(lambda: world.count("chat:add:after-tool") == 1, 60, "the model request after the tool call")
    os.kill(old_pid, 9)
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 90)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == "2 + 3 = 5"
    assert world.count("chat:add:first") == 1  # the finished first model request was not sent again
    assert world.count("chat:sub") == 1  # nor was the finished tool call (a sub-agent's model request)
    assert world.count("chat:add:after-tool") == 2  # only the request in flight was
    assert stack.pid("agent-runner") not in (None, old_pid)
    # Each model request and the tool call are activities of their own in the workflow's history.
    assert _scheduled_activities(stack, execution_id) == [
        "stigmer.agent.start",
        "stigmer.agent.model",
        "stigmer.agent.tool",
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]


def test_an_agent_worker_killed_during_a_tool_call_resumes_with_that_call_only(
    stack: Stack, world: World
) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: slow-adder}}
spec:
  instructions: Ask the counter.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  subAgents: [{{name: counter, instructions: SUBAGENT that adds numbers SLOWly.}}]
""")
    old_pid = stack.pid("agent-runner")
    assert old_pid is not None
    execution_id = (
        stack.cli("agent", "execute", "slow-adder", "add 4 and 5", "--detach").stdout.strip().splitlines()[-1]
    )
    # The tool call (a sub-agent, whose own model request is slow) is running: kill the worker.
    wait_for(lambda: world.count("chat:slowsub") == 1, 60, "the tool call")
    os.kill(old_pid, 9)
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 90)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == "4 + 5 = 9"
    assert world.count("chat:add45:first") == 1  # the finished model request was not sent again
    assert world.count("chat:slowsub") == 2  # the interrupted tool call was made once more
    assert world.count("chat:add45:after-tool") == 1  # the request after it, once
    assert stack.pid("agent-runner") not in (None, old_pid)
    history = _history(stack, execution_id)
    assert _activity_types(history) == [
        "stigmer.agent.start",
        "stigmer.agent.model",
        "stigmer.agent.tool",
        "stigmer.agent.model",
        "stigmer.agent.finish",
    ]
    # The tool activity's recorded attempt is the second one; the model requests' the first.
    attempts = [
        (event["activityTaskStartedEventAttributes"].get("attempt", 1))
        for event in history["events"]
        if "activityTaskStartedEventAttributes" in event
    ]
    assert attempts == [1, 1, 2, 1, 1]
    # The Backend got the tool's progress from the activity, its call reported once.
    log = [
        json.loads(line)
        for line in stack.cli("execution", "logs", execution_id, "-o", "json").stdout.splitlines()
    ]
    assert [e["type"] for e in log if e["type"].startswith("tool.")] == ["tool.call", "tool.result"]


def _history(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The Temporal history of an execution's workflow, as JSON."""
    history: dict[str, Any] = temporal_json(
        f"127.0.0.1:{stack.temporal_port}", "workflow", "show", "-w", execution_id
    )
    return history


def _activity_types(history: dict[str, Any]) -> list[str]:
    return [
        event["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for event in history["events"]
        if "activityTaskScheduledEventAttributes" in event
    ]


def _scheduled_activities(stack: Stack, execution_id: str) -> list[str]:
    return _activity_types(_history(stack, execution_id))


def test_a_workflow_calls_an_agent_and_runs_a_sub_workflow_as_child_executions(
    stack: Stack, world: World
) -> None:
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: helper}}
spec:
  instructions: Help.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: shout}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: shout, version: 1.0.0}}
  do:
    - up:
        set: {{loud: '${{ .text | ascii_upcase }}'}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: delegate}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: delegate, version: 1.0.0}}
  do:
    - ask:
        call: agent
        with: {{agent: helper, message: say hello}}
    - louder:
        run:
          workflow: {{namespace: demo, name: shout, version: 1.0.0, input: {{text: '${{ . }}'}}}}
""")
    done = stack.cli("run", "delegate", "-o", "json")
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", done.stdout + done.stderr
    assert execution["output"] == {"loud": world.reply.upper()}
    listed = json.loads(stack.cli("execution", "list", "-o", "json").stdout)
    children = {
        (c["kind"], c["target"]["name"], c["phase"])
        for c in listed
        if c["target"]["name"] in ("helper", "shout")
    }
    assert children == {
        ("AgentExecution", "helper", "SUCCEEDED"),
        ("WorkflowExecution", "shout", "SUCCEEDED"),
    }
    # Both are Temporal child workflows of the parent's workflow, id = execution id, each on the
    # task queue of its kind.
    for name, queue in (("shout", "stigmer-workflows"), ("helper", "stigmer-agents")):
        child = next(c["id"] for c in listed if c["target"]["name"] == name)
        info = describe_workflow(stack, child)["workflowExecutionInfo"]
        assert info["parentExecution"]["workflowId"] == execution["id"], name
        assert info["taskQueue"] == queue
        assert info["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


@pytest.mark.parametrize("kind", ["workflow", "agent"])
def test_cancelling_a_parent_cancels_its_child_workflow_and_both_executions(
    stack: Stack, world: World, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world, "slow_chat", 20.0)
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: slow-child}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: slow-child, version: 1.0.0}}
  do:
    - nap:
        wait: {{minutes: 10}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: slow-agent}}
spec:
  instructions: Take your time.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/slow/v1}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: slow-parent-{kind}}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: slow-parent-{kind}, version: 1.0.0}}
  do:
    - sub:
        {
        "run: {workflow: {namespace: demo, name: slow-child, version: 1.0.0}}"
        if kind == "workflow"
        else "call: agent" + chr(10) + "        with: {agent: slow-agent, message: hello}"
    }
""")
    target = "slow-child" if kind == "workflow" else "slow-agent"
    parent = stack.cli("run", f"slow-parent-{kind}", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(parent, {"RUNNING"}, 30)

    def child_running() -> str | None:
        listed = json.loads(stack.cli("execution", "list", "-o", "json").stdout)
        return next(
            (c["id"] for c in listed if c["target"]["name"] == target and c["phase"] == "RUNNING"),
            None,
        )

    child = wait_for(child_running, 30, "the child execution to run", every=0.3)
    stack.cli("execution", "cancel", parent)

    def workflows_cancelled() -> bool:
        return all(
            describe_workflow(stack, wid)["workflowExecutionInfo"]["status"]
            == "WORKFLOW_EXECUTION_STATUS_CANCELED"
            for wid in (parent, child)
        )

    try:
        wait_for(workflows_cancelled, 30, "both Temporal workflows to be cancelled", every=0.3)
    except AssertionError as exc:
        statuses = {
            wid: describe_workflow(stack, wid)["workflowExecutionInfo"]["status"] for wid in (parent, child)
        }
        raise AssertionError(f"{exc}: {statuses}; child {stack.phase(child)}") from None
    wait_for(lambda: stack.phase(child) == "CANCELLED", 30, "the child execution to be CANCELLED")
    assert stack.phase(parent) == "CANCELLED"


def test_listen_gets_events_sent_to_the_execution(stack: Stack) -> None:
    stack.apply("""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waits-for-payment}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: waits-for-payment, version: 1.0.0}
  do:
    - paid:
        listen:
          to:
            one: {with: {type: com.acme.paid}}
    - total:
        set: {amount: '${ .[0].amount }'}
""")
    execution_id = stack.cli("run", "waits-for-payment", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(execution_id, {"RUNNING"}, 30)
    stack.cli("execution", "send-event", execution_id, "com.acme.paid", "--data", '{"amount": 42}')
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 30)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == {"amount": 42}


def test_an_upstream_listen_hears_send_event_id(stack: Stack) -> None:
    """Issue 23: upstream's `listen` for a signal id, converted at apply, answered with
    `send-event --id` (upstream's flag) on the full stack; `$data` is upstream's dialect."""
    stack.apply("""\
apiVersion: agentic.stigmer.ai/v1
kind: Workflow
metadata: {name: upstream-gate, org: acme}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: upstream-gate, version: 1.0.0}
  tasks:
    - {name: hold, kind: listen, task_config: {to: {mode: one, signals: [{id: approve, type: signal}]}}}
    - {name: done, kind: set_vars, task_config: {variables: {by: '${ $data.hold[0].by }'}}}
""")
    execution_id = stack.cli("run", "workflow", "upstream-gate", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(execution_id, {"RUNNING"}, 30)
    stack.cli("execution", "send-event", execution_id, "--id", "approve", "--data", '{"by": "ann"}')
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 30)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == {"by": "ann"}


def test_event_send_wakes_a_listen_and_starts_schedule_on_runs_on_temporal(stack: Stack) -> None:
    """Issue 21: `stigmer event send` against the full stack (PublishEvent): the waiting run's
    Temporal workflow gets the event as a signal; a `schedule.on` workflow starts on Temporal."""
    stack.apply("""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waits-for-shipping}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: waits-for-shipping, version: 1.0.0}
  do:
    - shipped:
        listen:
          to:
            one: {with: {type: com.acme.shipped}}
    - carrier:
        set: {carrier: '${ .[0].carrier }'}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: on-shipped}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: on-shipped, version: 1.0.0}
  schedule:
    on:
      one: {with: {type: com.acme.shipped}}
  do:
    - note:
        set: {noted: '${ .data.carrier }'}
""")
    execution_id = stack.cli("run", "waits-for-shipping", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(execution_id, {"RUNNING"}, 30)
    sent = stack.cli(
        "event", "send", "--type", "com.acme.shipped", "--source", "https://shop.example",
        "--data", '{"carrier": "ups"}', "-o", "json",
    )  # fmt: skip
    result = json.loads(sent.stdout)
    assert result["delivered"] == [execution_id]
    [started] = result["started"]
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 30)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == {"carrier": "ups"}
    noted = stack.wait_phase(started["id"], {"SUCCEEDED", "FAILED"}, 30)
    assert noted["phase"] == "SUCCEEDED", noted
    assert noted["output"] == {"noted": "ups"}


def test_a_signed_webhook_and_a_posted_cloud_event_run_on_temporal(stack: Stack) -> None:
    """Issue 21: `POST /hooks/{name}` on the stack's HTTP listener starts the trigger's workflow on
    Temporal; `POST /events` (binary mode, the admin token) wakes a waiting run's listen there."""
    import hashlib
    import hmac

    import httpx
    from stigmer.server import admin_token_path

    key = "whsec-fullstack-0123456789"
    stack.cli("secret", "set", "FS_HOOK_KEY", input=key)
    stack.apply("""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: hooked}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: hooked, version: 1.0.0}
  do:
    - keep: {set: {ref: '${ .ref }'}}
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: pushes}
spec:
  target: {kind: Workflow, name: hooked}
  secret: FS_HOOK_KEY
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waits-for-review}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: waits-for-review, version: 1.0.0}
  do:
    - reviewed:
        listen:
          to:
            one: {with: {type: com.acme.reviewed}}
    - by:
        set: {by: '${ .[0].by }'}
""")
    base = f"http://127.0.0.1:{stack.http_port}"
    body = b'{"ref": "refs/heads/main"}'
    signature = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    hooked = httpx.post(
        f"{base}/hooks/pushes",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": signature},
        timeout=30,
    )
    assert hooked.status_code == 202, hooked.text
    done = stack.wait_phase(hooked.json()["id"], {"SUCCEEDED", "FAILED"}, 30)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == {"ref": "refs/heads/main"}
    assert done["labels"] == {"stigmer.ai/trigger": "pushes"}

    execution_id = stack.cli("run", "waits-for-review", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(execution_id, {"RUNNING"}, 30)
    posted = httpx.post(
        f"{base}/events",
        content=b'{"by": "ann"}',
        headers={
            "authorization": f"Bearer {admin_token_path(stack.home).read_text().strip()}",
            "ce-specversion": "1.0",
            "ce-id": "r-1",
            "ce-source": "https://review.example",
            "ce-type": "com.acme.reviewed",
            "content-type": "application/json",
        },
        timeout=30,
    )
    assert posted.status_code == 202, posted.text
    assert posted.json()["delivered"] == [execution_id]
    reviewed = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 30)
    assert reviewed["phase"] == "SUCCEEDED", reviewed
    assert reviewed["output"] == {"by": "ann"}


temporal_json = temporal_cli_json


def describe_workflow(stack: Stack, workflow_id: str) -> Any:
    """``temporal workflow describe`` of one workflow on the stack's Temporal, as JSON."""
    return temporal_json(f"127.0.0.1:{stack.temporal_port}", "workflow", "describe", "-w", workflow_id)


def test_cancel_cancels_the_temporal_workflow(stack: Stack) -> None:
    stack.apply("""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: sleepy}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: sleepy, version: 1.0.0}
  do:
    - nap:
        wait: {minutes: 10}
""")
    execution_id = stack.cli("run", "sleepy", "--detach").stdout.strip().splitlines()[-1]
    stack.wait_phase(execution_id, {"RUNNING"}, 30)
    wait_for(lambda: stack.execution(execution_id)["tasks"], 30, "the wait to start", every=0.3)
    stack.cli("execution", "cancel", execution_id)

    def cancelled() -> bool:
        status = describe_workflow(stack, execution_id)["workflowExecutionInfo"]["status"]
        return bool(status == "WORKFLOW_EXECUTION_STATUS_CANCELED")

    wait_for(cancelled, 30, "the Temporal workflow to be cancelled", every=0.3)
    ended = stack.execution(execution_id)
    assert ended["phase"] == "CANCELLED"
    assert [(t["name"], t["phase"]) for t in ended["tasks"]] == [("nap", "CANCELLED")]  # not RUNNING


def test_the_approval_prompt_on_the_stack(stack: Stack, world: World) -> None:
    """On a terminal: the call, WAITING_APPROVAL, then the prompt (as in Lite); a decision made
    elsewhere ends the prompt; Ctrl-C at the prompt detaches with the hint and answers nothing."""
    import pexpect

    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: items}}
spec:
  stdio: {{command: {sys.executable!r}, args: [{str(MCP_TEST_SERVER)!r}]}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: janitor}}
spec:
  instructions: Delete what you are asked to.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  mcpServers: [{{name: items, tools: [delete_item], requireApproval: [delete_item]}}]
""")

    def sigint_default() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    def prompting() -> tuple[Any, str]:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "stigmer.cli", "agent", "execute", "janitor", "delete item 42"],
            env=stack.env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 200),
            # A shell without job control starts background jobs with SIGINT ignored, and children
            # inherit that; give the CLI the disposition a terminal would, so Ctrl-C reaches it.
            preexec_fn=sigint_default,
        )
        child.expect(r"(aex_\w+) started")
        assert isinstance(child.match, re.Match)
        execution_id = str(child.match.group(1))
        child.expect_exact("delete_item(")
        child.expect_exact("WAITING_APPROVAL")
        child.expect_exact("approve? [y/N]")
        return child, execution_id

    child, execution_id = prompting()
    stack.cli("execution", "approve", execution_id)
    child.expect_exact("approved elsewhere", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 60)["phase"] == "SUCCEEDED"

    child, execution_id = prompting()
    child.sendintr()
    child.expect_exact(f"stigmer execution approve {execution_id}", timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert stack.phase(execution_id) == "WAITING_APPROVAL"
    stack.cli("execution", "reject", execution_id)


def test_secrets_reach_the_request_but_never_the_temporal_history(stack: Stack, world: World) -> None:
    secret = "sk-fullstack-5ec12e7-value"
    stack.cli("secret", "set", "PARTNER_TOKEN", input=secret + "\n")
    path = f"/partner-{time.monotonic_ns()}"
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: partner-call}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: partner-call, version: 1.0.0}}
  use: {{secrets: [PARTNER_TOKEN]}}
  do:
    - call:
        call: http
        with:
          method: get
          endpoint: {world.url}{path}
          headers: {{Authorization: '${{ "Bearer " + $secrets.PARTNER_TOKEN }}'}}
""")
    done = stack.cli("run", "partner-call", "-o", "json")
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", done.stdout + done.stderr
    assert f"Bearer {secret}" in world.auth
    assert world.count(path) == 1
    history = temporal_json(f"127.0.0.1:{stack.temporal_port}", "workflow", "show", "-w", execution["id"])
    text = history_text(history)
    assert "stigmer-secret:PARTNER_TOKEN" in text  # the reference travelled, the value did not
    assert secret not in text
    logs = sorted((stack.home / "local").glob("*.log"))
    assert logs, "the stack wrote no logs to scan"
    for log in logs:
        assert secret not in log.read_text(encoding="utf-8", errors="replace"), log.name


def test_encoded_forms_of_a_secret_never_reach_temporal_or_the_store(stack: Stack, world: World) -> None:
    """The masking attacks on the full stack: a workflow hands a secret to jq's encoders and to a
    header HTTP cannot carry; the Temporal database, the store, their WALs and every log hold no
    form of it (the attack suite's scanner, over the whole stack home)."""
    from .attacks.conftest import find_leaks

    secret = f"sk-proj-Fs{time.monotonic_ns()}-AbCdEfGhIjKlMnOp"
    pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnz\nj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\n-----END KEY-----"
    stack.cli("secret", "set", "FS_TOKEN", input=secret)
    stack.cli("secret", "set", "FS_PEM", input=pem)
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: fs-encodings}}
spec:
  document: {{dsl: 1.0.0, namespace: attack, name: fs-encodings, version: 1.0.0}}
  use: {{secrets: [FS_TOKEN, FS_PEM]}}
  do:
    - encode:
        set:
          b64: '${{ $secrets.FS_TOKEN | @base64 }}'
          uri: '${{ $secrets.FS_TOKEN | @uri }}'
          json: '${{ $secrets.FS_PEM | tojson }}'
          pemb64: '${{ $secrets.FS_PEM | @base64 }}'
    - echo:
        call: http
        with:
          method: get
          endpoint: {world.url}/echo-{time.monotonic_ns()}
          query: {{token: '${{ $secrets.FS_TOKEN }}'}}
    - header:
        call: http
        with:
          method: get
          endpoint: {world.url}/pem
          headers: {{X-Key: '${{ $secrets.FS_PEM }}'}}
""")
    done = stack.cli("run", "fs-encodings", "-o", "json", check=False)
    execution = json.loads(done.stdout)
    assert execution["phase"] == "FAILED", done.stdout  # the PEM cannot travel in a header
    assert "X-Key" in json.dumps(execution["error"])  # the error names the header, not its value
    history = temporal_json(f"127.0.0.1:{stack.temporal_port}", "workflow", "show", "-w", execution["id"])
    for value in (secret, pem):
        leaks = find_leaks(value, paths=[stack.home], texts=[done.stdout, done.stderr, json.dumps(history)])
        assert leaks == [], leaks


def test_a_killed_workflow_worker_is_restarted_and_the_run_resumes_without_repeating_calls(
    stack: Stack, world: World
) -> None:
    tag = time.monotonic_ns()
    first, second = f"/before-crash-{tag}", f"/after-crash-{tag}"
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: crashy}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: crashy, version: 1.0.0}}
  do:
    - first:
        call: http
        with: {{method: get, endpoint: {world.url}{first}}}
    - pause:
        wait: {{seconds: 4}}
    - second:
        call: http
        with: {{method: get, endpoint: {world.url}{second}}}
""")
    old_pid = stack.pid("workflow-runner")
    execution_id = stack.cli("run", "crashy", "--detach").stdout.strip().splitlines()[-1]
    wait_for(lambda: world.count(first) == 1, 30, "the first call")
    time.sleep(0.5)  # the durable timer is now started
    assert old_pid is not None
    os.kill(old_pid, 9)
    wait_for(
        lambda: stack.pid("workflow-runner") not in (None, old_pid),
        30,
        "the supervisor to restart the worker",
    )
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 60)
    assert done["phase"] == "SUCCEEDED", done
    assert world.count(first) == 1  # not repeated after the crash
    assert world.count(second) == 1
    log = stack.cli("local", "logs", "--component", "supervisor").stdout
    assert "workflow-runner exited with code -9" in log
    assert "restarting workflow-runner" in log


def test_a_workflow_worker_killed_during_an_http_call_is_restarted_and_only_that_call_is_repeated(
    stack: Stack, world: World
) -> None:
    tag = time.monotonic_ns()
    first, slow = f"/before-crash-http-{tag}", f"/slow-during-crash-{tag}"
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: crashy-http}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: crashy-http, version: 1.0.0}}
  do:
    - first:
        call: http
        with: {{method: get, endpoint: {world.url}{first}}}
        export: {{as: '${{ {{first: .count}} }}'}}
    - slow:
        call: http
        with: {{method: get, endpoint: {world.url}{slow}}}
        output: {{as: '${{ {{first: $context.first, slow: .path}} }}'}}
""")
    old_pid = stack.pid("workflow-runner")
    assert old_pid is not None
    execution_id = stack.cli("run", "crashy-http", "--detach").stdout.strip().splitlines()[-1]
    wait_for(lambda: world.count(slow) == 1, 30, "the slow call to be in flight")
    assert world.count(first) == 1
    os.kill(old_pid, 9)  # the slow endpoint answers 3 s after the request arrived
    wait_for(
        lambda: stack.pid("workflow-runner") not in (None, old_pid),
        30,
        "the supervisor to restart the worker",
    )
    done = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 90)
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == {"first": 1, "slow": slow}
    assert world.count(first) == 1  # completed before the crash: not repeated
    # The interrupted call's activity was lost with its worker and retried once the heartbeat
    # timed out: at-least-once, so that request was made twice.
    assert world.count(slow) == 2
    log = stack.cli("local", "logs", "--component", "supervisor").stdout
    assert "workflow-runner exited with code -9" in log


def test_retry_of_a_run_failed_at_its_third_call_repeats_none_of_the_first_two(
    stack: Stack, world: World
) -> None:
    tag = time.monotonic_ns()
    paths = [f"/retry-{tag}-1", f"/retry-{tag}-2", f"/fail-once-{tag}-3", f"/retry-{tag}-4"]
    calls = "\n".join(
        f"    - call{n}:\n        call: http\n        with: {{method: get, endpoint: {world.url}{path}}}"
        for n, path in enumerate(paths, 1)
    )
    stack.apply(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: four-calls}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: demo, name: four-calls, version: 1.0.0}\n  do:\n" + calls + "\n"
    )
    failed = stack.cli("run", "four-calls", "-o", "json", check=False)
    first = json.loads(failed.stdout)
    assert first["phase"] == "FAILED", first
    assert [world.count(p) for p in paths] == [1, 1, 1, 0]
    retried = stack.cli("execution", "retry", first["id"], "-o", "json", check=False)
    done = json.loads(retried.stdout)
    assert done["phase"] == "SUCCEEDED", done
    assert done["resumedFrom"] == first["id"] and done["id"] != first["id"]
    assert [world.count(p) for p in paths] == [1, 1, 2, 1]  # only the failed call again, then the 4th


def test_retry_of_an_agent_run_failed_in_its_second_turn_keeps_the_first(stack: Stack, world: World) -> None:
    """Turn 1 asks for an approval; after it, the model request of turn 2 fails (400). `stigmer
    execution retry` continues on Temporal after turn 1: turn 2 starts over (its call is asked for
    again), turn 1's model request is not sent again."""
    stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: items}}
spec:
  stdio: {{command: {sys.executable!r}, args: [{str(MCP_TEST_SERVER)!r}]}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: janitor}}
spec:
  instructions: Delete what you are asked to.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1, params: {{maxRetries: 0}}}}
  mcpServers: [{{name: items, tools: [delete_item], requireApproval: [delete_item]}}]
""")
    execution_id = (
        stack.cli("agent", "execute", "janitor", "delete item 42 (FAIL AFTER TOOL)", "--detach")
        .stdout.strip()
        .splitlines()[-1]
    )
    waiting = stack.wait_phase(execution_id, {"WAITING_APPROVAL", "FAILED", "SUCCEEDED"}, 60)
    assert waiting["phase"] == "WAITING_APPROVAL", waiting
    stack.cli("execution", "approve", execution_id, check=False)  # follows the run: it fails
    failed = stack.wait_phase(execution_id, {"SUCCEEDED", "FAILED"}, 60)
    assert failed["phase"] == "FAILED", failed
    assert (world.count("chat:fail:first"), world.count("chat:fail:after-tool")) == (1, 1)
    retry_id = stack.cli("execution", "retry", execution_id, "--detach").stdout.strip().splitlines()[-1]
    assert retry_id != execution_id
    asked = stack.wait_phase(retry_id, {"WAITING_APPROVAL", "FAILED", "SUCCEEDED"}, 60)
    assert asked["phase"] == "WAITING_APPROVAL", asked  # the call runs again: asked again
    approved = stack.cli("execution", "approve", retry_id, "-o", "json", check=False)
    done = stack.wait_phase(retry_id, {"SUCCEEDED", "FAILED"}, 60)
    assert done["phase"] == "SUCCEEDED", (done, approved.stderr)
    assert done["output"] == "Item 42 is gone."
    assert done["resumedFrom"] == execution_id
    # turn 1's model request was not sent again; turn 2's was (it started over)
    assert (world.count("chat:fail:first"), world.count("chat:fail:after-tool")) == (1, 2)


def test_a_schedule_fires_on_the_stack_and_stops_when_paused(stack: Stack) -> None:
    stack.apply("""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: every-two}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: every-two, version: 1.0.0}
  schedule: {every: {seconds: 2}}
  do:
    - beat: {set: {beat: true}}
""")

    def runs() -> list[dict[str, Any]]:
        listed = stack.cli("execution", "list", "-l", "stigmer.ai/schedule=every-two", "-o", "json").stdout
        found: list[dict[str, Any]] = json.loads(listed)
        return found

    wait_for(lambda: any(r["phase"] == "SUCCEEDED" for r in runs()), 60, "a scheduled run to succeed")
    # one Temporal Schedule per Stigmer schedule
    listed = subprocess.run(
        [temporal_binary(), "schedule", "list", "--address", stack.temporal_address],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "stigmer-schedule-sch_" in listed
    assert stack.cli("schedule", "pause", "every-two").stdout.strip() == "schedule/every-two paused"
    time.sleep(1.0)  # a fire under way when paused may still land
    settled = runs()
    slots = [r["labels"]["stigmer.ai/fire-time"] for r in settled]
    assert slots and len(slots) == len(set(slots))  # each slot once
    time.sleep(3)
    assert len(runs()) == len(settled)  # paused: nothing more
    described = json.loads(stack.cli("schedule", "describe", "every-two", "-o", "json").stdout)
    assert described["enabled"] is False and described["lastRuns"]


def test_an_agent_remembers_across_sessions_on_the_stack(stack: Stack) -> None:
    """Memory tools are activities of a worker holding a runner token: the worker writes and
    reads the memories of the run it holds, through the server."""
    from stigmer.testing import ScriptedLLM, call, text

    with ScriptedLLM() as llm:
        stack.apply(f"""\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: memo}}
spec:
  instructions: Remember what matters.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}
  memory: {{enabled: true}}
""")
        llm.add(call("remember", fact="The product launch is on March 3."), text("Noted."))
        first = json.loads(
            stack.cli("agent", "execute", "memo", "remember the launch date", "-o", "json").stdout
        )
        assert first["phase"] == "SUCCEEDED", first
        llm.add(text("On March 3."))
        second = json.loads(
            stack.cli("agent", "execute", "memo", "When is the product launch?", "-o", "json").stdout
        )
        assert second["phase"] == "SUCCEEDED", second
        assert second["session"] != first["session"]
        assert "The product launch is on March 3." in llm.requests[-1]["messages"][0]["content"]
    listed = json.loads(stack.cli("memory", "list", "--agent", "memo", "-o", "json").stdout)
    assert [m["fact"] for m in listed] == ["The product launch is on March 3."]
    assert listed[0]["provenance"]["executionId"] == first["id"]
    assert listed[0]["author"]  # the worker's token wrote it


def test_stop_leaves_no_process_behind_and_selects_local(stack: Stack) -> None:
    assert stack.processes(), "the stack should be running before stop"
    stopped = stack.cli("local", "stop")
    assert "context 'local' selected" in stopped.stderr
    wait_for(lambda: not stack.processes(), 15, "every stack process to exit")
    assert all(r["state"] == "stopped" and r["pid"] is None for r in stack.status())
    assert json.loads(stack.cli("context", "show", "-o", "json").stdout)["name"] == "local"
    assert not list((stack.home / "local").glob("*.pid"))


def test_a_port_in_use_is_named_and_stale_pid_files_are_cleared(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "local").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "local" / "supervisor.pid").write_text(str(dead.pid))
    busy = Stack(home)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy.temporal_port))
        holder.listen()
        failed = busy.cli(
            "local",
            "start",
            "--port",
            str(busy.server_port),
            "--temporal-port",
            str(busy.temporal_port),
            check=False,
        )
    assert failed.returncode == 1
    assert f"port {busy.temporal_port} (Temporal) is already in use" in failed.stderr
    assert "stale pid files of supervisor" in failed.stderr
    assert not (home / "local" / "supervisor.pid").exists()
    assert "Traceback" not in failed.stderr
    assert not busy.processes()


def test_a_killed_supervisor_leaves_components_that_status_shows_and_stop_ends(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    orphaned = Stack(home)
    try:
        orphaned.start()
        supervisor = int((home / "local" / "supervisor.pid").read_text())
        os.kill(supervisor, 9)
        wait_for(
            lambda: all(r["state"] == "unsupervised" for r in orphaned.status()),
            15,
            "unsupervised components",
        )
        again = orphaned.cli("local", "start", "--port", str(orphaned.server_port), check=False)
        assert again.returncode == 1
        assert "still run without their supervisor" in again.stderr
        assert "run `stigmer local stop` first" in again.stderr
        orphaned.cli("local", "stop")
        wait_for(lambda: not orphaned.processes(), 15, "every stack process to exit")
        assert all(r["state"] == "stopped" for r in orphaned.status())
    finally:
        orphaned.force_cleanup()
