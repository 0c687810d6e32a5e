"""The event sink: sequence numbers after last_sequence, coalesced text, scrubbing, idempotent resend."""

from __future__ import annotations

from stigmer.core import Backend, Redactor
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.runner.agent._events import EventSink
from stigmer.testing import ScriptedLLM, text
from stigmer.testing.agents import apply, events, openai_agent, start


async def _running(backend: Backend, llm: ScriptedLLM) -> execution_pb2.Execution:
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "hi")
    return await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, phase=execution_pb2.PHASE_RUNNING)
    )


async def test_text_is_coalesced_by_size(backend: Backend, llm: ScriptedLLM) -> None:
    running = await _running(backend, llm)
    eid = running.metadata.id
    sink = EventSink(
        backend,
        eid,
        last_sequence=running.status.last_sequence,
        redactor=Redactor(),
        runner="t",
        flush_interval=3600,
        flush_chars=10,
    )
    for piece in ["abc", "def", "ghij", "kl", "m"]:
        await sink.delta(piece)
    await sink.flush()
    deltas = [e.text for e in await events(backend, eid) if e.type == "text.delta"]
    assert deltas == ["abcdefghij", "klm"]


async def test_text_is_coalesced_by_time(backend: Backend, llm: ScriptedLLM) -> None:
    running = await _running(backend, llm)
    eid = running.metadata.id
    sink = EventSink(
        backend,
        eid,
        last_sequence=running.status.last_sequence,
        redactor=Redactor(),
        runner="t",
        flush_interval=0.0,
        flush_chars=10_000,
    )
    await sink.delta("a")
    await sink.delta("b")
    deltas = [e.text for e in await events(backend, eid) if e.type == "text.delta"]
    assert deltas == ["a", "b"]


async def test_events_are_scrubbed_and_resend_is_idempotent(backend: Backend, llm: ScriptedLLM) -> None:
    running = await _running(backend, llm)
    eid = running.metadata.id
    sink = EventSink(
        backend, eid, last_sequence=running.status.last_sequence, redactor=Redactor(["hunter22"]), runner="t"
    )
    await sink.emit("log", text="password hunter22", data={"nested": ["hunter22!"]})
    log = await events(backend, eid)
    last = log[-1]
    assert last.sequence == running.status.last_sequence + 1
    assert last.text == "password ***"
    assert "hunter22" not in str(last.data)
    # Resending the same event (same sequence, same content) is a no-op.
    again = await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, events=[last])
    )
    assert again.status.last_sequence == last.sequence


async def test_long_answer_streams_in_several_deltas(backend: Backend, llm: ScriptedLLM) -> None:
    answer = "word " * 200  # 1000 characters
    llm.add(text(answer))
    await apply(backend, openai_agent(llm))
    eid = await start(backend, "bot", "talk")
    done = await AgentRunner(flush_interval=3600, flush_chars=200).execute(backend, eid)
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED
    log = await events(backend, eid)
    deltas = [e.text for e in log if e.type == "text.delta"]
    assert "".join(deltas) == answer
    assert 2 <= len(deltas) <= 5  # coalesced: the stand-in sends 3-4 pieces of ~333 characters
    assert [e.text for e in log if e.type == "message.assistant"] == [answer]


def test_clip_keeps_small_values_and_truncates_large_ones() -> None:
    from stigmer.runner.agent._events import clip

    assert clip({"a": [1, 2]}) == {"a": [1, 2]}
    assert clip("x" * 10) == "x" * 10
    clipped = clip("y" * 50, limit=20)
    assert clipped == "y" * 20 + "... [30 more characters]"
