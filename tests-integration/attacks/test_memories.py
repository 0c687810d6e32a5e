"""Attacks on agents' memories: a runner reads, writes and forgets only the memories of the agent
its own execution runs; a memory never stores a secret's value (the runner masks it first: see
packages/stigmer-runner-agent/tests/test_run_memory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import NotFound, PermissionDenied, Principal, acting_as
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, memory_pb2, meta_pb2
from stigmer.testing.agents import agent_resource

from .conftest import SharedServer


def _spec(agent: str, fact: str, execution: str = "") -> memory_pb2.MemorySpec:
    return memory_pb2.MemorySpec(
        agent=agent, fact=fact, provenance=memory_pb2.MemoryProvenance(execution_id=execution)
    )


async def test_a_runner_token_without_an_execution_reads_no_memories(shared_server: SharedServer) -> None:
    admin = shared_server.admin()
    secret_fact = await admin.create_memory(
        svc.CreateMemoryRequest(spec=_spec("payroll", "The CFO's salary review is in March."))
    )
    runner = shared_server.runner()
    for attempt in (
        runner.list_memories(svc.ListMemoriesRequest(agent="payroll")),
        runner.list_memories(svc.ListMemoriesRequest(query="salary")),
        runner.get_memory(svc.GetMemoryRequest(id=secret_fact.metadata.id)),
        runner.delete_memory(svc.DeleteMemoryRequest(id=secret_fact.metadata.id)),
        runner.create_memory(svc.CreateMemoryRequest(spec=_spec("payroll", "planted"))),
    ):
        with pytest.raises(PermissionDenied, match="on behalf of an agent run it holds"):
            await attempt
    still = await admin.get_memory(svc.GetMemoryRequest(id=secret_fact.metadata.id))
    assert still.spec.fact == "The CFO's salary review is in March."


async def test_an_execution_token_reaches_only_its_own_agents_memories(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    try:
        for name in ("helper", "payroll"):
            await backend.apply(svc.ApplyRequest(resource=agent_resource(name)))
        run = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=execution_pb2.ExecutionSpec(
                    target=meta_pb2.ResourceRef(kind="Agent", name="helper"), message="hi"
                )
            )
        )
        private = await backend.create_memory(
            svc.CreateMemoryRequest(spec=_spec("payroll", "Salaries rise 3%."))
        )
        own = await backend.create_memory(
            svc.CreateMemoryRequest(spec=_spec("helper", "Salaries are paid monthly."))
        )
        runner = Principal(token_id="xtk_1", name="execution", role="runner", execution_id=run.metadata.id)
        with acting_as(runner):
            found = await backend.list_memories(svc.ListMemoriesRequest(query="salaries"))
            assert [m.metadata.id for m in found.memories] == [own.metadata.id]
            listed = await backend.list_memories(svc.ListMemoriesRequest())
            assert [m.metadata.id for m in listed.memories] == [own.metadata.id]
            for attempt in (
                backend.list_memories(svc.ListMemoriesRequest(agent="payroll")),
                backend.create_memory(svc.CreateMemoryRequest(spec=_spec("payroll", "planted"))),
            ):
                with pytest.raises(PermissionDenied, match="payroll"):
                    await attempt
            for attempt in (  # another agent's memory is not there for this runner
                backend.get_memory(svc.GetMemoryRequest(id=private.metadata.id)),
                backend.delete_memory(svc.DeleteMemoryRequest(id=private.metadata.id)),
            ):
                with pytest.raises(NotFound, match=private.metadata.id):
                    await attempt
            # nor may it act for an execution outside its own run's tree
            with pytest.raises(PermissionDenied, match="reaches only its own execution"):
                await backend.create_memory(
                    svc.CreateMemoryRequest(spec=_spec("helper", "Noted.", execution="aex_someone_else"))
                )
            mine = await backend.create_memory(svc.CreateMemoryRequest(spec=_spec("helper", "Noted.")))
            assert mine.spec.provenance.execution_id == run.metadata.id
        assert (
            await backend.get_memory(svc.GetMemoryRequest(id=private.metadata.id))
        ).spec.fact == "Salaries rise 3%."
    finally:
        await backend.close()
