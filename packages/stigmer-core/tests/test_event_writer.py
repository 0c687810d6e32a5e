"""The event writer: numbering, scrubbing, buffering, limits and stopping, against a small in-memory
store that keeps the rules of ``UpdateExecutionStatus`` the writer depends on (explicit sequence
numbers without gaps, an identical resend is a no-op, a finished execution takes nothing new, a
phase change appends a ``phase`` event). Backend-backed tests are in the runners' test folders."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import (
    TERMINAL_PHASES,
    AlreadyExists,
    EventWriter,
    FailedPrecondition,
    Limits,
    NewEvent,
    Redactor,
    RunStopped,
    Unavailable,
    check_event_limits,
    from_value,
    jsonable,
    to_value,
)
from stigmer.core._event_writer import WRITE_ATTEMPTS
from stigmer.core._values import value_of_json
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

SECRET = "sk-live-7f3a9c2e51d84b06"


class Store:
    """The part of a Backend the writer calls: ``update_execution_status`` and ``get_execution``."""

    def __init__(self, phase: int = ex.PHASE_RUNNING, last_sequence: int = 0) -> None:
        self.execution = ex.Execution()
        self.execution.metadata.id = "ex-1"
        self.execution.status.phase = phase  # type: ignore[assignment]
        self.execution.status.last_sequence = last_sequence
        self.events: dict[int, ex.ExecutionEvent] = {}
        self.requests: list[svc.UpdateExecutionStatusRequest] = []
        self.unavailable = 0  # calls to refuse with Unavailable first

    async def get_execution(self, request: svc.GetExecutionRequest) -> ex.Execution:
        out = ex.Execution()
        out.CopyFrom(self.execution)
        return out

    async def update_execution_status(self, request: svc.UpdateExecutionStatusRequest) -> ex.Execution:
        if self.unavailable:
            self.unavailable -= 1
            raise Unavailable("try again")
        copy = svc.UpdateExecutionStatusRequest()
        copy.CopyFrom(request)
        self.requests.append(copy)
        status = self.execution.status
        finished = status.phase in TERMINAL_PHASES
        for event in request.events:
            if event.sequence <= status.last_sequence:
                if self.events.get(event.sequence) != event:
                    raise FailedPrecondition(
                        f"event {event.sequence} is already stored with different content"
                    )
                continue
            if event.sequence != status.last_sequence + 1:
                raise ValueError(f"gap before {event.sequence}")
            if finished:
                raise FailedPrecondition("a finished execution takes no new events")
            self.append(event)
        if finished and (request.checkpoint or request.tasks or request.HasField("output")):
            raise FailedPrecondition("a finished execution cannot change")
        if request.phase and request.phase != status.phase:
            if finished:
                raise FailedPrecondition("a finished execution cannot change")
            self.set_phase(request.phase)
        if request.HasField("pending_approval") and status.phase != ex.PHASE_WAITING_APPROVAL:
            raise FailedPrecondition("pending_approval can only be set with phase WAITING_APPROVAL")
        if request.checkpoint:
            status.checkpoint = request.checkpoint
        if request.HasField("output"):
            status.output.CopyFrom(request.output)
        if request.HasField("error"):
            status.error.CopyFrom(request.error)
        return await self.get_execution(svc.GetExecutionRequest())

    def append(self, event: ex.ExecutionEvent) -> None:
        self.execution.status.last_sequence += 1
        stored = ex.ExecutionEvent()
        stored.CopyFrom(event)
        stored.sequence = self.execution.status.last_sequence
        self.events[stored.sequence] = stored

    def set_phase(self, phase: int) -> None:
        self.execution.status.phase = phase  # type: ignore[assignment]
        self.append(ex.ExecutionEvent(execution_id="ex-1", type="phase", phase=phase))  # type: ignore[arg-type]

    def log(self) -> list[ex.ExecutionEvent]:
        return [self.events[n] for n in sorted(self.events)]


def writer(store: Store, **options: Any) -> EventWriter:
    options.setdefault("redactor", Redactor([SECRET]))
    options.setdefault("last_sequence", store.execution.status.last_sequence)
    return EventWriter(store, "ex-1", runner="test-runner", **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------ numbering
async def test_events_continue_after_the_stored_ones_and_after_the_backends_phase_events() -> None:
    store = Store(last_sequence=3)
    out = writer(store)
    await out.event("log", text="one")
    await out.update(phase=ex.PHASE_WAITING_APPROVAL, events=[NewEvent("approval.requested", subject="c1")])
    await out.event("log", text="two")
    assert [(e.sequence, e.type) for e in store.log()] == [
        (4, "log"),
        (5, "approval.requested"),
        (6, "phase"),
        (7, "log"),
    ]
    assert out.sequence == 7
    assert {r.runner for r in store.requests} == {"test-runner"}
    assert all(e.execution_id == "ex-1" and e.HasField("time") for e in store.log() if e.type != "phase")


async def test_a_write_that_meets_events_appended_meanwhile_is_numbered_after_them() -> None:
    store = Store()
    out = writer(store)
    await out.event("log", text="mine")
    store.append(ex.ExecutionEvent(execution_id="ex-1", type="approval.resolved"))  # someone else
    await out.event("log", text="mine again")
    assert [(e.sequence, e.type, e.text) for e in store.log()] == [
        (1, "log", "mine"),
        (2, "approval.resolved", ""),
        (3, "log", "mine again"),
    ]
    assert out.sequence == 3


async def test_a_resend_after_an_unavailable_backend_is_idempotent() -> None:
    store = Store()
    store.unavailable = 1
    out = writer(store)
    await out.event("log", text="once")
    await store.update_execution_status(store.requests[-1])  # the same call again: nothing new
    assert [e.text for e in store.log()] == ["once"]


async def test_a_backend_that_stays_unavailable_fails_the_write(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    store.unavailable = 10
    out = writer(store)
    original = asyncio.sleep

    async def no_wait(delay: float) -> None:
        await original(0)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    with pytest.raises(Unavailable):
        await out.event("log", text="lost")
    assert store.unavailable == 10 - WRITE_ATTEMPTS


# ------------------------------------------------------------------ scrubbing
class Opaque:
    def __str__(self) -> str:
        return f"<client token={SECRET}>"


async def test_no_secret_reaches_the_store_in_any_field_or_encoding() -> None:
    store = Store()
    out = writer(store, buffered=True)
    b64 = base64.b64encode(SECRET.encode()).decode()
    await out.event(
        "task.completed",
        subject=f"/do/{SECRET}",
        text=f"said {SECRET}",
        data={
            SECRET: "as a key",
            "nested": [{"value": f"Bearer {SECRET}"}],
            "encoded": f"basic {b64}",
            "escaped": json.dumps({"token": SECRET}),
            "url": f"https://x.test/?k={SECRET}",
            "object": Opaque(),
        },
    )
    await out.delta(f"streamed {SECRET[:5]}")
    await out.delta(SECRET[5:])
    await out.save_checkpoint({"vars": {"token": SECRET}})
    await out.update(
        phase=ex.PHASE_FAILED,
        output={"token": SECRET},
        error={"type": "x", "title": f"t {SECRET}", "detail": f"d {SECRET}", "status": 500},
    )
    stored = b"".join(r.SerializeToString() for r in store.requests)
    assert store.requests and b"***" in stored
    for form in (SECRET, b64, b64.rstrip("=")):
        assert form.encode() not in stored, form
    first = store.log()[0]
    assert first.subject == "/do/***" and first.text == "said ***"
    data = from_value(first.data)
    assert data["***"] == "as a key" and data["object"] == "<client token=***>"
    assert json.loads(store.execution.status.checkpoint) == {"vars": {"token": "***"}}
    assert store.execution.status.error.detail == "d ***"


async def test_a_mask_cutting_json_syntax_falls_back_to_masking_the_strings() -> None:
    store = Store()
    out = writer(store, redactor=Redactor(['"b", "c']))
    await out.event("log", data=["a", "b", "c"])
    await out.save_checkpoint('["b", "c"]')
    assert from_value(store.log()[0].data) == ["a", "b", "c"]  # no single string holds the value
    assert json.loads(store.execution.status.checkpoint) == ["b", "c"]
    # a mask that leaves valid JSON stays: the value is masked either way
    spanning = writer(store, redactor=Redactor(['b", "c']))
    await spanning.event("log", data=["a", "b", "c"])
    assert from_value(store.log()[-1].data) == ["a", "***"]


# ------------------------------------------------------------------ buffering
async def test_a_buffered_writer_writes_on_flush_when_full_and_with_the_next_phase() -> None:
    store = Store()
    out = writer(store, buffered=True, flush_interval=3600, max_buffered=3)
    task = ex.TaskProgress(path="/do/0/a", name="a", attempts=1)
    task.started_at.GetCurrentTime()
    await out.event("task.started", subject="/do/0/a", task=task)
    done = ex.TaskProgress(path="/do/0/a", name="a", attempts=1, phase=ex.PHASE_SUCCEEDED)
    await out.event("task.completed", subject="/do/0/a", task=done)
    await out.save_checkpoint({"at": 1})
    assert store.requests == []
    await out.flush()
    (request,) = store.requests
    assert [e.type for e in request.events] == ["task.started", "task.completed"]
    assert len(request.tasks) == 1 and request.tasks[0].HasField("started_at")  # merged by path
    assert request.tasks[0].phase == ex.PHASE_SUCCEEDED and request.checkpoint == '{"at": 1}'
    for n in range(3):
        await out.event("log", text=str(n))
    assert len(store.requests) == 2  # max_buffered reached
    await out.event("log", text="last")
    await out.update(phase=ex.PHASE_SUCCEEDED, output=None)
    assert len(store.requests) == 3
    assert [e.type for e in store.log()[-2:]] == ["log", "phase"]
    assert store.execution.status.HasField("output")  # a null output is an output
    await out.flush()  # nothing pending: no call
    assert len(store.requests) == 3


async def test_streamed_text_is_coalesced_by_size_and_time_and_kept_in_order() -> None:
    store = Store()
    out = writer(store, text_interval=3600, text_chars=10)
    for piece in ["abc", "def", "ghij", "kl"]:
        await out.delta(piece)
    await out.event("message.assistant", text="abcdefghijkl")
    await out.delta("x", subject="agent-a")
    await out.delta("y", subject="agent-b")  # another subject: the first one's text is written
    await out.flush()
    assert [(e.type, e.subject, e.text) for e in store.log()] == [
        ("text.delta", "", "abcdefghij"),
        ("text.delta", "", "kl"),
        ("message.assistant", "", "abcdefghijkl"),
        ("text.delta", "agent-a", "x"),
        ("text.delta", "agent-b", "y"),
    ]
    timely = writer(store, text_interval=0.0, text_chars=10_000)
    await timely.delta("now")
    assert store.log()[-1].text == "now"


# ------------------------------------------------------------------ limits
async def test_over_the_limits_the_runners_error_is_raised_and_nothing_is_written() -> None:
    store = Store()

    class Over(Exception):
        pass

    def limit_error(limit: str, what: str, subject: str) -> Exception:
        return Over(limit, what, subject)

    out = writer(
        store,
        limits=Limits(events=2, event_bytes=50),
        limit_error=limit_error,
        unlimited_types={"task.failed"},
    )
    with pytest.raises(Over) as big:
        await out.event("task.completed", subject="/do/0/a", data={"blob": "x" * 100})
    assert big.value.args[0] == "event_bytes" and big.value.args[2] == "/do/0/a"
    await out.event("log")
    await out.event("log")
    with pytest.raises(Over) as many:
        await out.event("log")
    assert many.value.args[:2] == ("events", "this execution recorded 2 events")
    await out.event("task.failed", data={"detail": "x" * 100})  # always written
    assert [e.type for e in store.log()] == ["log", "log", "task.failed"]


def test_the_default_limit_error_names_the_setting_that_raises_it() -> None:
    with pytest.raises(FailedPrecondition, match=r"STIGMER_LIMIT_EVENT_BYTES or limits\.eventBytes"):
        check_event_limits(Limits(event_bytes=10), 1, 11, "tool.call")


# ------------------------------------------------------------------ stopping
def test_run_stopped_passes_through_code_that_catches_exception() -> None:
    assert not issubclass(RunStopped, Exception)
    assert issubclass(RunStopped, BaseException)
    cancelled = ex.Execution()
    cancelled.metadata.id = "ex-9"
    cancelled.status.phase = ex.PHASE_CANCELLED
    stopped = RunStopped(cancelled)
    assert str(stopped) == "execution ex-9 is CANCELLED"


@pytest.mark.parametrize("refused", [FailedPrecondition, AlreadyExists])
async def test_a_cancelled_execution_stops_the_run_with_the_execution_as_it_stands(
    refused: type[Exception],
) -> None:
    store = Store()
    out = writer(store)
    await out.event("log")
    store.set_phase(ex.PHASE_CANCELLED)
    with pytest.raises(RunStopped) as stopped:
        await out.event("log")
    assert stopped.value.execution.status.phase == ex.PHASE_CANCELLED
    # a status-only write that the backend accepts (no change) still shows the end
    with pytest.raises(RunStopped):
        await out.update(usage=ex.Usage(requests=1))
    # writing the same end is no stop
    done = await out.update(phase=ex.PHASE_CANCELLED)
    assert done.status.phase == ex.PHASE_CANCELLED


async def test_writing_another_end_after_a_cancel_stops_the_run() -> None:
    store = Store()
    out = writer(store)
    store.set_phase(ex.PHASE_CANCELLED)
    with pytest.raises(RunStopped):
        await out.update(phase=ex.PHASE_FAILED, error=ex.ExecutionError(title="boom"))
    assert store.execution.status.phase == ex.PHASE_CANCELLED


async def test_a_refusal_that_is_not_a_stop_is_raised() -> None:
    out = writer(Store())
    with pytest.raises(FailedPrecondition, match="WAITING_APPROVAL"):
        await out.update(pending_approval=ex.ApprovalRequest(id="c1"))


# ------------------------------------------------------------------ values
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**50), max_value=2**50)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(_json)
def test_to_value_builds_what_parse_dict_builds(data: Any) -> None:
    assert to_value(data) == json_format.ParseDict(data, struct_pb2.Value())


def test_jsonable_turns_objects_into_plain_data() -> None:
    class Model:
        def model_dump(self, mode: str) -> dict[str, Any]:
            return {"mode": mode}

    data = jsonable({"m": Model(), "b": b"\x00secret", "t": (1, 2), "o": Opaque()})
    assert data == {"m": {"mode": "json"}, "b": "<7 bytes>", "t": [1, 2], "o": f"<client token={SECRET}>"}
    loop: list[Any] = []
    loop.append(loop)
    assert isinstance(jsonable(loop), str)


# ------------------------------------------------------------------ handing over
async def test_a_handover_stops_the_run_at_a_step_boundary_with_its_progress_written() -> None:
    from stigmer.core import Handover, handing_over, handover_requested

    store = Store()
    out = writer(store, buffered=True, flush_interval=3600)
    await out.hand_over_if_requested()  # no handover in this context: nothing happens
    handover = Handover()
    with handing_over(handover):
        await out.hand_over_if_requested()  # not requested yet
        assert not handover_requested()
        await out.event("task.completed", subject="/do/0/a")
        await out.save_checkpoint({"next": 1})
        handover.request()
        assert handover_requested()
        with pytest.raises(RunStopped) as stopped:
            await out.hand_over_if_requested()
    assert not handover_requested()  # only within the block
    assert stopped.value.execution.status.phase == ex.PHASE_RUNNING  # RUNNING, for another process
    assert [e.type for e in store.log()] == ["task.completed"]  # what was pending was written first
    assert store.execution.status.checkpoint == '{"next": 1}'


# ------------------------------------------------------------------ payloads kept, data as JSON reads back
def _as_before(out: EventWriter, data: Any) -> struct_pb2.Value:
    """An event's data as the writer made it before it kept payloads: its JSON text, masked, read back."""
    return value_of_json(out._scrubbed_json(data)[1])


