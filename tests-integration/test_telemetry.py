"""OpenTelemetry traces received by a real OTLP receiver (Arize Phoenix, ``stigmer.testing``'s
``otlp`` fixture), in Lite and on the full stack; no secret value in any exported span; and the
server's Prometheus ``/metrics`` and ``/healthz``.

Each test sends its spans to a Phoenix project of its own (``openinference.project.name``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import (
    MCP_SERVER,
    FullstackWorld,
    LocalStack,
    OtlpReceiver,
    cli_env,
    free_port,
    temporal_cli_json,
)

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.timeout(300)

SECRET = "sk-otel-5ecret-9f8e7d6c5b4a"


def _env(otlp: OtlpReceiver, project: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def _manifests(world: FullstackWorld) -> str:
    return f"""\
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: items}}
spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: helper}}
spec:
  instructions: Delete what you are asked to.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {world.url}/v1}}
  mcpServers: [{{name: items, tools: [delete_item]}}]
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: traced}}
spec:
  document: {{dsl: 1.0.0, namespace: t, name: traced, version: 1.0.0}}
  use: {{secrets: [API_KEY]}}
  do:
    - fetch:
        call: http
        with:
          method: get
          endpoint:
            uri: '${{ "{world.url}/echo?key=" + $secrets.API_KEY }}'
            authentication:
              bearer:
                token: '${{ $secrets.API_KEY }}'
    - ask:
        call: agent
        with:
          agent: helper
          message: '${{ "delete item 42, the key is " + $secrets.API_KEY }}'
"""


def _names(spans: list[dict[str, Any]]) -> list[str]:
    return [s["name"] for s in spans]


def _has_trace(spans: list[dict[str, Any]]) -> bool:
    names = _names(spans)
    return (
        any(n.startswith("WorkflowExecution traced") for n in names)
        and any(n.startswith("chat ") for n in names)
        and any(n.startswith("execute_tool delete_item") or n == "running tool" for n in names)
        and "HTTP GET" in names
        and "task fetch" in names
        and "task ask" in names
    )


def _assert_one_trace_without_secret(spans: list[dict[str, Any]]) -> None:
    by_name = {s["name"]: s for s in spans}
    root = next(s for s in spans if s["name"].startswith("WorkflowExecution traced"))
    assert root["attributes"]["stigmer.target.kind"] == "Workflow"
    assert root["attributes"]["stigmer.target.name"] == "traced"
    assert root["attributes"]["stigmer.execution.id"].startswith("wex_")
    # One trace: every span of the run, down to the agent's model request and tool call.
    trace_ids = {s["context"]["trace_id"] for s in spans}
    assert trace_ids == {root["context"]["trace_id"]}, sorted(_names(spans))
    chat = next(s for s in spans if s["name"].startswith("chat "))
    assert chat["attributes"]["gen_ai.request.model"] == "stand-in"
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert chat["attributes"]["gen_ai.usage.output_tokens"] == 5
    http = by_name["HTTP GET"]
    assert http["attributes"]["http.response.status_code"] == 200
    assert "?" not in http["attributes"]["url.full"]  # the query (which held the key) is left out
    assert by_name["task fetch"]["attributes"]["stigmer.task.kind"] == "call"
    # No secret value anywhere in what the receiver got (names, attributes, events).
    exported = json.dumps(spans)
    assert SECRET not in exported
    assert SECRET[:12] not in exported


@pytest.fixture
def world() -> Iterator[FullstackWorld]:
    with FullstackWorld() as stand_in:
        yield stand_in


def test_a_lite_run_sends_its_trace_to_an_otlp_receiver_without_secrets(
    stigmer: StigmerCli, otlp: OtlpReceiver, world: FullstackWorld, tmp_path: Path
) -> None:
    manifest = tmp_path / "traced.yaml"
    manifest.write_text(_manifests(world))
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    project = f"lite-{uuid.uuid4().hex[:8]}"
    done = stigmer(
        "run", "traced", "--secret", "API_KEY", "-o", "json", input=SECRET + "\n", env=_env(otlp, project)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    spans = otlp.wait_for_spans(_has_trace, project=project)
    _assert_one_trace_without_secret(spans)
    agent = next(s for s in spans if s["name"].startswith("AgentExecution helper"))
    assert agent["attributes"]["stigmer.execution.parent_id"].startswith("wex_")
    # In Lite a task's span is current while it runs: its HTTP call and its child run nest in it.
    by_id = {s["context"]["span_id"]: s["name"] for s in spans}
    assert by_id[next(s for s in spans if s["name"] == "HTTP GET")["parent_id"]] == "task fetch"
    assert by_id[agent["parent_id"]] == "task ask"
    assert by_id[next(s for s in spans if s["name"].startswith("invoke_agent"))["parent_id"]] == agent["name"]


def test_nothing_is_exported_without_the_otel_variables(
    stigmer: StigmerCli, otlp: OtlpReceiver, world: FullstackWorld, tmp_path: Path
) -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT not one span leaves (the receiver's default project)."""
    before = len(otlp.spans())
    manifest = tmp_path / "traced.yaml"
    manifest.write_text(_manifests(world))
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    done = stigmer("run", "traced", "--secret", "API_KEY", "-o", "json", input=SECRET + "\n")
    assert json.loads(done.stdout)["phase"] == "SUCCEEDED", done.stdout + done.stderr
    probe = "import sys, stigmer.cli._app; sys.exit(any(m.startswith('opentelemetry') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
    time.sleep(1)
    assert len(otlp.spans()) == before


