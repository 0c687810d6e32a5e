"""Conformance: agents' memories — stored, listed per agent and subject, searched by relevance,
read and forgotten."""

from __future__ import annotations

import pytest
from stigmer.conformance._builders import expect_error, unique
from stigmer.core import Backend, InvalidArgument, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import memory_pb2

__all__ = ["TestMemories"]


async def _remember(backend: Backend, agent: str, fact: str, subject: str = "") -> memory_pb2.Memory:
    spec = memory_pb2.MemorySpec(
        agent=agent,
        subject=subject,
        fact=fact,
        provenance=memory_pb2.MemoryProvenance(
            session_id="ses_x", execution_id="aex_y", tool_call_id="call_1"
        ),
    )
    return await backend.create_memory(svc.CreateMemoryRequest(spec=spec))


@pytest.mark.asyncio
class TestMemories:
    async def test_create_get_list_delete(self, backend: Backend) -> None:
        agent = unique("mem-agent")
        first = await _remember(backend, agent, "The deploy window is Tuesday morning.")
        assert first.kind == "Memory" and first.metadata.id.startswith("mem_")
        assert first.metadata.created_at.seconds > 0
        assert first.spec.provenance.tool_call_id == "call_1"
        second = await _remember(backend, agent, "Ada prefers short answers.", subject="ada")
        got = await backend.get_memory(svc.GetMemoryRequest(id=second.metadata.id))
        assert got.spec.fact == "Ada prefers short answers." and got.spec.subject == "ada"
        listed = await backend.list_memories(svc.ListMemoriesRequest(agent=agent))
        assert [m.metadata.id for m in listed.memories] == [second.metadata.id, first.metadata.id]
        other = await backend.list_memories(svc.ListMemoriesRequest(agent=unique("nobody")))
        assert not other.memories
        gone = await backend.delete_memory(svc.DeleteMemoryRequest(id=first.metadata.id))
        assert gone.spec.fact == first.spec.fact
        await expect_error(NotFound, backend.get_memory(svc.GetMemoryRequest(id=first.metadata.id)), "mem_")
        await expect_error(
            NotFound, backend.delete_memory(svc.DeleteMemoryRequest(id=first.metadata.id)), first.metadata.id
        )
        left = await backend.list_memories(svc.ListMemoriesRequest(agent=agent))
        assert [m.metadata.id for m in left.memories] == [second.metadata.id]

    async def test_subjects_and_general_facts(self, backend: Backend) -> None:
        agent = unique("mem-agent")
        general = await _remember(backend, agent, "The office closes at six.")
        ada = await _remember(backend, agent, "Ada's team is platform.", subject="ada")
        await _remember(backend, agent, "Bob's team is data.", subject="bob")
        only = await backend.list_memories(svc.ListMemoriesRequest(agent=agent, subject="ada"))
        assert [m.metadata.id for m in only.memories] == [ada.metadata.id]
        with_general = await backend.list_memories(
            svc.ListMemoriesRequest(agent=agent, subject="ada", include_general=True)
        )
        assert [m.metadata.id for m in with_general.memories] == [ada.metadata.id, general.metadata.id]

    async def test_search_finds_the_relevant_facts_first(self, backend: Backend) -> None:
        agent = unique("mem-agent")
        await _remember(backend, agent, "The staging database runs PostgreSQL 16.")
        deploy = await _remember(backend, agent, "Deployments happen on Tuesdays after the deploy review.")
        await _remember(backend, agent, "Lunch is at noon.")
        found = await backend.list_memories(
            svc.ListMemoriesRequest(agent=agent, query="When do we deploy? Which day are deployments?")
        )
        assert found.memories and found.memories[0].metadata.id == deploy.metadata.id
        assert found.memories[0].score > 0
        assert all("Lunch" not in m.spec.fact for m in found.memories)
        # stemming: "databases" finds "database"; no match is an empty answer, not an error
        db = await backend.list_memories(svc.ListMemoriesRequest(agent=agent, query="databases"))
        assert [m.spec.fact for m in db.memories] == ["The staging database runs PostgreSQL 16."]
        none = await backend.list_memories(svc.ListMemoriesRequest(agent=agent, query="zebras"))
        assert not none.memories
        # quotes, operators and SQL are words or nothing, never query syntax
        odd = await backend.list_memories(
            svc.ListMemoriesRequest(agent=agent, query='"; DROP TABLE -- * NEAR(')
        )
        assert not odd.memories
        assert len((await backend.list_memories(svc.ListMemoriesRequest(agent=agent))).memories) == 3

    async def test_pages(self, backend: Backend) -> None:
        agent = unique("mem-agent")
        made = [await _remember(backend, agent, f"fact number {i}") for i in range(5)]
        first = await backend.list_memories(svc.ListMemoriesRequest(agent=agent, page_size=3))
        assert len(first.memories) == 3 and first.next_page_token
        rest = await backend.list_memories(
            svc.ListMemoriesRequest(agent=agent, page_size=3, page_token=first.next_page_token)
        )
        ids = [m.metadata.id for m in [*first.memories, *rest.memories]]
        assert ids == [m.metadata.id for m in reversed(made)] and not rest.next_page_token

    async def test_bad_input(self, backend: Backend) -> None:
        await expect_error(
            InvalidArgument,
            backend.create_memory(svc.CreateMemoryRequest(spec=memory_pb2.MemorySpec(fact="x"))),
            "spec.agent",
        )
        await expect_error(
            InvalidArgument,
            backend.create_memory(svc.CreateMemoryRequest(spec=memory_pb2.MemorySpec(agent="a", fact="  "))),
            "spec.fact",
        )
        long = memory_pb2.MemorySpec(agent="a", fact="x" * 5000)
        await expect_error(
            InvalidArgument, backend.create_memory(svc.CreateMemoryRequest(spec=long)), "at most"
        )
        await expect_error(
            NotFound, backend.get_memory(svc.GetMemoryRequest(id="mem_unknown")), "mem_unknown"
        )
