"""Long-term memory: an agent's ``remember``, ``recall`` and ``forget`` tools, and the facts most
relevant to a run's message given to the model when the run starts.

Memories go through the Backend (``CreateMemory``, ``ListMemories`` with a full-text ``query``,
``DeleteMemory``), so they work alike in Lite, through a server and on Temporal (where each memory
tool call is an activity, as every tool call is). A memory belongs to the agent and is about a
subject: the run's variable ``STIGMER_MEMORY_SUBJECT`` (``--env``), else the agent's
``memory.subject``, else none (general facts); recall reads the subject's facts and the general
ones. A fact is masked with the run's redactor before it is stored, so a secret the run holds is
never written into a memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stigmer.core import Backend, InvalidArgument, Redactor
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import memory_pb2

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.toolsets import AbstractToolset

__all__ = ["SUBJECT_VARIABLE", "AgentMemory"]

SUBJECT_VARIABLE = "STIGMER_MEMORY_SUBJECT"
DEFAULT_RECALL = 5
RECALL_TOOL_RESULTS = 10


@dataclass
class AgentMemory:
    """One run's access to its agent's memories."""

    backend: Backend
    agent: str
    subject: str
    redactor: Redactor
    session_id: str = ""
    execution_id: str = ""
    recall_count: int = DEFAULT_RECALL

    @classmethod
    def of(
        cls,
        backend: Backend,
        policy: Any,
        *,
        agent: str,
        variables: Mapping[str, str],
        redactor: Redactor,
        session_id: str,
        execution_id: str,
    ) -> AgentMemory | None:
        """The memory of an agent whose ``memory`` policy is enabled; None otherwise."""
        if policy is None or not policy.enabled:
            return None
        return cls(
            backend,
            agent,
            variables.get(SUBJECT_VARIABLE) or policy.subject,
            redactor,
            session_id=session_id,
            execution_id=execution_id,
            recall_count=policy.recall or DEFAULT_RECALL,
        )

    async def search(self, query: str, limit: int) -> list[memory_pb2.Memory]:
        """The facts about the run's subject, and the general ones, most relevant to ``query``."""
        if self.subject:
            request = svc.ListMemoriesRequest(
                agent=self.agent,
                subject=self.subject,
                include_general=True,
                query=query,
                page_size=limit,
                execution_id=self.execution_id,
            )
            return list((await self.backend.list_memories(request)).memories)
        # no subject: general facts only (the listing has no filter for "no subject")
        request = svc.ListMemoriesRequest(
            agent=self.agent, query=query, page_size=limit * 4, execution_id=self.execution_id
        )
        found = (await self.backend.list_memories(request)).memories
        return [m for m in found if not m.spec.subject][:limit]

    async def prompt(self, message: str) -> str:
        """Instructions naming the facts most relevant to ``message`` ("" when none match)."""
        facts = await self.search(message, self.recall_count)
        if not facts:
            return ""
        lines = [f"- {m.spec.fact} [{m.metadata.id}]" for m in facts]
        return (
            "Facts you remember from earlier conversations (use `recall` for more, `forget` with "
            "the id in brackets to drop one that is wrong or outdated):\n" + "\n".join(lines)
        )

    async def remember(self, fact: str, tool_call_id: str) -> memory_pb2.Memory:
        masked = str(self.redactor.scrub(fact)).strip()
        if not masked:
            raise InvalidArgument("there is no fact to remember")
        spec = memory_pb2.MemorySpec(
            agent=self.agent,
            subject=self.subject,
            fact=masked,
            provenance=memory_pb2.MemoryProvenance(
                session_id=self.session_id, execution_id=self.execution_id, tool_call_id=tool_call_id
            ),
        )
        return await self.backend.create_memory(svc.CreateMemoryRequest(spec=spec))

    async def forget(self, memory_id: str) -> memory_pb2.Memory:
        eid = self.execution_id
        found = await self.backend.get_memory(svc.GetMemoryRequest(id=memory_id, execution_id=eid))
        if found.spec.agent != self.agent:  # in Lite no principal stops it: this agent's own only
            raise InvalidArgument(f"memory {memory_id} is not one of this agent's")
        return await self.backend.delete_memory(svc.DeleteMemoryRequest(id=memory_id, execution_id=eid))

    def toolset(self) -> AbstractToolset[Any]:
        from pydantic_ai import ModelRetry, RunContext
        from pydantic_ai.toolsets import FunctionToolset

        memory = self
        tools: FunctionToolset[Any] = FunctionToolset()

        async def remember(ctx: RunContext[Any], fact: str) -> str:
            """Remember a fact for later conversations (one fact per call, in a full sentence).

            Args:
                fact: The fact, self-contained: say who or what it is about.
            """
            try:
                stored = await memory.remember(fact, ctx.tool_call_id or "")
            except InvalidArgument as exc:
                raise ModelRetry(exc.message) from None
            return f"Remembered [{stored.metadata.id}]."

        async def recall(ctx: RunContext[Any], query: str) -> list[dict[str, str]]:
            """Search the facts remembered from earlier conversations.

            Args:
                query: Words to look for (any of them may match).
            """
            found = await memory.search(query, RECALL_TOOL_RESULTS)
            return [{"id": m.metadata.id, "fact": m.spec.fact} for m in found]

        async def forget(ctx: RunContext[Any], memory_id: str) -> str:
            """Forget a remembered fact that is wrong or outdated.

            Args:
                memory_id: The fact's id (`mem_...`).
            """
            from stigmer.core import NotFound

            try:
                gone = await memory.forget(memory_id)
            except (NotFound, InvalidArgument) as exc:
                raise ModelRetry(exc.message) from None
            return f"Forgot: {gone.spec.fact}"

        for function in (remember, recall, forget):
            function.__annotations__ = {
                "ctx": RunContext[Any],
                **{k: v for k, v in function.__annotations__.items() if k != "ctx"},
            }
            tools.add_function(function, takes_ctx=True)
        return tools
