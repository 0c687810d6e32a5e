"""WorkflowRunner (Lite mode) against the real LocalBackend on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, Redactor, Runner, load_runner, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner

KEY = b"w" * 32
SECRET = "tok-9f8e7d6c5b4a"


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    try:
        yield store
    finally:
        await store.close()


async def apply_workflow(backend: Backend, name: str, body: str) -> None:
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def start(backend: Backend, name: str, input: Any = None, **secrets: str) -> str:
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    if input is not None:
        json_format.ParseDict(input, spec.input)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec, runtime_secrets=secrets))
    return created.metadata.id


async def event_log(backend: Backend, execution_id: str) -> list[execution_pb2.ExecutionEvent]:
    current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    out: list[execution_pb2.ExecutionEvent] = []
    if current.status.last_sequence == 0:
        return out
    stream = backend.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))
    try:
        async for event in stream:
            out.append(event)
            if event.sequence >= current.status.last_sequence:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


def output_of(execution: execution_pb2.Execution) -> Any:
    return json_format.MessageToDict(execution.status.output)


HELLO = """\
  document: {dsl: 1.0.0, namespace: demo, name: hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }', count: 3}
"""


async def test_the_plugin_entry_point_is_this_runner() -> None:
    runner = load_runner("workflow")
    assert isinstance(runner, WorkflowRunner)
    assert isinstance(runner, Runner)


async def test_runs_a_workflow_to_success_with_numbered_events(backend: Backend) -> None:
    await apply_workflow(backend, "hello", HELLO)
    execution_id = await start(backend, "hello", {"name": "Ada"})
    finished = await WorkflowRunner().execute(backend, execution_id)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED
    assert output_of(finished) == {"greeting": "Hello, Ada!", "count": 3}
    log = await event_log(backend, execution_id)
    assert [e.sequence for e in log] == list(range(1, len(log) + 1))
    assert [(e.type, e.subject) for e in log] == [
        ("phase", ""),
        ("task.started", "/do/0/greet"),
        ("task.completed", "/do/0/greet"),
        ("phase", ""),
    ]
    assert [e.phase for e in log if e.type == "phase"] == [
        execution_pb2.PHASE_RUNNING,
        execution_pb2.PHASE_SUCCEEDED,
    ]
    assert [(t.path, t.phase) for t in finished.status.tasks] == [
        ("/do/0/greet", execution_pb2.PHASE_SUCCEEDED)
    ]
    assert json.loads(finished.status.checkpoint)["frames"]["/do"]["next"] == 1
    again = await WorkflowRunner().execute(backend, execution_id)
    assert again.status.last_sequence == finished.status.last_sequence  # terminal: nothing re-run


async def test_a_fault_fails_the_execution_with_an_rfc7807_error(backend: Backend) -> None:
    await apply_workflow(
        backend,
        "broken",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: broken, version: 1.0.0}
  do:
    - fine: {set: {a: 1}}
    - boom:
        raise:
          error: {type: 'https://example.com/errors/nope', status: 409, title: Nope, detail: not today}
""",
    )
    finished = await WorkflowRunner().execute(backend, await start(backend, "broken"))
    assert finished.status.phase == execution_pb2.PHASE_FAILED
    error = finished.status.error
    assert (error.type, error.status, error.title, error.detail, error.instance) == (
        "https://example.com/errors/nope",
        409,
        "Nope",
        "not today",
        "/do/1/boom",
    )
    kinds = [e.type for e in await event_log(backend, finished.metadata.id)]
    assert kinds == ["phase", "task.started", "task.completed", "task.started", "task.failed", "phase"]


async def test_secrets_are_resolved_just_in_time_and_never_stored(
    backend: Backend, tmp_path: Path, stub: Any
) -> None:
    await apply_workflow(
        backend,
        "secretive",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: secretive, version: 1.0.0}
  use: {secrets: [API_TOKEN]}
  do:
    - call:
        call: http
        with:
          method: get
          endpoint: https://api.example.com/echo
          headers: {Authorization: '${ "Bearer " + $secrets.API_TOKEN }'}
    - leak:
        set: {echoed: '${ .headers.authorization }', copied: '${ $secrets.API_TOKEN }'}
