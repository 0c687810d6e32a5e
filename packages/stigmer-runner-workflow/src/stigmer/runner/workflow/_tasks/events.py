"""``emit`` and ``listen`` (one / all / any, ``until`` condition or strategy, ``foreach``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ErrorKind, WorkflowError
from .._expr import is_expression, truthy

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["run_emit", "run_listen"]

Result = tuple[Any, Any]


async def run_emit(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    attributes = await rt.template(dict(task["emit"]["event"].get("with") or {}), data, scope)
    event: dict[str, Any] = {
        "id": rt.host.new_id(),
        "specversion": "1.0",
        "time": rt.host.now().isoformat(),
        **{k: v for k, v in attributes.items() if v is not None},
    }
    if "source" not in event:
        event["source"] = f"stigmer://workflow/{rt.workflow.namespace}/{rt.workflow.name}"
    if "data" in event and "datacontenttype" not in event and not isinstance(event["data"], str | bytes):
        event["datacontenttype"] = "application/json"
    await rt.host.emit(event)
    return event, None


async def run_listen(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    """The ordered array of the consumed events, read as ``listen.read`` says (``data`` by default,
    ``envelope``, ``raw``). With ``foreach``, each event goes through ``foreach.do`` (its input is
    the event), ``foreach.output.as`` and ``foreach.export.as`` as soon as it is consumed — events
    arriving meanwhile wait in the host's FIFO queue — and the array holds what came out. Events
    consumed only by an ``until`` strategy are not part of the output."""
    listen = task["listen"]
    read = listen.get("read", "data")
    if read not in _READS:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"listen.read must be data, envelope or raw, not {read!r}"
        )
    foreach = task.get("foreach") or {}
    # A listen resumed from a checkpoint starts over (its consumed events are not checkpointed):
    # a saved position inside `foreach.do` belongs to an event this run will not see again.
    rt.forget(f"{path}/foreach/")
    each, at = foreach.get("item") or "item", foreach.get("at") or "index"
    outputs: list[Any] = []
    async with contextlib.aclosing(_consume(rt, listen["to"], read, scope)) as events:
        async for item in events:
            if not foreach:
                outputs.append(item)
                continue
            inner = scope.with_vars(**{each: item, at: len(outputs)})
            output = item
            if "do" in foreach:
                output = await rt.run_list(f"{path}/foreach/do", foreach["do"], item, inner)
                rt.forget(f"{path}/foreach/do")
            if "as" in (foreach.get("output") or {}):
                output = await rt.transform(foreach["output"]["as"], output, inner.with_vars(output=output))
            if "as" in (foreach.get("export") or {}):
                rt.context = await rt.transform(
                    foreach["export"]["as"], output, inner.with_vars(output=output)
                )
            outputs.append(output)
    return outputs, None


_READS = ("data", "envelope", "raw")


def _shape(event: Mapping[str, Any], read: str) -> Any:
    """An event as ``listen.read`` reads it: ``data`` its payload, ``envelope`` the whole
    CloudEvent (context attributes and data), ``raw`` the payload as written: text stays text,
    binary stays base64 (``data_base64``), a JSON value becomes its JSON text."""
    if read == "envelope":
        return dict(event)
    if read == "raw":
        if "data" not in event and "data_base64" in event:
            return event["data_base64"]
        payload = event.get("data")
        if payload is None or isinstance(payload, str):
            return payload
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return event.get("data")


async def _consume(
    rt: Interpreter, strategy: Mapping[str, Any], read: str, scope: Scope
) -> AsyncGenerator[Any, None]:
    """The consumed events, read as ``read`` says, one at a time as they arrive."""
    if "one" in strategy:
        yield _shape(await _next(rt, [strategy["one"]], scope), read)
        return
    if "all" in strategy:
        async for event in _all(rt, list(strategy["all"]), scope):
            yield _shape(event, read)
        return
    if "any" not in strategy:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, "listen.to needs one, all or any")
    filters = list(strategy["any"])
    until = strategy.get("until")
    if until is None:
        yield _shape(await _next(rt, filters, scope), read)
        return
    if isinstance(until, str):
        # Checked after each consumed event (and its `foreach`), over the events consumed so far
        # read as `listen.read` says; `any` waits for one event at least.
        consumed: list[Any] = []
        while True:
            consumed.append(_shape(await _next(rt, filters, scope), read))
            yield consumed[-1]
            if truthy(await rt.expr(until, consumed, scope)):
                return
    tracker = _Until(until)
    while True:
        event = await rt.host.listen([*filters, *tracker.filters()])
        if await tracker.offer(rt, event, scope):
            return
        if await _matches_any(rt, filters, event, scope):
            yield _shape(event, read)


async def _all(rt: Interpreter, filters: list[Any], scope: Scope) -> AsyncGenerator[dict[str, Any], None]:
    waiting = list(range(len(filters)))
    while waiting:
        event = await rt.host.listen([filters[i] for i in waiting])
        for index in waiting:
            if await matches(rt, filters[index], event, scope):
                waiting.remove(index)
                yield event
                break


class _Until:
    """An ``until`` given as a consumption strategy (one / all / any) instead of a condition."""

    def __init__(self, strategy: Mapping[str, Any]) -> None:
        if "one" in strategy:
            self._filters, self._need_all = [strategy["one"]], False
        elif "all" in strategy:
            self._filters, self._need_all = list(strategy["all"]), True
        else:
            self._filters, self._need_all = list(strategy.get("any") or []), False
        self._seen: set[int] = set()

    def filters(self) -> list[Any]:
        return self._filters

    async def offer(self, rt: Interpreter, event: Mapping[str, Any], scope: Scope) -> bool:
        for index, filter_ in enumerate(self._filters):
            if await matches(rt, filter_, event, scope):
                self._seen.add(index)
        if not self._filters:
            return False
        return len(self._seen) == len(self._filters) if self._need_all else bool(self._seen)


async def _next(rt: Interpreter, filters: Sequence[Any], scope: Scope) -> dict[str, Any]:
    while True:
        event = await rt.host.listen(filters)
        if not filters or await _matches_any(rt, filters, event, scope):
            return event


async def _matches_any(
    rt: Interpreter, filters: Sequence[Any], event: Mapping[str, Any], scope: Scope
) -> bool:
    if not filters:
        return True
    for filter_ in filters:
        if await matches(rt, filter_, event, scope):
            return True
    return False


async def matches(
    rt: Interpreter, filter_: Mapping[str, Any], event: Mapping[str, Any], scope: Scope
) -> bool:
    """Each ``with`` attribute equals the event's, or (an expression) holds on it."""
    for key, expected in (filter_.get("with") or {}).items():
        actual = event.get(key)
        if is_expression(expected):
            if not truthy(await rt.expr(expected, actual, scope)):
                return False
        elif actual != expected:
            return False
    return True
