"""The one writer of an execution's events and status, used by every runner.

:class:`EventWriter` turns what a runner reports into ``UpdateExecutionStatus`` calls on a
``Backend``. The runner chooses the event *kinds* (``task.started``, ``tool.call``, ...); the
writer does the rest, the same way for every runner:

- **numbering**: events carry explicit sequence numbers, continuing after the execution's
  ``status.last_sequence`` (a resumed run continues the log without gaps), so resending a call
  after a transient failure is idempotent; the events the backend appends itself (``phase``) are
  skipped, and a write that meets events appended meanwhile is renumbered once after them;
- **scrubbing**: every subject, text, payload, output, error and checkpoint passes through the
  run's :class:`~stigmer.core.Redactor` (payloads as their JSON text, so a secret is masked in
  every form the redactor knows, keys and ``str()`` of objects included) before it is written;
- **buffering**: streamed text (:meth:`EventWriter.delta`) is coalesced into ``text.delta``
  events, flushed every ``text_interval`` seconds or ``text_chars`` characters; a ``buffered``
  writer also group-commits events, task progress and the latest checkpoint, writing them in one
  call when they have waited ``flush_interval`` seconds or filled ``max_buffered`` events, on
  :meth:`EventWriter.flush` (call it before every effect, so a crash never leaves a completed
  effect unrecorded) and with the next :meth:`EventWriter.update`;
- **limits**: over the execution's event count or one event's size (:class:`~stigmer.core.Limits`)
  it raises the runner's limit error instead of writing (``unlimited_types`` are always written:
  the failure that ends the run);
- **stopping**: when the backend says the execution ended elsewhere (cancelled), the writer
  raises :class:`RunStopped` carrying the execution as it stands; terminal phases are
  :data:`~stigmer.core.TERMINAL_PHASES`;
- **handing over**: at a step boundary a runner calls :meth:`EventWriter.hand_over_if_requested`,
  which, when the process running it asked to hand the run over (:class:`~stigmer.core.Handover`,
  Lite's Ctrl-C), writes what is pending and raises :class:`RunStopped` with the execution RUNNING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from stigmer.core._backend import Backend
from stigmer.core._errors import AlreadyExists, FailedPrecondition, Unavailable
from stigmer.core._handover import handover_requested
from stigmer.core._limits import LIMIT_SETTINGS, Limits
from stigmer.core._phases import is_terminal, phase_name
from stigmer.core._redact import Redactor
from stigmer.core._values import (
    json_default,
    set_json_value,
    set_plain_json_value,
    stamp_now,
    value_of_json,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["EventWriter", "LimitError", "NewEvent", "RunStopped", "check_event_limits"]

log = logging.getLogger(__name__)

#: A runner's limit error: ``(limit, what, subject)`` -> the exception to raise. ``limit`` is the
#: :class:`Limits` field, ``what`` says what went over, ``subject`` is the event's subject.
LimitError = Callable[[str, str, str], Exception]

#: Attempts of one write while the backend is unavailable (waiting 0.2 s, 0.4 s, ... between them).
WRITE_ATTEMPTS: Final = 5


class RunStopped(BaseException):
    """The execution was cancelled (or finished elsewhere) while this runner worked on it.

    ``execution`` is the execution as it stands. The run just stops: its loop catches
    ``RunStopped`` by name at the top and returns ``execution``.

    It is a ``BaseException`` (like ``asyncio.CancelledError``), not an ``Exception``, on purpose:
    between the writer and the top of a run loop, code catches ``Exception`` broadly — a workflow's
    ``try``/``catch`` and the interpreter's fault handling and retries, an agent tool that turns
    errors into results, a run loop that marks the execution FAILED on any error. Each would turn a
    stop into a failure to record (which the backend refuses) or into more work nobody wants.
    """

    def __init__(self, execution: execution_pb2.Execution) -> None:
        phase = phase_name(execution.status.phase)
        super().__init__(f"execution {execution.metadata.id} is {phase}")
        self.execution = execution


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write with :meth:`EventWriter.update`: numbered, stamped and scrubbed then."""

    type: str
    subject: str = ""
    text: str = ""
    data: Any = None


def default_limit_error(limit: str, what: str, subject: str) -> Exception:
    """The limit error of a runner that has none of its own: a ``FailedPrecondition``."""
    variable, key = LIMIT_SETTINGS[limit]
    where = f" at {subject}" if subject else ""
    return FailedPrecondition(
        f"{what}{where}; the runner's operator can raise it with {variable} or limits.{key} in config.yaml"
    )