""",
    )
    await backend.set_secret(svc.SetSecretRequest(name="API_TOKEN", value=SECRET))
    redactor = Redactor()
    runner = WorkflowRunner(rewrite_url=stub.rewrite, redactor=redactor)
    finished = await runner.execute(backend, await start(backend, "secretive"))
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    assert stub.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert output_of(finished) == {"echoed": "Bearer ***", "copied": "***"}
    assert SECRET in redactor
    log = await event_log(backend, finished.metadata.id)
    assert SECRET not in str(log)
    await backend.close()
    paths = list(tmp_path.glob("stigmer.db*"))
    assert paths, "found no files to check"
    for path in paths:
        assert SECRET.encode() not in path.read_bytes(), path


async def test_a_killed_run_resumes_after_its_last_completed_task(backend: Backend) -> None:
    await apply_workflow(
        backend,
        "steps",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: steps, version: 1.0.0}
  do:
    - first: {set: {done: [first]}}
    - nap: {wait: {milliseconds: 800}}
    - last: {set: {done: '${ .done + ["last"] }'}}
""",
    )
    execution_id = await start(backend, "steps")
    run = asyncio.ensure_future(WorkflowRunner().execute(backend, execution_id))
    for _ in range(500):
        current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if any(t.path == "/do/1/nap" for t in current.status.tasks):
            break
        await asyncio.sleep(0.01)
    run.cancel()  # the process dies mid-wait
    with pytest.raises(asyncio.CancelledError):
        await run
    current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert current.status.phase == execution_pb2.PHASE_RUNNING
    assert json.loads(current.status.checkpoint)["frames"]["/do"]["next"] == 1

    finished = await WorkflowRunner().execute(backend, execution_id)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED
    assert output_of(finished) == {"done": ["first", "last"]}
    log = await event_log(backend, execution_id)
    assert [e.sequence for e in log] == list(range(1, len(log) + 1))
    started = [e.subject for e in log if e.type == "task.started"]
    assert started == ["/do/0/first", "/do/1/nap", "/do/2/last"]  # the wait, started once, went on


async def test_run_workflow_starts_a_child_execution(backend: Backend) -> None:
    await apply_workflow(backend, "hello", HELLO)
    await apply_workflow(
        backend,
        "parent",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: parent, version: 1.0.0}
  do:
    - child:
        run:
          workflow: {namespace: demo, name: hello, version: 1.0.0, input: {name: '${ .who }'}}
""",
    )
    finished = await WorkflowRunner().execute(backend, await start(backend, "parent", {"who": "Grace"}))
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    assert output_of(finished) == {"greeting": "Hello, Grace!", "count": 3}
    children = await backend.list_executions(svc.ListExecutionsRequest(kind="WorkflowExecution"))
    kids = [e for e in children.executions if e.spec.parent_execution_id == finished.metadata.id]
    assert len(kids) == 1 and kids[0].status.phase == execution_pb2.PHASE_SUCCEEDED


async def test_cancelling_the_execution_stops_the_run(backend: Backend) -> None:
    await apply_workflow(
        backend,
        "slow",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: slow, version: 1.0.0}
  do:
    - guarded:
        try:
          - nap: {wait: {milliseconds: 400}}
        catch:
          do:
            - swallowed: {set: {caught: true}}
    - after: {set: {reached: true}}
""",
    )
    execution_id = await start(backend, "slow")
    run = asyncio.ensure_future(WorkflowRunner().execute(backend, execution_id))
    for _ in range(500):
        current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if any(t.path.endswith("/nap") for t in current.status.tasks):
            break
        await asyncio.sleep(0.01)
    await backend.cancel_execution(svc.CancelExecutionRequest(id=execution_id))
    finished = await asyncio.wait_for(run, timeout=10)
    assert finished.status.phase == execution_pb2.PHASE_CANCELLED
    started = [e.subject for e in await event_log(backend, execution_id) if e.type == "task.started"]
    assert "/do/1/after" not in started
    assert not any(s.endswith("/swallowed") for s in started)


