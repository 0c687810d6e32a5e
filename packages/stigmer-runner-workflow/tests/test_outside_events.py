"""A `listen` in Lite hears events published from outside the run (``PublishEvent``): sent before
it began, or while it waits; and a run resumed after a crash does not hear a consumed one again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, event_to_proto, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner

TWO_LISTENS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: twice}
spec:
  document: {dsl: 1.0.0, namespace: t, name: twice, version: 1.0.0}
  do:
    - first:
        listen: {to: {one: {with: {type: com.acme.step}}}}
        output: {as: '${ {first: .[0].n} }'}
        export: {as: '${ . }'}
    - second:
        listen: {to: {one: {with: {type: com.acme.step}}}}
        output: {as: '${ {first: $context.first, second: .[0].n} }'}
"""


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"w" * 32)
    try:
        for loaded in parse_manifest(TWO_LISTENS, "t.yaml"):
            await store.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        yield store
    finally:
        await store.close()


async def _publish(backend: Backend, n: int) -> list[str]:
    event = {"specversion": "1.0", "id": f"e{n}", "source": "test", "type": "com.acme.step", "data": {"n": n}}
    published = await backend.publish_event(svc.PublishEventRequest(event=event_to_proto(event)))
    return list(published.delivered)


async def _start(backend: Backend) -> str:
    created = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="twice"))
        )
    )
    return created.metadata.id


def _output(execution: execution_pb2.Execution) -> Any:
    return json_format.MessageToDict(execution.status.output)


async def test_events_sent_before_and_during_the_listens_are_heard_in_order(backend: Backend) -> None:
    execution_id = await _start(backend)
    assert await _publish(backend, 1) == [execution_id]  # before the run even started
    running = asyncio.create_task(WorkflowRunner().execute(backend, execution_id))
    await asyncio.sleep(0.3)
    assert not running.done()  # the second listen waits
    assert await _publish(backend, 2) == [execution_id]
    finished = await asyncio.wait_for(running, 10)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    assert _output(finished) == {"first": 1, "second": 2}


async def test_a_resumed_run_does_not_hear_a_consumed_event_again(backend: Backend) -> None:
    execution_id = await _start(backend)
    await _publish(backend, 1)
    crashed = asyncio.create_task(WorkflowRunner().execute(backend, execution_id))
    for _ in range(100):  # until the first listen completed and was checkpointed
        current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.checkpoint and json.loads(current.status.checkpoint).get("outsideAfter"):
            break
        await asyncio.sleep(0.05)
    crashed.cancel()  # the process dies while the second listen waits
    await asyncio.gather(crashed, return_exceptions=True)
    current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert current.status.phase == execution_pb2.PHASE_RUNNING
    await _publish(backend, 2)
    finished = await asyncio.wait_for(WorkflowRunner().execute(backend, execution_id), 10)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    assert _output(finished) == {"first": 1, "second": 2}