def check_event_limits(
    limits: Limits, count: int, size: int, subject: str, limit_error: LimitError = default_limit_error
) -> None:
    """Raise ``limit_error(...)`` when recording an event would make ``count`` events, or when its
    data is ``size`` bytes (as JSON), over ``limits``."""
    if count > limits.events:
        raise limit_error("events", f"this execution recorded {limits.events} events", subject)
    if size > limits.event_bytes:
        what = f"an event's data is {size} bytes, over the limit of {limits.event_bytes} bytes"
        raise limit_error("event_bytes", what, subject)


_NO_OUTPUT: Any = object()
_AS_IS: Any = object()  # see EventWriter._payload


class EventWriter:
    """Numbers, scrubs, buffers and writes the events and status of one execution."""

    def __init__(
        self,
        backend: Backend,
        execution_id: str,
        *,
        last_sequence: int,
        redactor: Redactor,
        runner: str,
        buffered: bool = False,
        flush_interval: float = 0.25,
        max_buffered: int = 256,
        text_interval: float = 0.1,
        text_chars: int = 200,
        limits: Limits | None = None,
        limit_error: LimitError = default_limit_error,
        unlimited_types: Collection[str] = (),
    ) -> None:
        self.backend = backend
        self.execution_id = execution_id
        self.sequence = last_sequence  # the last number given to an event (or stored)
        self.redactor = redactor
        self.runner = runner
        self.buffered = buffered
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self.text_interval = text_interval
        self.text_chars = text_chars
        self.limits = limits if limits is not None else Limits()
        self.limit_error = limit_error
        self.unlimited_types = frozenset(unlimited_types)
        self._lock = asyncio.Lock()
        self._turns = 0  # calls holding the lock or waiting for it (see _Turn)
        # The last payloads' JSON texts -> their size once masked and their Value (see _payload).
        self._payloads: dict[str, tuple[int, bytes]] = {}
        self._payloads_of: tuple[Redactor, int] | None = None  # the masking they were made with
        # pending (numbered) events, task progress by path, the latest checkpoint
        self._request = svc.UpdateExecutionStatusRequest()  # pending events are made in it
        self._events = self._request.events
        self._tasks: dict[str, execution_pb2.TaskProgress] = {}
        self._checkpoint: Mapping[str, Any] | str | None = None
        self._since = 0.0  # when the oldest pending item was held
        # streamed text not yet made an event
        self._text: list[str] = []
        self._text_len = 0
        self._text_since = 0.0
        self._text_subject = ""

    # -- what runners call -----------------------------------------------------------------------
    async def event(
        self,
        type: str,
        *,
        subject: str = "",
        text: str = "",
        data: Any = None,
        task: execution_pb2.TaskProgress | None = None,
    ) -> None:
        """Write one event (after any buffered text), with the task's progress; a buffered writer
        holds it until the buffer is due. Over the limits it raises the limit error instead."""
        await self._held(self._add, type, subject, text, data, task)

    async def delta(self, text: str, subject: str = "") -> None:
        """Buffer streamed text; it is written as one ``text.delta`` event when due (or when the
        subject changes, or with the next event)."""
        if not text:
            return
        async with _Turn(self):
            if self._text and subject != self._text_subject:
                await self._send(self._take())
            if not self._text:
                self._text_since = time.monotonic()
                self._text_subject = subject
            self._text.append(text)
            self._text_len += len(text)
            if self._text_len >= self.text_chars or time.monotonic() - self._text_since >= self.text_interval:
                await self._send(self._take())

    async def save_checkpoint(self, state: Mapping[str, Any] | str) -> None:
        """Store the resume point (data, or JSON text); no event. Buffered like events."""
        await self._held(self._hold_checkpoint, state)

    async def update(
        self,
        *,
        phase: int = execution_pb2.PHASE_UNSPECIFIED,
        events: Iterable[NewEvent] = (),
        output: Any = _NO_OUTPUT,
        error: execution_pb2.ExecutionError | Mapping[str, Any] | None = None,
        usage: execution_pb2.Usage | None = None,
        pending_approval: execution_pb2.ApprovalRequest | None = None,
        checkpoint: Mapping[str, Any] | str | None = None,
        workspace: execution_pb2.WorkspaceState | None = None,
        todos: execution_pb2.TodoList | None = None,
    ) -> execution_pb2.Execution:
        """Write everything pending, then ``events``, and the status changes, in one call.

        A ``phase`` change makes the backend append its ``phase`` event after these. ``error`` is
        an ``ExecutionError`` or an RFC 7807 problem mapping; ``output`` is any plain data.
        """
        built = [self._build(e.type, e.subject, e.text, e.data) for e in events]
        async with _Turn(self):
            for event in built:
                self._hold(event)
            if checkpoint:
                self._checkpoint = checkpoint
            request = self._take()
            request.phase = phase  # type: ignore[assignment]
            if output is not _NO_OUTPUT:
                request.output.CopyFrom(value_of_json(self._scrubbed_json(output)[1]))
            if error is not None:
                request.error.CopyFrom(self._error(error))
            if usage is not None:
                request.usage.CopyFrom(usage)
            if pending_approval is not None:
                request.pending_approval.CopyFrom(pending_approval)
            if workspace is not None:
                request.workspace.CopyFrom(workspace)
            if todos is not None:
                request.todos.CopyFrom(todos)
            return await self._send(request, final=is_terminal(phase))

    async def flush(self) -> None:
        """Write whatever is buffered (nothing to do when nothing is)."""
        if not self._pending():
            return
        async with _Turn(self):
            if self._pending():
                await self._send(self._take())

    async def hand_over_if_requested(self) -> None:
        """At a step boundary: when this run is being handed over (:func:`handover_requested`),
        write what is pending and stop with :class:`RunStopped` (the execution stays RUNNING, and
        whoever resumes it starts from here)."""
        if not handover_requested():
            return
        await self.flush()
        current = await self.backend.get_execution(svc.GetExecutionRequest(id=self.execution_id))
        raise RunStopped(current)

    # -- building --------------------------------------------------------------------------------
    def _build(self, type: str, subject: str, text: str, data: Any) -> execution_pb2.ExecutionEvent:
        """An unnumbered event, scrubbed and checked against the limits."""
        payload = self._checked(type, subject, data)
        event = execution_pb2.ExecutionEvent()
        self._fill(event, type, subject, text, data, payload)
        return event

    def _checked(self, kind: str, subject: str, data: Any) -> Any:
        """The payload (see :meth:`_payload`) of the ``data`` of an event of type ``kind``, after
        checking the event against the limits."""
        if data is None:
            size, payload = 0, None
        elif type(data) is int:  # its JSON text is its repr, and holds no string: nothing to mask
            size, payload = len(repr(data)), data
        elif type(data) in _NUMBERS:
            size, payload = len(_dumps(data)), data
        else:
            size, payload = self._payload(data)
        limits = self.limits
        if (self.sequence >= limits.events or size > limits.event_bytes) and kind not in self.unlimited_types:
            check_event_limits(limits, self.sequence + 1, size, subject, self.limit_error)
        return payload

    def _fill(
        self, event: execution_pb2.ExecutionEvent, kind: str, subject: str, text: str, data: Any, payload: Any
    ) -> None:
        """Make the empty ``event`` the event of these, scrubbed; ``payload`` from :meth:`_checked`."""
        scrub = self.redactor.scrub
        event.execution_id = self.execution_id
        event.type = kind
        if subject:
            event.subject = scrub(subject)
        if text:
            event.text = scrub(text)
        stamp_now(event.time)
        if data is None:
            return
        if payload is data:  # a number or a boolean
            set_json_value(event.data, data)
        elif type(payload) is bytes:
            event.data.MergeFromString(payload)
        else:  # (plain data or _AS_IS, its JSON text, its size): made now, and kept
            plain = payload[0]
            if plain is _AS_IS:  # data itself, when of JSON's own types; else as its text reads back
                if not set_plain_json_value(event.data, data):
                    event.ClearField("data")
                    set_json_value(event.data, json.loads(payload[1]))
            else:
                set_json_value(event.data, plain)
            self._keep_payload(payload[1], payload[2], event.data.SerializeToString())

    def _payload(self, data: Any) -> tuple[int, Any]:
        """An event's ``data``: its size as masked JSON, and what :meth:`_fill` makes its ``Value``
        of: the ``Value``'s bytes when kept, else ``(plain data, JSON text, size)`` where the
        plain data is ``_AS_IS`` when the text is ``data``'s own and nothing was masked in it
        (``data`` is then what the text reads back as, if it holds JSON's types only: see
        ``set_plain_json_value``).

        The last few are kept by their JSON text (as long as the redactor masks the same forms):
        a task's input is often the output the task before it has just recorded.
        """
        text = _dumps(data)
        redactor = self.redactor
        made_with = self._payloads_of
        if made_with is None or made_with[0] is not redactor or made_with[1] != redactor.revision:
            self._payloads.clear()
            self._payloads_of = (redactor, redactor.revision)
        kept = self._payloads.get(text)
        if kept is not None:
            return kept
        masked = self._mask_json(text)
        if masked is text and (type(data) is str or not text.startswith('"')):
            # (a text starting with a quote is a str's, or a fallback's: the str() of data JSON
            # cannot hold, such as a circular structure)
            return len(text), (_AS_IS, text, len(text))
        return len(masked), (json.loads(masked), text, len(masked))

    def _keep_payload(self, text: str, size: int, value: bytes) -> None:
        if len(text) <= _PAYLOAD_CHARS:
            if len(self._payloads) >= _PAYLOADS:
                del self._payloads[next(iter(self._payloads))]  # the oldest
            self._payloads[text] = (size, value)

    def _scrubbed_json(self, data: Any) -> tuple[str, Any]:
        """``data`` as JSON text and as plain data, with every secret masked (see :meth:`_mask_json`)."""
        text = _dumps(data)
        if data is None or type(data) in _NUMBERS:
            return text, data  # its text holds no string: nothing to mask, and it reads back as is
        masked = self._mask_json(text)
        return masked, json.loads(masked)

    def _mask_json(self, text: str) -> str:
        """JSON ``text`` with every secret masked.

        The text is scrubbed as a whole (one pass; keys, escaped and encoded forms, and the
        ``str()`` of objects included). Should a mask cut through JSON syntax, the decoded strings
        are scrubbed instead.
        """
        masked = str(self.redactor.scrub(text))
        if masked == text:
            return text
        try:
            json.loads(masked)
        except ValueError:
            try:
                return json.dumps(self.redactor.scrub(json.loads(text)))
            except ValueError:  # not JSON to begin with
                return masked
        return masked

    def _checkpoint_text(self, state: Mapping[str, Any] | str) -> str:
        return self._mask_json(state if isinstance(state, str) else _dumps(state))

    def _error(self, error: execution_pb2.ExecutionError | Mapping[str, Any]) -> execution_pb2.ExecutionError:
        if isinstance(error, Mapping):
            status = error.get("status")
            out = execution_pb2.ExecutionError(
                type=str(error.get("type") or ""),
                title=str(error.get("title") or ""),
                status=int(status) if isinstance(status, int | float) else 500,
                detail=str(error.get("detail") or ""),
                instance=str(error.get("instance") or ""),
            )
        else:
            out = execution_pb2.ExecutionError()
            out.CopyFrom(error)
        scrub = self.redactor.scrub
        out.type, out.title, out.detail = scrub(out.type), scrub(out.title), scrub(out.detail)
        out.instance = scrub(out.instance)
        return out

    # -- the buffer (called with the lock held, or while no call holds or waits for it) ----------
    async def _held(self, hold: Callable[..., None], *args: Any) -> None:
        """``hold(*args)`` (which does not await), then write the buffer when it is due. While no
        call holds the lock or waits for it, the hold takes no lock: nothing can be writing or
        renumbering the buffer then, and no await comes between that check and the hold."""
        if self._turns:
            async with _Turn(self):
                hold(*args)
                if not self.buffered or self._due():
                    await self._send(self._take())
            return
        hold(*args)
        if not self.buffered or self._due():
            async with _Turn(self):
                await self._send(self._take())

    def _add(
        self, type: str, subject: str, text: str, data: Any, task: execution_pb2.TaskProgress | None
    ) -> None:
        """Hold one event of these (after any buffered text, made an event first) and the task's
        progress; the event is made in the buffer."""
        if self._text:
            self._hold(self._build(type, subject, text, data))
        else:
            payload = self._checked(type, subject, data)
            self._mark()
            event = self._events.add()
            try:
                self._fill(event, type, subject, text, data, payload)
            except BaseException:  # data protobuf cannot hold (a lone surrogate): nothing is held
                del self._events[-1]
                raise
            self.sequence += 1
            event.sequence = self.sequence
        if task is not None:
            self._hold_task(task)

    def _hold_checkpoint(self, state: Mapping[str, Any] | str) -> None:
        self._mark()
        self._checkpoint = state

    def _hold(self, event: execution_pb2.ExecutionEvent) -> None:
        """Number ``event`` (after any buffered text, made an event first) and hold it."""
        self._mark()
        if self._text:
            self._hold_text()
        self.sequence += 1
        event.sequence = self.sequence
        self._events.append(event)

    def _hold_text(self) -> None:
        if not self._text:
            return
        text = "".join(self._text)
        self._text, self._text_len = [], 0
        self.sequence += 1
        event = self._events.add(
            execution_id=self.execution_id,
            sequence=self.sequence,
            type="text.delta",
            subject=self.redactor.scrub(self._text_subject),
            text=self.redactor.scrub(text),
        )
        stamp_now(event.time)

    def _hold_task(self, task: execution_pb2.TaskProgress) -> None:
        held = self._tasks.get(task.path)
        if held is None:
            self._tasks[task.path] = task
        else:
            held.MergeFrom(task)  # the backend upserts by path: a completion keeps its started_at

    def _pending(self) -> bool:
        return bool(self._events or self._tasks or self._checkpoint is not None or self._text)

    def _mark(self) -> None:
        if not (self._events or self._tasks or self._checkpoint is not None):
            self._since = time.monotonic()

    def _due(self) -> bool:
        return len(self._events) >= self.max_buffered or time.monotonic() - self._since >= self.flush_interval

    def _take(self) -> svc.UpdateExecutionStatusRequest:
        """A request carrying everything pending (buffered text last), clearing the buffer."""
        self._hold_text()
        request = self._request
        if self._tasks:
            request.tasks.extend(self._tasks.values())
        if self._checkpoint is not None:
            request.checkpoint = self._checkpoint_text(self._checkpoint)
        self._request = svc.UpdateExecutionStatusRequest()
        self._events, self._tasks, self._checkpoint = self._request.events, {}, None
        return request

    # -- writing ---------------------------------------------------------------------------------
    async def _send(
        self, request: svc.UpdateExecutionStatusRequest, *, final: bool = False
    ) -> execution_pb2.Execution:
        """Write ``request``; ``final`` when it ends the execution (else an ended one stops the run)."""
        request.execution_id = self.execution_id
        request.runner = self.runner
        delay = 0.2
        attempt = 0
        renumbered = False
        while True:
            try:
                execution = await self.backend.update_execution_status(request)
                break
            except Unavailable:
                attempt += 1
                if attempt >= WRITE_ATTEMPTS:
                    raise
                log.warning("backend unavailable while writing events of %s; retrying", self.execution_id)
                await asyncio.sleep(delay)
                delay *= 2
            except (FailedPrecondition, AlreadyExists):
                # Cancelled meanwhile, or someone else (the backend) appended events: renumber once.
                current = await self.backend.get_execution(svc.GetExecutionRequest(id=self.execution_id))
                if is_terminal(current.status.phase):
                    raise RunStopped(current) from None
                if (
                    renumbered
                    or not request.events
                    or current.status.last_sequence < request.events[0].sequence
                ):
                    raise
                renumbered = True
                self.sequence = current.status.last_sequence
                for event in request.events:
                    self.sequence += 1
                    event.sequence = self.sequence
        # The backend appends events of its own (``phase``): continue after them.
        self.sequence = max(self.sequence, execution.status.last_sequence)
        if not final and is_terminal(execution.status.phase):
            raise RunStopped(execution)
        return execution


#: Event payloads kept by :meth:`EventWriter._payload`, and the longest JSON text kept.
_PAYLOADS: Final = 8
_PAYLOAD_CHARS: Final = 64 * 1024


class _Turn:
    """``async with self._lock``, counting the calls that hold the lock or wait for it: while none
    does, a call may hold an event or a checkpoint without taking the lock (nothing can be writing
    or renumbering the buffer then, and no await comes between the check and the hold)."""

    __slots__ = ("_writer",)

    def __init__(self, writer: EventWriter) -> None:
        self._writer = writer

    async def __aenter__(self) -> None:
        writer = self._writer
        writer._turns += 1
        try:
            await writer._lock.acquire()
        except BaseException:
            writer._turns -= 1
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        writer = self._writer
        writer._lock.release()
        writer._turns -= 1


#: What ``json.dumps(data, default=json_default)`` uses, made once (``json.dumps`` given a
#: ``default`` makes an encoder at every call).
_ENCODER: Final = json.JSONEncoder(default=json_default)
_NUMBERS: Final = frozenset({bool, int, float})


def _dumps(data: Any) -> str:
    try:
        return _ENCODER.encode(data)
    except (TypeError, ValueError):  # a circular structure, keys that are not strings
        return json.dumps(str(data))
