"""The registry of task kinds: one row per kind of the DSL (``set``, ``switch``, ``for`` ...) with
its handler and the facts the rest of the runner needs about it.

Everything that must know the kinds reads this table: the interpreter (which kind a task is,
and its handler), schema messages (each kind's own fields), the document walk (where a kind
keeps nested task lists), ``use.extensions`` (``extend: composite``) and the SDK's code
generator (the precedence order). A test pins that it covers exactly the kinds of the DSL schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ._tasks.call import run_call
from ._tasks.events import run_emit, run_listen
from ._tasks.flow import run_do, run_for, run_fork, run_raise, run_set, run_switch, run_wait
from ._tasks.run import run_run
from ._tasks.trycatch import run_try

if TYPE_CHECKING:
    from ._interpreter import Interpreter, Scope

__all__ = ["COMMON_FIELDS", "TASK_KINDS", "Handler", "TaskKind", "kind_of"]

Handler = Callable[["Interpreter", str, Mapping[str, Any], Any, "Scope"], Awaitable[tuple[Any, Any]]]
"""Runs the body of one task: ``(interpreter, path, task, input, scope) -> (output, flow directive or None)``."""

COMMON_FIELDS: Final = frozenset({"if", "input", "output", "export", "timeout", "then", "metadata"})
"""The fields every task may carry, whatever its kind (the schema's ``taskBase``)."""


@dataclass(frozen=True)
class TaskKind:
    """One kind of task."""

    name: str
    """The key that makes a task of this kind (``call``, ``for`` ...)."""
    handler: Handler
    fields: frozenset[str]
    """The kind's own fields besides :data:`COMMON_FIELDS` (the name included)."""
    task_lists: tuple[tuple[str, ...], ...] = ()
    """Where the task holds nested task lists, as key paths (``("catch", "do")``)."""
    effects: bool = False
    """Whether the task itself may ask the host for an effect (HTTP, a process, an agent, a child
    run, an event, a timer); tasks without effects only compute (their nested tasks may have some)."""
    composite: bool = False
    """Whether ``use.extensions`` with ``extend: composite`` apply to it."""


_TABLE: Final = (
    # ``for`` comes first: a for task also holds a ``do`` (its body).
    TaskKind("for", run_for, frozenset({"for", "while", "do"}), task_lists=(("do",),)),
    TaskKind("call", run_call, frozenset({"call", "with"}), effects=True),
    TaskKind("do", run_do, frozenset({"do"}), task_lists=(("do",),), composite=True),
    TaskKind("fork", run_fork, frozenset({"fork"}), task_lists=(("fork", "branches"),), composite=True),
    TaskKind("emit", run_emit, frozenset({"emit"}), effects=True),
    TaskKind(
        "listen", run_listen, frozenset({"listen", "foreach"}), task_lists=(("foreach", "do"),), effects=True
    ),
    TaskKind("raise", run_raise, frozenset({"raise"})),
    TaskKind("run", run_run, frozenset({"run"}), effects=True),
    TaskKind("set", run_set, frozenset({"set"})),
    TaskKind("switch", run_switch, frozenset({"switch"})),
    TaskKind("try", run_try, frozenset({"try", "catch"}), task_lists=(("try",), ("catch", "do"))),
    TaskKind("wait", run_wait, frozenset({"wait"}), effects=True),
)

TASK_KINDS: Final[Mapping[str, TaskKind]] = MappingProxyType({kind.name: kind for kind in _TABLE})
"""Every task kind by name, in order of precedence (the first whose name a task holds is its kind)."""


def kind_of(task: Mapping[str, Any]) -> TaskKind | None:
    """The kind of ``task`` (the first kind, in order of precedence, whose name it holds), or None."""
    for name, kind in TASK_KINDS.items():
        if name in task:
            return kind
    return None
