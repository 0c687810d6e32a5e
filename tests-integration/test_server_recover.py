"""A server killed while it runs an execution resumes it when it comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from google.protobuf import json_format
from stigmer.backend.cloud import CloudBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2, workflow_pb2
from stigmer.server import ServerProcess

P = execution_pb2


async def test_killed_server_resumes_its_running_execution(tmp_path: Path) -> None:
    server = ServerProcess(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'stigmer.db'}")
    await asyncio.to_thread(server.start)
    client = CloudBackend(server.endpoint, home=tmp_path)
    flow = resource_pb2.Resource(
        workflow=workflow_pb2.Workflow(
            api_version="stigmer.ai/v1", kind="Workflow", metadata=meta_pb2.Metadata(name="slow")
        )
    )
    flow.workflow.spec.update(
        {
            "document": {"dsl": "1.0.0", "namespace": "test", "name": "slow", "version": "1.0.0"},
            "do": [
                {"first": {"set": {"a": 1}}},
                {"pause": {"wait": {"seconds": 2}}},
                {"last": {"set": {"a": "${ .a }", "b": 2}}},
            ],
        }
    )
    await client.apply(svc.ApplyRequest(resource=flow))
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="slow"))
        )
    )
    execution_id = created.metadata.id
    for _ in range(100):  # until the run is inside the wait
        current = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.phase == P.PHASE_RUNNING and current.status.checkpoint:
            break
        await asyncio.sleep(0.05)
    assert current.status.phase == P.PHASE_RUNNING, current.status
    first_runner = current.status.runner
    # A child process of the server runs it, never the server itself.
    assert f":{server.pid}:" not in first_runner

    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)

    events = [e async for e in client.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))]
    done = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output) == {"a": 1, "b": 2}
    assert done.status.runner != first_runner
    assert [e.sequence for e in events] == list(range(1, done.status.last_sequence + 1))
    assert f"resuming execution {execution_id}" in server.log_path.read_text()
    await client.close()
    assert await asyncio.to_thread(server.stop) == 0