_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats()
    | st.sampled_from([SECRET, f"Bearer {SECRET}", base64.b64encode(SECRET.encode()).decode(), "plain"])
    | st.text(max_size=6)
    | st.tuples(st.integers(), st.text(max_size=3))
    | st.builds(Opaque),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.just(SECRET) | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.lists(_data, min_size=1, max_size=4))
async def test_event_data_is_the_masked_json_read_back_whether_kept_or_made(payloads: list[Any]) -> None:
    store = Store()
    out = writer(store)
    for data in [*payloads, *payloads]:  # the second time, payloads kept by their text are used
        await out.event("log", data=data)
    for event, data in zip(store.log(), [*payloads, *payloads], strict=True):
        if data is None:
            assert not event.HasField("data")
        else:
            assert event.data.SerializeToString(deterministic=True) == _as_before(
                out, data
            ).SerializeToString(deterministic=True)
            assert SECRET.encode() not in event.SerializeToString()


async def test_a_payload_kept_before_a_value_became_secret_is_masked_after() -> None:
    store = Store()
    out = writer(store)
    data = {"token": "tok-0123456789", "n": 1}
    await out.event("task.completed", data=data)
    out.redactor.register("tok-0123456789")  # read from a secret meanwhile
    await out.event("task.started", data=data)
    first, second = (from_value(e.data) for e in store.log())
    assert first == data
    assert second == {"token": "***", "n": 1}


