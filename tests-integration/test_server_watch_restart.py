"""The server dies (SIGKILL or SIGTERM) during a watch and comes back: the client resumes,
no event lost or repeated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server import ServerProcess
from stigmer.testing.agents import agent_resource

P = execution_pb2


def log_events(execution_id: str, *texts: str) -> svc.UpdateExecutionStatusRequest:
    return svc.UpdateExecutionStatusRequest(
        execution_id=execution_id, events=[P.ExecutionEvent(type="log", text=t) for t in texts]
    )


@pytest.mark.parametrize("how", ["kill", "term"])
async def test_watch_survives_a_server_restart(tmp_path: Path, how: str) -> None:
    url = f"sqlite:///{tmp_path / 'stigmer.db'}"
    server = ServerProcess(
        home=tmp_path, database_url=url, args=["--no-run-executions", "--log-level", "debug"]
    )
    await asyncio.to_thread(server.start)
    client = CloudBackend(server.endpoint, home=tmp_path, timeout=30)
    agent = agent_resource("bot")
    await client.apply(svc.ApplyRequest(resource=agent))
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
        )
    )
    execution_id = created.metadata.id
    await client.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=P.PHASE_RUNNING)
    )
    await client.update_execution_status(log_events(execution_id, "a", "b", "c"))

    watcher = CloudBackend(server.endpoint, home=tmp_path, timeout=30)
    seen: list[P.ExecutionEvent] = []
    three = asyncio.Event()

    async def watch() -> None:
        async for event in watcher.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id)):
            seen.append(event)
            if len(seen) >= 3:
                three.set()

    task = asyncio.create_task(watch())
    await asyncio.wait_for(three.wait(), 15)
    before = len(seen)

    if how == "kill":
        await asyncio.to_thread(server.kill)
    else:
        await asyncio.to_thread(server.stop)
    # While the server is away a runner on the same database keeps writing.
    direct = LocalBackend(url, home=tmp_path)
    await direct.update_execution_status(log_events(execution_id, "d", "e"))
    await asyncio.sleep(0.5)  # the watcher is retrying meanwhile
    assert not task.done()
    await asyncio.to_thread(server.start)  # same port
    await direct.update_execution_status(log_events(execution_id, "f"))
    await client.update_execution_status(log_events(execution_id, "g"))
    await client.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=P.PHASE_SUCCEEDED)
    )
    await asyncio.wait_for(task, 30)

    final = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
    sequences = [e.sequence for e in seen]
    assert sequences == list(range(1, final.status.last_sequence + 1)), sequences
    texts = [e.text for e in seen if e.type == "log"]
    assert texts == ["a", "b", "c", "d", "e", "f", "g"]
    assert seen[-1].phase == P.PHASE_SUCCEEDED or final.status.phase == P.PHASE_SUCCEEDED
    assert before >= 3
    await direct.close()
    await client.close()
    await watcher.close()
    assert await asyncio.to_thread(server.stop) == 0
    assert server.log_path.read_text().count("rpc method=WatchExecution") >= 1
