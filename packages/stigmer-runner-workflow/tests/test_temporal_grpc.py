"""``call: grpc`` on Temporal: the call is an activity (like ``call: http``), secrets travel as
references and never reach the history (a real dev server, a real LocalBackend, a real grpcio
server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.backend.local import LocalBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow.temporal._worker import workflow_worker
from stigmer.runner.workflow.temporal._workflow import WORKFLOW_NAME
from stigmer.testing import GREETER_PROTO, GrpcGreeter, TemporalServer, history_text
from temporalio.client import Client

SECRET = "grpc-live-5ecr3t-0042"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def greeter() -> AsyncIterator[GrpcGreeter]:
    async with GrpcGreeter() as started:
        yield started


async def test_a_grpc_call_is_an_activity_and_its_secret_never_reaches_the_history(
    tmp_path: Path, temporal_server: TemporalServer, greeter: GrpcGreeter
) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"g" * 32)
    client = await Client.connect(temporal_server.address)
    queue = f"grpc-{uuid.uuid4().hex[:8]}"
    text = (
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: greet}\nspec:\n"
        "  document: {dsl: 1.0.3, namespace: demo, name: greet, version: 1.0.0}\n"
        "  use: {secrets: [GRPC_TOKEN]}\n"
        "  do:\n    - greet:\n        call: grpc\n        with:\n"
        f"          proto: {{endpoint: '{GREETER_PROTO.as_uri()}'}}\n"
        f"          service:\n            name: Greeter\n            host: 127.0.0.1\n            port: {greeter.port}\n"
        "            authentication: {bearer: {token: '${ $secrets.GRPC_TOKEN }'}}\n"
        "          method: SayHello\n          arguments: {name: '${ .who }', times: 2}\n"
    )
    try:
        for loaded in parse_manifest(text, "test.yaml"):
            await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="greet"))
        json_format.ParseDict({"who": "Temporal"}, spec.input)
        created = await backend.create_execution(
            svc.CreateExecutionRequest(spec=spec, runtime_secrets={"GRPC_TOKEN": SECRET})
        )
        execution_id = created.metadata.id
        async with workflow_worker(client, queue, backend):
            handle = await client.start_workflow(
                WORKFLOW_NAME, {"executionId": execution_id}, id=execution_id, task_queue=queue
            )
            await asyncio.wait_for(handle.result(), 60)
            history = await handle.fetch_history()
        done = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    finally:
        await backend.close()
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    output: Any = json_format.MessageToDict(done.status.output)
    assert output["message"] == "Hello, Temporal!" and output["count"] == "2"
    assert greeter.metadata[-1]["authorization"] == f"Bearer {SECRET}"  # the call carried the value
    assert output["authorization"] == "Bearer ***"  # and the answer echoing it was scrubbed
    activities = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "stigmer.workflow.grpc" in activities
    dumped = history_text(history.to_json_dict())
    assert "stigmer-secret:GRPC_TOKEN" in dumped  # only the reference travelled
    assert SECRET not in dumped