class RecordingBackend:
    """Delegates to a real backend and records every UpdateExecutionStatus request."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.updates: list[svc.UpdateExecutionStatusRequest] = []

    async def update_execution_status(self, request: svc.UpdateExecutionStatusRequest) -> Any:
        self.updates.append(request)
        return await self.inner.update_execution_status(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_pure_tasks_are_group_committed_with_every_event_kept(backend: Backend) -> None:
    tasks = "\n".join(f"    - s{i}: {{set: {{n: {i}}}}}" for i in range(50))
    await apply_workflow(
        backend,
        "many",
        f"  document: {{dsl: 1.0.0, namespace: demo, name: many, version: 1.0.0}}\n  do:\n{tasks}\n",
    )
    recording = RecordingBackend(backend)
    finished = await WorkflowRunner().execute(recording, await start(backend, "many"))  # type: ignore[arg-type]
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED
    assert output_of(finished) == {"n": 49}
    assert len(recording.updates) <= 10  # not 3 per task
    log = await event_log(backend, finished.metadata.id)
    assert [e.sequence for e in log] == list(range(1, len(log) + 1))
    assert [e.subject for e in log if e.type == "task.completed"] == [f"/do/{i}/s{i}" for i in range(50)]
    assert len(finished.status.tasks) == 50
    assert all(t.phase == execution_pb2.PHASE_SUCCEEDED for t in finished.status.tasks)
    assert json.loads(finished.status.checkpoint)["frames"]["/do"]["next"] == 50


async def test_progress_is_written_before_every_effect(backend: Backend, stub: Any) -> None:
    await apply_workflow(
        backend,
        "effects",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: effects, version: 1.0.0}
  do:
    - a: {set: {n: 1}}
    - b: {set: {n: 2}}
    - call:
        call: http
        with: {method: get, endpoint: 'https://api.example.com/echo'}
    - c: {set: {n: 3}}
""",
    )
    recording = RecordingBackend(backend)
    at_call: list[tuple[str, int]] = []  # (last checkpoint written, updates made) when the call goes out

    def rewrite(url: str) -> str:
        written = [u.checkpoint for u in recording.updates if u.checkpoint]
        at_call.append((written[-1] if written else "", len(recording.updates)))
        return stub.rewrite(url)

    runner = WorkflowRunner(rewrite_url=rewrite)
    finished = await runner.execute(recording, await start(backend, "effects"))  # type: ignore[arg-type]
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    [(stored, count)] = at_call
    assert json.loads(stored)["frames"]["/do"]["next"] == 2  # a and b were durable before the call
    before = [(e.type, e.subject) for u in recording.updates[:count] for e in u.events]
    assert ("task.completed", "/do/1/b") in before
    assert ("task.started", "/do/2/call") in before  # ... and so was the call's start
    assert ("task.started", "/do/3/c") not in before


async def test_a_retry_event_says_which_attempt_of_how_many_after_what_delay_and_why(
    backend: Backend,
) -> None:
    await apply_workflow(
        backend,
        "flaky",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: flaky, version: 1.0.0}
  do:
    - probe:
        try:
          - boom:
              raise:
                error: {type: 'https://serverlessworkflow.io/spec/1.0.0/errors/communication', status: 503, title: Communication Error}
        catch:
          errors: {with: {status: 503}}
          retry:
            delay: {milliseconds: 200}
            limit: {attempt: {count: 3}}
""",
    )
    finished = await WorkflowRunner().execute(backend, await start(backend, "flaky"))
    assert finished.status.phase == execution_pb2.PHASE_FAILED
    retried = [e for e in await event_log(backend, finished.metadata.id) if e.type == "task.retried"]
    assert [e.text for e in retried] == [f"retry {n}/3 in 0.2s (communication error)" for n in (1, 2, 3)]
    data = json_format.MessageToDict(retried[0].data)
    assert (data["attempt"], data["maxAttempts"], data["delay"]) == (1, 3, 0.2)
    assert data["error"]["title"] == "Communication Error"


async def test_each_for_iteration_is_a_task_of_its_own(backend: Backend) -> None:
    await apply_workflow(
        backend,
        "loop",
        """\
  document: {dsl: 1.0.0, namespace: demo, name: loop, version: 1.0.0}
  do:
    - each:
        for: {each: x, in: '${ ["a", "b"] }'}
        do:
          - s: {set: {v: '${ $x }'}}
""",
    )
    finished = await WorkflowRunner().execute(backend, await start(backend, "loop"))
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED
    events = [(e.type, e.subject, e.text) for e in await event_log(backend, finished.metadata.id)]
    assert [x for x in events if x[0].startswith("task.")] == [
        ("task.started", "/do/0/each", "each"),
        ("task.started", "/do/0/each/for/0", "each[0]"),
        ("task.started", "/do/0/each/do/0/s", "s"),
        ("task.completed", "/do/0/each/do/0/s", "s"),
        ("task.completed", "/do/0/each/for/0", "each[0]"),
        ("task.started", "/do/0/each/for/1", "each[1]"),
        ("task.started", "/do/0/each/do/0/s", "s"),
        ("task.completed", "/do/0/each/do/0/s", "s"),
        ("task.completed", "/do/0/each/for/1", "each[1]"),
        ("task.completed", "/do/0/each", "each"),
    ]
    rows = [(t.name, t.path) for t in finished.status.tasks]
    assert ("each[0]", "/do/0/each/for/0") in rows and ("each[1]", "/do/0/each/for/1") in rows
