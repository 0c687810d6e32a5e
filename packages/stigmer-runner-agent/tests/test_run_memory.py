"""Long-term memory in Lite: `remember` stores a fact (masked), a later run in another session is
given the facts relevant to its message, `forget` drops one, subjects keep people's facts apart."""

from __future__ import annotations

import json

from stigmer.core import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, openai_agent, start

P = execution_pb2
MEMORY = "  memory: {enabled: true}\n"


async def _memories(backend: Backend, agent: str = "bot") -> list[str]:
    found = await backend.list_memories(svc.ListMemoriesRequest(agent=agent))
    return [m.spec.fact for m in found.memories]


async def test_a_fact_remembered_in_one_session_is_given_to_a_run_of_another(
    backend: Backend, llm: ScriptedLLM
) -> None:
    secret = "sk-live-0123456789abcdef"
    llm.add(
        call("remember", fact=f"Ada's favourite colour is green; her key is {secret}."),
        text("I'll remember that."),
    )
    await apply(backend, openai_agent(llm, extra=MEMORY))
    first = await start(backend, "bot", "Remember: Ada likes green.", runtime_secrets={"ADA_KEY": secret})
    done = await AgentRunner().execute(backend, first)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    (stored,) = (await backend.list_memories(svc.ListMemoriesRequest(agent="bot"))).memories
    assert secret not in stored.spec.fact and "***" in stored.spec.fact  # masked before it was stored
    assert stored.spec.provenance.execution_id == first
    assert stored.spec.provenance.session_id == done.spec.session_id
    assert stored.spec.provenance.tool_call_id

    llm.add(text("Green."))
    second = await start(backend, "bot", "Which colour does Ada like?")  # a new session
    answered = await AgentRunner().execute(backend, second)
    assert answered.status.phase == P.PHASE_SUCCEEDED, answered.status.error
    system = llm.requests[-1]["messages"][0]
    assert system["role"] == "system"
    assert "Ada's favourite colour is green" in system["content"] and stored.metadata.id in system["content"]
    # an unrelated message recalls nothing
    llm.add(text("Hello."))
    await AgentRunner().execute(backend, await start(backend, "bot", "What time is it in Tokyo?"))
    assert "favourite colour" not in json.dumps(llm.requests[-1]["messages"])


async def test_recall_and_forget_tools(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra=MEMORY))
    for fact in ("The deploy window is Tuesday.", "The office is in Lyon."):
        llm.add(call("remember", fact=fact), text("ok"))
        await AgentRunner().execute(backend, await start(backend, "bot", "note this"))
    deploy = next(
        m
        for m in (await backend.list_memories(svc.ListMemoriesRequest(agent="bot"))).memories
        if "deploy" in m.spec.fact
    )
    llm.add(
        call("recall", query="deploy day"), call("forget", memory_id=deploy.metadata.id), text("Forgotten.")
    )
    done = await AgentRunner().execute(backend, await start(backend, "bot", "forget the deploy window"))
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    recalled = next(m for m in llm.requests[-2]["messages"] if m["role"] == "tool")["content"]
    assert "The deploy window is Tuesday." in recalled and "Lyon" not in recalled
    assert await _memories(backend) == ["The office is in Lyon."]
    # forgetting what is not there is the model's to fix, not a failed run
    llm.add(call("forget", memory_id="mem_nope"), text("It was not there."))
    again = await AgentRunner().execute(backend, await start(backend, "bot", "forget mem_nope"))
    assert again.status.phase == P.PHASE_SUCCEEDED, again.status.error
    assert "does not exist" in json.dumps(llm.requests[-1]["messages"])


async def test_subjects_keep_facts_about_people_apart(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  memory: {enabled: true, subject: team}\n"))
    for who, fact in (("ada", "Ada's cat is called Pixel."), ("bob", "Bob's cat is called Byte.")):
        llm.add(call("remember", fact=fact), text("ok"))
        await AgentRunner().execute(
            backend, await start(backend, "bot", "note", env={"STIGMER_MEMORY_SUBJECT": who})
        )
    llm.add(call("remember", fact="The team's cats visit on Fridays."), text("ok"))
    await AgentRunner().execute(backend, await start(backend, "bot", "note"))  # the agent's subject: team
    found = (await backend.list_memories(svc.ListMemoriesRequest(agent="bot"))).memories
    assert {m.spec.subject for m in found} == {"ada", "bob", "team"}
    llm.add(text("Pixel."))
    await AgentRunner().execute(
        backend, await start(backend, "bot", "What is my cat called?", env={"STIGMER_MEMORY_SUBJECT": "ada"})
    )
    system = llm.requests[-1]["messages"][0]["content"]
    assert "Pixel" in system and "Byte" not in system and "Fridays" not in system