# --------------------------------------------------------------------------- the full stack
@pytest.fixture(scope="module")
def traced_stack(
    tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver
) -> Iterator[tuple[LocalStack, str]]:
    home = tmp_path_factory.mktemp("traced-stack") / "home"
    home.mkdir()
    project = f"stack-{uuid.uuid4().hex[:8]}"
    stack = LocalStack(home, extra_env=_env(otlp, project))
    try:
        stack.start()
        yield stack, project
    finally:
        stack.force_cleanup()


def test_a_run_on_the_full_stack_is_one_trace_across_the_server_and_both_workers(
    traced_stack: tuple[LocalStack, str], otlp: OtlpReceiver, world: FullstackWorld
) -> None:
    stack, project = traced_stack
    stack.apply(_manifests(world))
    done = stack.cli("run", "traced", "--secret", "API_KEY", "-o", "json", input=SECRET + "\n")
    execution = json.loads(done.stdout)
    assert execution["phase"] == "SUCCEEDED", done.stdout

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = _names(spans)
        return _has_trace(spans) and "RunWorkflow:stigmer.agent" in names

    spans = otlp.wait_for_spans(complete, project=project, timeout=60)
    _assert_one_trace_without_secret(spans)
    names = _names(spans)
    # the child agent execution ran on the agents' worker, as a child workflow in the same trace
    assert "StartChildWorkflow:stigmer.agent" in names
    assert "RunActivity:stigmer.agent.model" in names
    # the Temporal UI names the run's target: memo and search attributes
    info = temporal_cli_json(stack.temporal_address, "workflow", "describe", "--workflow-id", execution["id"])
    memo = json.dumps(info.get("workflowExecutionInfo", {}).get("memo", {}))
    assert "StigmerName" in memo
    listed = temporal_cli_json(stack.temporal_address, "workflow", "list", "--query", 'StigmerName="traced"')
    assert any(w.get("execution", {}).get("workflowId") == execution["id"] for w in listed)
    # and the server's /metrics counted the run and its child, as the workers reported them
    token = (stack.home / "tokens" / "admin").read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.http_port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        metrics = answer.read().decode()
    finished = 'stigmer_executions_finished_total{kind="WorkflowExecution",phase="SUCCEEDED",target="traced",target_kind="Workflow"} 1.0'
    assert finished in metrics
    assert (
        'stigmer_tokens_total{kind="AgentExecution",target="helper",target_kind="Agent",type="input"}'
        in metrics
    )
    assert SECRET not in metrics