async def test_data_protobuf_cannot_hold_fails_the_event_and_leaves_nothing_behind() -> None:
    store = Store()
    out = writer(store, buffered=True, flush_interval=3600)
    await out.event("log", text="before")
    with pytest.raises(UnicodeError):
        await out.event("log", data={"bad": "\ud800"})
    await out.event("log", text="after", data={"fine": True})
    await out.flush()
    assert [(e.sequence, e.text) for e in store.log()] == [(1, "before"), (2, "after")]


async def test_events_held_while_a_write_is_under_way_follow_it_in_order() -> None:
    class SlowStore(Store):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def update_execution_status(self, request: svc.UpdateExecutionStatusRequest) -> ex.Execution:
            await self.gate.wait()
            return await super().update_execution_status(request)

    store = SlowStore()
    out = writer(store, buffered=True, max_buffered=1)  # every event is a write
    first = asyncio.ensure_future(out.event("log", text="one"))
    await asyncio.sleep(0)  # the first write is under way, holding the lock
    later = [asyncio.ensure_future(out.event("log", text=t)) for t in ("two", "three")]
    checkpoint = asyncio.ensure_future(out.save_checkpoint({"next": 3}))
    await asyncio.sleep(0)
    assert [e.text for e in store.log()] == []
    store.gate.set()
    await asyncio.gather(first, *later, checkpoint)
    await out.flush()
    assert [(e.sequence, e.text) for e in store.log()] == [(1, "one"), (2, "two"), (3, "three")]
    assert store.execution.status.checkpoint == '{"next": 3}'
    assert out._turns == 0
