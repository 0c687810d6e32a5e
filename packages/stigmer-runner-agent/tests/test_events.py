"""The event sink (core's EventWriter as the agent uses it): sequence numbers after last_sequence,
coalesced text, scrubbing, idempotent resend, and a cancel noticed by a write stopping the run."""

from __future__ import annotations

import asyncio
import time

from stigmer.core import Backend, Redactor
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.runner.agent._events import EventSink
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, events, openai_agent, start, stdio_server


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


async def test_a_cancel_noticed_by_a_write_inside_the_model_loop_stops_the_run(
    backend: Backend, llm: ScriptedLLM
) -> None:
    """No polling here: the ``tool.result`` write after the cancel raises ``RunStopped`` inside
    the model library's loop; it passes through everything that catches ``Exception`` and the
    run returns the execution as it stands."""
    llm.add(call("wait", seconds=1), text("never"))
    await apply(backend, stdio_server("slow"))
    await apply(backend, openai_agent(llm, extra="  mcpServers: [{name: slow}]\n"))
    eid = await start(backend, "bot", "wait a second")
    run = asyncio.ensure_future(AgentRunner(cancel_poll=3600).execute(backend, eid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [
        e for e in await events(backend, eid) if e.type == "tool.call"
    ]:
        await asyncio.sleep(0.05)
    await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="changed my mind"))
    done = await asyncio.wait_for(run, 20)
    assert done.status.phase == execution_pb2.PHASE_CANCELLED
    assert len(llm.requests) == 1
    log = await events(backend, eid)
    assert [e.type for e in log if e.type.startswith("tool.")] == ["tool.call"]
    assert not done.status.HasField("error")