def test_the_local_stack_serves_the_temporal_ui_and_lists_it_in_status(
    traced_stack: tuple[LocalStack, str],
) -> None:
    stack, _ = traced_stack
    rows = {r["name"]: r for r in stack.status()}
    ui = rows["temporal-ui"]
    assert ui["state"] == "running"
    assert ui["address"] == f"http://127.0.0.1:{stack.ui_port}"
    with urllib.request.urlopen(ui["address"], timeout=10) as page:
        assert page.status == 200
    text = stack.cli("local", "status").stdout
    assert f"http://127.0.0.1:{stack.ui_port}" in text
    metrics_row = rows["server-http"]
    assert metrics_row["address"] == f"http://127.0.0.1:{stack.http_port}"
    # the web console is served there too, and listed (issue 22)
    console = rows["console"]
    assert console["address"] == f"http://127.0.0.1:{stack.http_port}/console/"
    assert console["address"] in text
    with urllib.request.urlopen(console["address"] + "login", timeout=10) as page:
        assert page.status == 200 and 'name="token"' in page.read().decode()


# ------------------------------------------------------------------------------- /metrics
def test_the_server_serves_prometheus_metrics_with_a_token_and_healthz_without(
    stigmer: StigmerCli, stigmer_home: Path, world: FullstackWorld, tmp_path: Path
) -> None:
    from stigmer.testing import cli_env

    port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stigmer.cli",
            "server",
            "--listen",
            f"127.0.0.1:{port}",
            "--http-listen",
            f"127.0.0.1:{http_port}",
        ],
        env=cli_env(stigmer_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as health:
                    assert health.read() == b"ok\n"
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the HTTP listener did not come up"
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert denied.value.code == 401
        denied.value.close()
        token = (stigmer_home / "tokens" / "admin").read_text().strip()
        endpoint = f"grpc://127.0.0.1:{port}"
        login = stigmer("login", "--endpoint", endpoint, "--token", token, "--name", "srv")
        assert login.returncode == 0, login.stderr
        manifest = tmp_path / "hello.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: hello}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: hello, version: 1.0.0}\n"
            "  do:\n    - greet: {set: {hi: yes}}\n"
        )
        assert stigmer("apply", "-f", str(manifest)).returncode == 0
        ran = stigmer("run", "hello", "-o", "json")
        assert json.loads(ran.stdout)["phase"] == "SUCCEEDED", ran.stdout + ran.stderr
        request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            text = answer.read().decode()
        labels = 'kind="WorkflowExecution",phase="SUCCEEDED",target="hello",target_kind="Workflow"'
        assert f"stigmer_executions_finished_total{{{labels}}} 1.0" in text
        assert "stigmer_execution_duration_seconds_bucket{" in text
        assert "stigmer_execution_queue_seconds_count{" in text
        bad = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer not-a-token"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        server.terminate()
        server.wait(30)


def test_a_secret_a_library_puts_in_a_span_is_masked_on_export(otlp: OtlpReceiver, tmp_path: Path) -> None:
    """The exporter scrubs every span of the values registered with the process's redactor, even
    those that code other than Stigmer's puts in attributes, events or status text."""
    project = f"redact-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "leaky.py"
    script.write_text(
        f"""
from opentelemetry.trace import Status, StatusCode
from stigmer.core import default_redactor, flush_telemetry, start_span
default_redactor().register({SECRET!r})
with start_span("leaky", {{"prompt": "my key is {SECRET}", "ok": "plain"}}) as span:
    span.add_event("tool args", {{"args": "{{'token': '{SECRET}'}}"}})
    span.set_status(Status(StatusCode.ERROR, "failed with {SECRET}"))
flush_telemetry()
"""
    )
    env = {**cli_env(tmp_path), **_env(otlp, project)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spans = otlp.wait_for_spans(lambda found: any(s["name"] == "leaky" for s in found), project=project)
    leaky = next(s for s in spans if s["name"] == "leaky")
    assert leaky["attributes"]["ok"] == "plain"
    assert "my key is" in leaky["attributes"]["prompt"]
    assert SECRET not in json.dumps(spans)
