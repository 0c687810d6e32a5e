"""Without Temporal, `stigmer server` runs the executions it creates with the runners' Lite hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from google.protobuf import json_format, struct_pb2
from stigmer.backend.cloud import CloudBackend
from stigmer.core import load_manifests
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2
from stigmer.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
P = execution_pb2


async def test_workflow_execution_created_through_the_server_runs_to_completion(tmp_path: Path) -> None:
    server = ServerProcess(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'stigmer.db'}")
    await asyncio.to_thread(server.start)
    client = CloudBackend(server.endpoint, home=tmp_path)
    [hello] = load_manifests([ROOT / "examples" / "hello.yaml"])
    assert isinstance(hello.resource, resource_pb2.Resource)
    await client.apply(svc.ApplyRequest(resource=hello.resource))

    value = struct_pb2.Value()
    json_format.ParseDict({"name": "team"}, value)
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="hello"), input=value)
        )
    )
    assert created.kind == "WorkflowExecution"
    events = [
        e async for e in client.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id))
    ]
    done = await client.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    output = json_format.MessageToDict(done.status.output)
    assert output["greeting"] == "Hello, team!"
    assert [e.sequence for e in events] == list(range(1, done.status.last_sequence + 1))
    await client.close()
    assert await asyncio.to_thread(server.stop) == 0
    assert "Traceback" not in server.log_path.read_text()


async def test_a_runner_token_is_enough_for_the_real_workflow_runner(tmp_path: Path) -> None:
    """A worker machine: the workflow runner drives an execution through the server as a `runner`."""
    from stigmer.core import load_runner
    from stigmer.server import TokenStore

    url = f"sqlite:///{tmp_path / 'stigmer.db'}"
    server = ServerProcess(home=tmp_path, database_url=url, args=["--no-run-executions"])
    await asyncio.to_thread(server.start)
    admin = CloudBackend(server.endpoint, home=tmp_path)
    [hello] = load_manifests([ROOT / "examples" / "hello.yaml"])
    assert isinstance(hello.resource, resource_pb2.Resource)
    await admin.apply(svc.ApplyRequest(resource=hello.resource))
    created = await admin.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="hello"))
        )
    )
    pending = await admin.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
    assert pending.status.phase == P.PHASE_PENDING  # the server left it to external workers

    store = TokenStore(database_url=url)
    worker = CloudBackend(server.endpoint, token=store.create("runner", "worker-1").token)
    store.close()
    done = await load_runner("workflow").execute(worker, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output)["greeting"] == "Hello, world!"
    for client in (admin, worker):
        await client.close()
    assert await asyncio.to_thread(server.stop) == 0
    assert "code=PERMISSION_DENIED" not in server.log_path.read_text()
