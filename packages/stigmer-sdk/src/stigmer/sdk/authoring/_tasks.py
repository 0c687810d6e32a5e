"""Workflow tasks of the Serverless Workflow 1.0 DSL as small builders: set, switch, for, fork,
try/catch/retry, raise, wait, listen, emit and do. ``${ }`` expressions are plain strings.

Every task takes the common options ``if_``, ``then``, ``input_from``, ``output_as``,
``export_as``, ``timeout``, ``metadata`` and ``extra`` (merged last, for anything else).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from stigmer.sdk.authoring._builder import compact

__all__ = [
    "Case",
    "Catch",
    "Do",
    "Emit",
    "For",
    "Fork",
    "Listen",
    "Raise",
    "Retry",
    "Set",
    "Switch",
    "Task",
    "TaskOptions",
    "Tasks",
    "Try",
    "Wait",
    "duration",
    "task_list",
]

Duration = str | Mapping[str, int | float]


class TaskOptions(TypedDict, total=False):
    """Options every task accepts."""

    if_: str
    then: str
    input_from: str | Mapping[str, Any]
    output_as: str | Mapping[str, Any]
    export_as: str | Mapping[str, Any]
    timeout: Duration
    metadata: Mapping[str, Any]
    extra: Mapping[str, Any]


class Task:
    """One task of a workflow: ``to_dict()`` is its body as a manifest would hold it."""

    def __init__(self, body: Mapping[str, Any], **options: Unpack[TaskOptions]) -> None:
        out: dict[str, Any] = {}
        if "if_" in options:
            out["if"] = options["if_"]
        if "input_from" in options:
            out["input"] = {"from": options["input_from"]}
        out.update(body)
        if "output_as" in options:
            out["output"] = {"as": options["output_as"]}
        if "export_as" in options:
            out["export"] = {"as": options["export_as"]}
        if "timeout" in options:
            out["timeout"] = {"after": duration(options["timeout"])}
        if "metadata" in options:
            out["metadata"] = dict(options["metadata"])
        if "then" in options:
            out["then"] = options["then"]
        out.update(options.get("extra") or {})
        self._body = out

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = _plain(self._body)
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._body!r})"


Tasks = Mapping[str, "Task | Mapping[str, Any]"] | Sequence[tuple[str, "Task | Mapping[str, Any]"]]


def task_list(tasks: Tasks) -> list[dict[str, Any]]:
    """``{"a": Set(...), ...}`` or ``[("a", Set(...)), ...]`` -> ``[{"a": {"set": ...}}, ...]``."""
    items = list(tasks.items()) if isinstance(tasks, Mapping) else list(tasks)
    out: list[dict[str, Any]] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"a task list holds (name, task) pairs or a mapping of name to task, not {item!r}"
            )
        name, task = item
        out.append({name: task.to_dict() if isinstance(task, Task) else _plain(task)})
    return out


def duration(value: Duration) -> Any:
    """An ISO 8601 duration string (``"PT5S"``) or ``{"seconds": 5}`` as the DSL spells it."""
    if isinstance(value, str):
        return value
    return {k: v for k, v in value.items()}


def _plain(value: Any) -> Any:
    """Turn nested tasks and builders into plain data."""
    if isinstance(value, Task):
        return value.to_dict()
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _plain(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Set(Task):
    """``set``: the task's output is ``values`` (a mapping, or a ``${ }`` expression)."""

    def __init__(self, values: Mapping[str, Any] | str, **options: Unpack[TaskOptions]) -> None:
        super().__init__({"set": values if isinstance(values, str) else dict(values)}, **options)


class Case:
    """One case of a ``Switch``: go to ``then`` when ``when`` holds (no ``when``: the default case)."""

    def __init__(self, name: str, *, then: str, when: str | None = None) -> None:
        self.name, self.then, self.when = name, then, when

    def to_dict(self) -> dict[str, Any]:
        return {self.name: compact({"when": self.when, "then": self.then})}


class Switch(Task):
    """``switch``: the first case whose ``when`` holds chooses where to go next."""

    def __init__(self, *cases: Case, **options: Unpack[TaskOptions]) -> None:
        super().__init__({"switch": [c.to_dict() for c in cases]}, **options)


