"""Retry on Temporal (issue 21): a run that failed at its 3rd of 4 HTTP calls reports its last
checkpoint with the failure; a retry (a new execution with ``resumedFrom``) is a new Temporal
workflow that starts from that checkpoint and repeats none of the completed calls."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Backend, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow.temporal._worker import workflow_worker
from stigmer.runner.workflow.temporal._workflow import WORKFLOW_NAME
from stigmer.testing import HttpWorld, Request, Response, TemporalServer, json_response
from temporalio.client import Client, WorkflowFailureError

pytestmark = pytest.mark.timeout(120)


class Flaky(HttpWorld):
    def __init__(self) -> None:
        super().__init__()
        self.healed = False

    def handle(self, request: Request) -> Response:
        if request.path.endswith("/3") and not self.healed:
            return json_response({"error": "down"}, 503)
        return json_response({"ok": request.path})


@pytest.fixture
async def stack(
    tmp_path: Path, temporal_server: TemporalServer
) -> AsyncIterator[tuple[Backend, Client, str]]:
    from stigmer.backend.local import LocalBackend

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"t" * 32)
    client = await Client.connect(temporal_server.address)
    queue = f"retry-{uuid.uuid4().hex[:8]}"
    async with workflow_worker(client, queue, backend):
        yield backend, client, queue
    await backend.close()


async def start(backend: Backend, client: Client, queue: str, spec: execution_pb2.ExecutionSpec) -> Any:
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    eid = created.metadata.id
    handle = await client.start_workflow(WORKFLOW_NAME, {"executionId": eid}, id=eid, task_queue=queue)
    with contextlib.suppress(WorkflowFailureError):  # a failed run ends Failed in Temporal too
        await asyncio.wait_for(handle.result(), 60)
    return await backend.get_execution(svc.GetExecutionRequest(id=eid))


async def test_retry_on_temporal_repeats_none_of_the_completed_calls(stack: Any) -> None:
    backend, client, queue = stack
    with Flaky() as world:
        steps = "\n".join(
            f"    - call{n}: {{call: http, with: {{method: get, endpoint: '{world.url}/step/{n}'}}}}"
            for n in range(1, 5)
        )
        text = (
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: four}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: four, version: 1.0.0}\n  do:\n" + steps + "\n"
        )
        for loaded in parse_manifest(text, "four.yaml"):
            await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        target = meta_pb2.ResourceRef(kind="Workflow", name="four")
        failed = await start(backend, client, queue, execution_pb2.ExecutionSpec(target=target))
        assert failed.status.phase == execution_pb2.PHASE_FAILED
        assert failed.status.checkpoint  # reported with the failure
        assert [r.path for r in world.received] == ["/step/1", "/step/2", "/step/3"]

        world.healed = True
        retry = execution_pb2.ExecutionSpec(target=target, resumed_from=failed.metadata.id)
        done = await start(backend, client, queue, retry)
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
        assert [r.path for r in world.received][3:] == ["/step/3", "/step/4"]
        assert {t.name for t in done.status.tasks if t.phase == execution_pb2.PHASE_SUCCEEDED} == {
            "call1",
            "call2",
            "call3",
            "call4",
        }
