"""Runs the server starts on Temporal: the start carries the pinned document, the input and the
server's limits, so no activity runs before the interpreter; the run's first report (naming its
runner) starts it, and the progress made before an effect goes with the effect's activity, which
writes it first or only once the effect has taken a while.

A real Temporal dev server, the server's own dispatcher (``temporal_dispatch``), an in-process
worker whose activities talk to a real LocalBackend, and a local HTTP server for the world."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Backend, Limits, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow.temporal._activities import WorkflowActivities
from stigmer.runner.workflow.temporal._host import PROGRESS_AFTER, STOPPED_ERROR
from stigmer.runner.workflow.temporal._worker import workflow_worker
from stigmer.testing import HttpWorld, Request, Response, TemporalServer, json_response
from temporalio.client import Client

pytestmark = pytest.mark.timeout(120)
P = execution_pb2


class World(HttpWorld):
    """``/slow…`` answers after a second; ``/missing…`` 404; anything else at once."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.hits[request.target] = self.hits.get(request.target, 0) + 1
        if request.target.startswith("/slow"):
            time.sleep(1.0)
        if request.target.startswith("/missing"):
            return json_response({"error": "no such thing"}, 404)
        return json_response({"path": request.target})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with World() as stand_in:
        yield stand_in


@dataclasses.dataclass
class Served:
    backend: Backend
    dispatcher: Any
    client: Client


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"s" * 32)
    yield backend
    await backend.close()


@pytest.fixture
async def served(store: Backend, temporal_server: TemporalServer) -> AsyncIterator[Served]:
    """The server's side (a dispatcher starting runs as ``stigmer server`` does, with small
    limits of its own) and a worker with the default limits."""
    from stigmer.temporal import temporal_dispatch

    backend = store
    _served, dispatcher = temporal_dispatch(backend, temporal_server.address)
    queue = f"server-start-{uuid.uuid4().hex[:8]}"
    dispatcher.queues["WorkflowExecution"] = queue
    dispatcher.limits = Limits(tasks=40)  # the server's setting; the worker keeps the defaults
    client = await dispatcher.client()
    async with workflow_worker(client, queue, backend):
        yield Served(backend, dispatcher, client)


async def _apply(backend: Backend, name: str, tasks: str, use: str = "") -> None:
    text = (
        f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
        f"  document: {{dsl: 1.0.0, namespace: demo, name: {name}, version: 1.0.0}}\n{use}  do:\n{tasks}"
    )
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def _start(served: Served, name: str) -> execution_pb2.Execution:
    spec = P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    created = await served.backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    served.dispatcher.start(created)  # as CreateExecution on the server does
    return created


async def _ended(served: Served, execution_id: str, timeout: float = 60) -> execution_pb2.Execution:
    deadline = time.monotonic() + timeout
    while True:
        current = await served.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.phase in (P.PHASE_SUCCEEDED, P.PHASE_FAILED, P.PHASE_CANCELLED):
            return current
        assert time.monotonic() < deadline, f"{execution_id} did not end: {current.status}"
        await asyncio.sleep(0.05)


async def _log(backend: Backend, execution_id: str) -> list[tuple[str, str]]:
    """(type, phase name or subject) of every stored event of a finished execution."""
    request = svc.WatchExecutionRequest(execution_id=execution_id)
    return [
        (e.type, P.Phase.Name(e.phase) if e.type == "phase" else e.subject)
        async for e in backend.watch_execution(request)
    ]