class For(Task):
    """``for``: run ``do`` for each item of ``in_`` (named ``each``, index ``at``) while ``while_``."""

    def __init__(
        self,
        in_: str,
        do: Tasks,
        *,
        each: str | None = None,
        at: str | None = None,
        while_: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        body: dict[str, Any] = {"for": compact({"each": each, "in": in_, "at": at})}
        if while_ is not None:
            body["while"] = while_
        body["do"] = task_list(do)
        super().__init__(body, **options)


class Fork(Task):
    """``fork``: run branches concurrently; ``compete=True`` keeps the first to finish."""

    def __init__(
        self, branches: Tasks, *, compete: bool | None = None, **options: Unpack[TaskOptions]
    ) -> None:
        fork: dict[str, Any] = {"branches": task_list(branches)}
        if compete is not None:
            fork["compete"] = compete
        super().__init__({"fork": fork}, **options)


class Do(Task):
    """``do``: run tasks in order (a nested task list)."""

    def __init__(self, tasks: Tasks, **options: Unpack[TaskOptions]) -> None:
        super().__init__({"do": task_list(tasks)}, **options)


class Retry:
    """A retry policy for ``Catch(retry=...)`` (or, by name, one from ``use.retries``)."""

    def __init__(
        self,
        *,
        delay: Duration | None = None,
        backoff: str | None = None,
        limit_attempts: int | None = None,
        attempt_duration: Duration | None = None,
        limit_duration: Duration | None = None,
        jitter: tuple[Duration, Duration] | None = None,
        when: str | None = None,
        except_when: str | None = None,
    ) -> None:
        if backoff not in (None, "constant", "linear", "exponential"):
            raise ValueError(f"backoff {backoff!r}: use 'constant', 'linear' or 'exponential'")
        attempt = compact(
            {
                "count": limit_attempts,
                "duration": duration(attempt_duration) if attempt_duration is not None else None,
            }
        )
        limit = compact(
            {
                "attempt": attempt or None,
                "duration": duration(limit_duration) if limit_duration is not None else None,
            }
        )
        self._body = compact(
            {
                "when": when,
                "exceptWhen": except_when,
                "delay": duration(delay) if delay is not None else None,
                "backoff": {backoff: {}} if backoff else None,
                "limit": limit or None,
                "jitter": {"from": duration(jitter[0]), "to": duration(jitter[1])} if jitter else None,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self._body)


class Catch:
    """The ``catch`` of a ``Try``: which errors (``errors`` = attributes to match, e.g. status),
    the variable they are bound to (``as_``), a ``retry`` policy, and tasks to run instead."""

    def __init__(
        self,
        *,
        errors: Mapping[str, Any] | None = None,
        as_: str | None = None,
        when: str | None = None,
        except_when: str | None = None,
        retry: Retry | str | None = None,
        do: Tasks | None = None,
        then: str | None = None,
    ) -> None:
        self._body = compact(
            {
                "errors": {"with": dict(errors)} if errors is not None else None,
                "as": as_,
                "when": when,
                "exceptWhen": except_when,
                "retry": retry.to_dict() if isinstance(retry, Retry) else retry,
                "do": task_list(do) if do is not None else None,
                "then": then,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self._body)


class Try(Task):
    """``try``: run ``do``; errors matching ``catch`` are retried or handled."""

    def __init__(self, do: Tasks, catch: Catch, **options: Unpack[TaskOptions]) -> None:
        super().__init__({"try": task_list(do), "catch": catch.to_dict()}, **options)


class Raise(Task):
    """``raise``: fail with an RFC 7807 error, inline (``type``, ``status`` ...) or ``error=`` a
    name from ``use.errors``."""

    def __init__(
        self,
        error: str | None = None,
        *,
        type: str | None = None,
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        if (error is None) == (type is None):
            raise ValueError("Raise: give either error= (a name from use.errors) or type= and status=")
        body = (
            error
            if error is not None
            else compact({"type": type, "status": status, "title": title, "detail": detail})
        )
        super().__init__({"raise": {"error": body}}, **options)


class Wait(Task):
    """``wait``: pause for a duration (``"PT2S"`` or ``seconds=2``...)."""

    def __init__(
        self,
        value: Duration | None = None,
        *,
        days: int | None = None,
        hours: int | None = None,
        minutes: int | None = None,
        seconds: int | float | None = None,
        milliseconds: int | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        parts = compact(
            {
                "days": days,
                "hours": hours,
                "minutes": minutes,
                "seconds": seconds,
                "milliseconds": milliseconds,
            }
        )
        if (value is None) == (not parts):
            raise ValueError("Wait: give a duration ('PT2S' or a mapping) or seconds=/minutes=/...")
        super().__init__({"wait": duration(value) if value is not None else parts}, **options)


def _filters(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"with": dict(f)} for f in items]


class Listen(Task):
    """``listen``: wait for ``one`` event, ``all`` or ``any`` of several (each a mapping of
    CloudEvent attributes to match), optionally ``until`` an expression."""

    def __init__(
        self,
        *,
        one: Mapping[str, Any] | None = None,
        all: Sequence[Mapping[str, Any]] | None = None,
        any: Sequence[Mapping[str, Any]] | None = None,
        until: str | None = None,
        read: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        given = [k for k, v in (("one", one), ("all", all), ("any", any)) if v is not None]
        if len(given) != 1:
            raise ValueError("Listen: give exactly one of one=, all= or any=")
        to: dict[str, Any]
        if one is not None:
            to = {"one": {"with": dict(one)}}
        elif all is not None:
            to = {"all": _filters(all)}
        else:
            to = {"any": _filters(any or [])}
        if until is not None:
            to["until"] = until
        super().__init__({"listen": compact({"to": to, "read": read})}, **options)


class Emit(Task):
    """``emit``: publish a CloudEvent (``type``, ``source``, ``data`` and any other attribute)."""

    def __init__(
        self,
        type: str,
        *,
        source: str | None = None,
        data: Any = None,
        attributes: Mapping[str, Any] | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        event = compact({"source": source, "type": type, "data": data, **(attributes or {})})
        super().__init__({"emit": {"event": {"with": event}}}, **options)
