"""Opt-in expression dialects: a document may ask for another runner's conventions.

The default is the Serverless Workflow 1.0 spec and nothing here applies to it. A document that
declares ``document.metadata["stigmer.ai/dialect"]`` gets that dialect's extra state, kept in
checkpoints like the context. One dialect exists:

``zigflow`` — the conventions of upstream Stigmer's runner (built on Zigflow):

- ``$data`` holds the run's state: the workflow input (a mapping; other input sits under
  ``input``), then each finished task's output under the task's name;
- a ``set`` task also merges what it sets into ``$context`` and into ``$data`` itself, with no
  ``export`` needed (an ``export`` the task has still runs first and is kept);
- a ``listen`` for a signal by id (``with: {id: X, type: signal}``) waits for an event of type X.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from ._errors import ErrorKind, WorkflowError

__all__ = ["DIALECTS", "DIALECT_KEY", "Dialect", "dialect_of", "dialect_problem"]

DIALECT_KEY: Final = "stigmer.ai/dialect"


class Dialect:
    """One dialect's state and its two hooks (a fresh object per run)."""

    name = ""

    def prepare(self, definition: dict[str, Any]) -> dict[str, Any]:
        """The document as this dialect reads it (before the run; the input is not changed)."""
        return definition

    def start(self, workflow_input: Any) -> None:
        """The run begins with this input (after ``input.from``)."""

    def variables(self) -> dict[str, Any]:
        """Extra ``$variables`` for every expression."""
        return {}

    def after_task(self, name: str, kind: str, output: Any, context: Any) -> Any:
        """A task finished with ``output``; returns the (possibly updated) ``$context``."""
        return context

    def state(self) -> Any:
        """What a checkpoint keeps of this dialect."""
        return None

    def restore(self, state: Any) -> None:
        """Back to a checkpoint's :meth:`state`."""


class Zigflow(Dialect):
    name = "zigflow"

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def prepare(self, definition: dict[str, Any]) -> dict[str, Any]:
        """A ``listen`` filter for a signal by id (``with: {id: X, type: signal}``) waits for an
        event of type X: what ``stigmer execution send-event ID --id X`` sends."""
        out = _walk_listens(definition)
        assert isinstance(out, dict)
        return out

    def start(self, workflow_input: Any) -> None:
        self.data = (
            copy.deepcopy(dict(workflow_input))
            if isinstance(workflow_input, Mapping)
            else {"input": workflow_input}
        )

    def variables(self) -> dict[str, Any]:
        return {"data": self.data}

    def after_task(self, name: str, kind: str, output: Any, context: Any) -> Any:
        value = copy.deepcopy(output)
        if kind == "set" and isinstance(value, Mapping):
            self.data.update(value)
            merged = dict(context) if isinstance(context, Mapping) else {}
            merged.update(copy.deepcopy(dict(value)))
            return merged
        self.data[name] = value
        return context

    def state(self) -> Any:
        return {"data": self.data}

    def restore(self, state: Any) -> None:
        data = state.get("data") if isinstance(state, Mapping) else None
        self.data = dict(data) if isinstance(data, Mapping) else {}


_SIGNAL_TYPES: Final = ("signal", "query", "update")


def _signal_filter(value: Any) -> Any:
    """``{with: {id: X, type: signal}}`` → ``{with: {type: X}}``; anything else as it is."""
    if isinstance(value, list):
        return [_signal_filter(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    with_ = value.get("with")
    if isinstance(with_, Mapping) and with_.get("type") in _SIGNAL_TYPES and isinstance(with_.get("id"), str):
        return {**value, "with": {"type": with_["id"]}}
    return {k: _signal_filter(v) for k, v in value.items()}


def _walk_listens(value: Any) -> Any:
    if isinstance(value, list):
        return [_walk_listens(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    out = {k: _walk_listens(v) for k, v in value.items()}
    listen = out.get("listen")
    if isinstance(listen, Mapping) and isinstance(listen.get("to"), Mapping):
        out["listen"] = {**listen, "to": _signal_filter(listen["to"])}
    return out


DIALECTS: Final[Mapping[str, type[Dialect]]] = {"zigflow": Zigflow}


def _declared(definition: Mapping[str, Any]) -> Any:
    document = definition.get("document")
    metadata = document.get("metadata") if isinstance(document, Mapping) else None
    return metadata.get(DIALECT_KEY) if isinstance(metadata, Mapping) else None


def dialect_problem(definition: Mapping[str, Any]) -> str | None:
    """Why the document's declared dialect cannot be used (None: none declared, or a known one)."""
    name = _declared(definition)
    if name is None or name in DIALECTS:
        return None
    return f"unknown dialect {name!r} in document.metadata[{DIALECT_KEY!r}]; known: {', '.join(DIALECTS)}"


def dialect_of(definition: Mapping[str, Any]) -> Dialect | None:
    """A fresh state for the document's dialect, or None for the spec's own semantics."""
    name = _declared(definition)
    if name is None:
        return None
    problem = dialect_problem(definition)
    if problem is not None:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, problem)
    return DIALECTS[str(name)]()