async def test_a_run_the_server_starts_runs_no_activity_before_its_first_effect(
    served: Served, world: World
) -> None:
    await _apply(
        served.backend,
        "quick",
        f"    - greet: {{call: http, with: {{method: get, endpoint: '{world.url}/quick'}}}}\n"
        "    - shout: {set: {loud: yes}}\n",
    )
    created = await _start(served, "quick")
    done = await _ended(served, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED and done.status.HasField("started_at")
    assert done.status.runner.startswith("temporal:")
    assert await _log(served.backend, created.metadata.id) == [
        ("phase", "PHASE_RUNNING"),  # the first report, naming the runner, started it
        ("task.started", "/do/0/greet"),
        ("task.completed", "/do/0/greet"),
        ("task.started", "/do/1/shout"),
        ("task.completed", "/do/1/shout"),
        ("phase", "PHASE_SUCCEEDED"),
    ]
    handle = served.client.get_workflow_handle(created.metadata.id)
    await asyncio.wait_for(handle.result(), 30)  # the store has it first: the workflow ends after
    history = await handle.fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    first_effect = kinds.index("activity_task_scheduled_event_attributes")
    assert "marker_recorded_event_attributes" not in kinds[:first_effect]  # no local activity before it
    assert kinds.count("marker_recorded_event_attributes") == 1  # the final report only
    started = history.events[0].workflow_execution_started_event_attributes
    args = json.loads(started.input.payloads[0].data)
    assert args["limits"]["tasks"] == 40 and "document" in args  # what the run needs came with its start
    scheduled = history.events[first_effect].activity_task_scheduled_event_attributes
    effect_args = json.loads(scheduled.input.payloads[0].data)
    # The progress went with the effect, to be written only if the effect had taken a while.
    assert effect_args["progressFirst"] is False
    assert [e["type"] for e in effect_args["progress"]["events"]] == ["task.started"]


async def test_a_slow_effect_shows_its_task_started_while_it_runs(served: Served, world: World) -> None:
    await _apply(
        served.backend,
        "slowpoke",
        f"    - wait: {{call: http, with: {{method: get, endpoint: '{world.url}/slow-1'}}}}\n",
    )
    created = await _start(served, "slowpoke")
    began = time.monotonic()
    seen: list[str] = []
    stream = served.backend.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id))
    async for event in stream:
        seen.append(event.type)
        if event.type == "task.started":
            break
    shown_after = time.monotonic() - began
    current = await served.backend.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
    assert seen == ["phase", "task.started"] and current.status.phase == P.PHASE_RUNNING
    assert current.status.tasks[0].phase == P.PHASE_RUNNING  # written while the call was under way
    assert shown_after < 1.0, shown_after  # the call takes a second; its start showed before that
    done = await _ended(served, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED
    log = await _log(served.backend, created.metadata.id)
    assert [t for t, _ in log] == ["phase", "task.started", "task.completed", "phase"]  # written once


async def test_a_quick_failure_writes_the_progress_it_carried_with_the_failure(
    served: Served, world: World
) -> None:
    await _apply(
        served.backend,
        "broken",
        f"    - fetch: {{call: http, with: {{method: get, endpoint: '{world.url}/missing'}}}}\n",
    )
    created = await _start(served, "broken")
    done = await _ended(served, created.metadata.id)
    assert done.status.phase == P.PHASE_FAILED and done.status.error.status == 404
    assert await _log(served.backend, created.metadata.id) == [
        ("phase", "PHASE_RUNNING"),
        ("task.started", "/do/0/fetch"),
        ("task.failed", "/do/0/fetch"),
        ("phase", "PHASE_FAILED"),
    ]


async def test_a_first_effect_with_a_secret_starts_the_run_before_it_reads_the_secret(
    served: Served, world: World
) -> None:
    """A run's secrets are given only while it runs: an effect that needs them writes the
    progress it carries (which starts the run) before it acts, however quick it is."""
    await _apply(
        served.backend,
        "keyed",
        "    - call:\n        call: http\n        with:\n          method: get\n"
        f"          endpoint: '{world.url}/keyed'\n"
        "          headers: {Authorization: '${ \"Bearer \" + $secrets.API_KEY }'}\n",
        use="  use: {secrets: [API_KEY]}\n",
    )
    spec = P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="keyed"))
    created = await served.backend.create_execution(
        svc.CreateExecutionRequest(spec=spec, runtime_secrets={"API_KEY": "sk-live-0ddba11c0ffee"})
    )
    served.dispatcher.start(created)
    done = await _ended(served, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert "Bearer sk-live-0ddba11c0ffee" in world.auth  # the request carried the value
    assert [t for t, _ in await _log(served.backend, created.metadata.id)] == [
        "phase",
        "task.started",
        "task.completed",
        "phase",
    ]


async def test_the_server_limits_the_runs_it_starts(served: Served, world: World) -> None:
    await _apply(
        served.backend,
        "spin",
        f"    - hit: {{call: http, with: {{method: get, endpoint: '{world.url}/spin'}}}}\n"
        "    - again: {set: {n: 1}, then: hit}\n",
    )
    created = await _start(served, "spin")
    done = await _ended(served, created.metadata.id, timeout=90)
    assert done.status.phase == P.PHASE_FAILED
    assert done.status.error.title == "Task limit exceeded"
    assert "40 tasks" in done.status.error.detail  # the server's setting, not the worker's 50,000


async def _created(backend: Backend, name: str, url: str) -> str:
    """A PENDING run of a one-call workflow (not started anywhere)."""
    await _apply(backend, name, f"    - call: {{call: http, with: {{method: get, endpoint: '{url}'}}}}\n")
    spec = P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    return str(created.metadata.id)


def _http_args(execution_id: str, url: str, *, first: bool) -> dict[str, Any]:
    event = {
        "type": "task.started",
        "subject": "/do/0/call",
        "text": "call",
        "data": {},
        "time": "2026-01-01T00:00:00+00:00",
    }
    return {
        "executionId": execution_id,
        "request": {"method": "get", "url": url, "headers": {}, "query": {}, "followRedirects": False},
        "progress": {"events": [event], "tasks": []},
        "progressFirst": first,
    }


async def test_an_effect_is_not_made_for_a_run_cancelled_before_its_progress_is_written(
    store: Backend, world: World
) -> None:
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    backend = store
    eid = await _created(backend, "gone", f"{world.url}/never")
    await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="no longer"))
    activities = WorkflowActivities(backend)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.http, _http_args(eid, f"{world.url}/never", first=True))
    assert refused.value.type == STOPPED_ERROR
    assert world.hits.get("/never", 0) == 0  # refused before the call was made

    # Written only once the effect has run a while: the refusal then stops the effect.
    began = time.monotonic()
    with pytest.raises(ApplicationError) as stopped:
        await ActivityEnvironment().run(
            activities.http, _http_args(eid, f"{world.url}/slow-gone", first=False)
        )
    assert stopped.value.type == STOPPED_ERROR
    assert PROGRESS_AFTER <= time.monotonic() - began < 0.9  # the one-second call did not finish
    events = [e.type async for e in backend.watch_execution(svc.WatchExecutionRequest(execution_id=eid))]
    assert "task.started" not in events  # a finished run takes no progress


async def test_a_quick_effect_returns_its_progress_unwritten(store: Backend, world: World) -> None:
    from temporalio.testing import ActivityEnvironment

    backend = store
    eid = await _created(backend, "fine", f"{world.url}/fine")
    activities = WorkflowActivities(backend)
    result = await ActivityEnvironment().run(
        activities.http, _http_args(eid, f"{world.url}/fine", first=False)
    )
    assert result["status"] == 200 and result["progressSent"] is False
    current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert current.status.phase == P.PHASE_PENDING and current.status.last_sequence == 0  # nothing written
    result = await ActivityEnvironment().run(
        activities.http, _http_args(eid, f"{world.url}/fine", first=True)
    )
    assert result["progressSent"] is True
    current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
    assert current.status.phase == P.PHASE_RUNNING  # written first, and it started the run
