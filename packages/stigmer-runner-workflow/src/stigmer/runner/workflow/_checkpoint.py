"""Checkpoints: the positions reached in every active task list, so a killed run can resume.

A checkpoint maps keys to saved progress: a task list's path (``/do``, ``/do/0/x/do``) to the
index of the next task and the data flowing into it; ``<task>/for`` to the next iteration;
``<task>/fork/branches/<i>`` to a finished branch's output; ``<task>/catch`` to a caught error
whose ``catch.do`` is under way. Entering a list (or loop, fork, try) consumes its saved entry
once, so later re-entries (loop iterations, retries, backward jumps) start fresh.

A checkpoint holds copies, never the run's live data, made once each: a position's when it is
saved, the input's and the context's when they first appear in a checkpoint (the interpreter
replaces its data, never changes it in place). So a loop's checkpoints cost one copy of what
changed, not of everything; successive checkpoints share the unchanged copies, which a host
reads (or serializes) and never changes.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._errors import ErrorKind, WorkflowError
from ._host import Host

if TYPE_CHECKING:
    from ._dialect import Dialect

__all__ = ["CHECKPOINT_VERSION", "Checkpointing"]

CHECKPOINT_VERSION: Final = 1


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars) — several times faster than
    ``copy.deepcopy`` on the data a checkpoint holds; anything else is deep-copied as usual."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else _copy(v) for v in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


#: The values :func:`_copy` keeps as they are (immutable).
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class Checkpointing:
    """The checkpoint half of the interpreter (a mixin; the state lives on the interpreter)."""

    host: Host
    workflow_id: str
    context: Any
    _frames: dict[str, Any]
    _resume: dict[str, Any]
    _raw_input: Any
    _input: Any
    _started: datetime.datetime | None
    tasks_run: int
    dialect: Dialect | None
    _snapshots: dict[str, tuple[Any, Any]]
    _started_iso: tuple[datetime.datetime, str] | None = None

    def checkpoint(self) -> dict[str, Any]:
        """The resume point: completed positions of every active task list, and the data."""
        state: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "workflowId": self.workflow_id,
            "startedAt": self._started_text(),
            "rawInput": self._snapshot("rawInput", self._raw_input),
            "input": self._snapshot("input", self._input),
            "context": self._snapshot("context", self.context),
            "frames": dict(self._frames),  # each a copy made when it was saved
            "tasksRun": self.tasks_run,
        }
        if self.dialect is not None:
            state["dialect"] = _copy(self.dialect.state())  # a dialect changes its state in place
        return state

    def _snapshot(self, name: str, value: Any) -> Any:
        """A copy of ``value`` for checkpoints, made again only when ``value`` is another object."""
        held = self._snapshots.get(name)
        if held is not None and held[0] is value:
            return held[1]
        copied = _copy(value)
        self._snapshots[name] = (value, copied)
        return copied

    def _started_text(self) -> str | None:
        """``startedAt`` as ISO 8601 (made once a run: it is in every checkpoint)."""
        started = self._started
        if started is None:
            return None
        cached = self._started_iso
        if cached is None or cached[0] is not started:
            cached = self._started_iso = (started, started.isoformat())
        return cached[1]

    async def save_position(self, key: str, state: Mapping[str, Any], *, drop: str | None = None) -> None:
        """Record progress at ``key``, drop finished nested state (under ``drop``, by default
        everything below ``key``) and offer the host a checkpoint."""
        prefix = key + "/" if drop is None else drop
        for stale in [k for k in self._frames if k.startswith(prefix)]:
            del self._frames[stale]
        self._frames[key] = {name: _copy(value) for name, value in state.items()}
        await self.host.checkpoint(self.checkpoint())

    def forget(self, prefix: str) -> None:
        """Drop saved progress under ``prefix`` (a retried ``try`` starts over)."""
        for stale in [k for k in self._frames if k.startswith(prefix)]:
            del self._frames[stale]
        for stale in [k for k in self._resume if k.startswith(prefix)]:
            del self._resume[stale]

    def resume_state(self, key: str) -> Any:
        """Saved progress at ``key`` from the checkpoint being resumed (consumed once)."""
        return self._resume.pop(key, None)

    def _restore(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != CHECKPOINT_VERSION or not isinstance(state.get("frames"), Mapping):
            raise WorkflowError.of(ErrorKind.CONFIGURATION, "not a checkpoint of this interpreter version")
        data = copy.deepcopy(dict(state))
        self._raw_input = data.get("rawInput")
        self._input = data.get("input")
        self.context = data.get("context") or {}
        self._frames = {key: _copy(frame) for key, frame in data["frames"].items()}  # not _resume's
        self.tasks_run = int(data.get("tasksRun") or 0)
        if self.dialect is not None:
            self.dialect.restore(data.get("dialect"))
        self._resume = dict(data["frames"])
        self.workflow_id = self.workflow_id or str(data.get("workflowId") or "")
        started = data.get("startedAt")
        self._started = datetime.datetime.fromisoformat(started) if started else self.host.now()
