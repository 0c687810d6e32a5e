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

from ._tasks.asyncapi import unsupported as _asyncapi_unsupported
from ._tasks.call import run_call
from ._tasks.events import run_emit, run_listen
from ._tasks.flow import run_do, run_for, run_fork, run_raise, run_set, run_switch, run_wait
from ._tasks.oauth import policy_refusals
from ._tasks.run import run_run
from ._tasks.trycatch import run_try

if TYPE_CHECKING:
    from ._interpreter import Interpreter, Scope

__all__ = [
    "COMMON_FIELDS",
    "TASK_KINDS",
    "Handler",
    "TaskKind",
    "kind_of",
    "unsupported",
    "unsupported_problems",
]

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
    refusal: Callable[[Mapping[str, Any]], str | None] | None = None
    """Why this runner cannot run a (schema-valid) task of this kind, or None when it can: what
    the DSL allows but the runner does not support (see the README), refused before running."""


_README = "see the workflow runner's README"
#: ``call`` targets the runner does not support, with the reason.
_CALLS_REFUSED: Final[Mapping[str, str]] = {
    "mcp": "call: mcp is not supported by workflows (give an agent the MCP server and use call: agent)",
    "a2a": "call: a2a is not supported by this runner (no A2A client yet)",
}


def _call_refusal(task: Mapping[str, Any]) -> str | None:
    target = task.get("call")
    args = task.get("with")
    if target == "asyncapi" and isinstance(args, Mapping):
        return _asyncapi_unsupported(args)
    if isinstance(target, str) and target in _CALLS_REFUSED:
        return f"{_CALLS_REFUSED[target]} ({_README})"
    if isinstance(target, str) and "@" in target:
        return f"call: {target} names a cataloged function; catalogs are not supported by this runner ({_README})"
    return None


def _run_refusal(task: Mapping[str, Any]) -> str | None:
    spec = task.get("run")
    if isinstance(spec, Mapping) and "container" in spec:
        return f"run: container is not supported by this runner: it starts no containers ({_README})"
    return None


_TABLE: Final = (
    # ``for`` comes first: a for task also holds a ``do`` (its body).
    TaskKind("for", run_for, frozenset({"for", "while", "do"}), task_lists=(("do",),)),
    TaskKind("call", run_call, frozenset({"call", "with"}), effects=True, refusal=_call_refusal),
    TaskKind("do", run_do, frozenset({"do"}), task_lists=(("do",),), composite=True),
    TaskKind("fork", run_fork, frozenset({"fork"}), task_lists=(("fork", "branches"),), composite=True),
    TaskKind("emit", run_emit, frozenset({"emit"}), effects=True),
    TaskKind(
        "listen", run_listen, frozenset({"listen", "foreach"}), task_lists=(("foreach", "do"),), effects=True
    ),
    TaskKind("raise", run_raise, frozenset({"raise"})),
    TaskKind("run", run_run, frozenset({"run"}), effects=True, refusal=_run_refusal),
    TaskKind("set", run_set, frozenset({"set"})),
    TaskKind("switch", run_switch, frozenset({"switch"})),
    TaskKind("try", run_try, frozenset({"try", "catch"}), task_lists=(("try",), ("catch", "do"))),
    TaskKind("wait", run_wait, frozenset({"wait"}), effects=True),
)

TASK_KINDS: Final[Mapping[str, TaskKind]] = MappingProxyType({kind.name: kind for kind in _TABLE})
"""Every task kind by name, in order of precedence (the first whose name a task holds is its kind)."""


def kind_of(task: Mapping[str, Any]) -> TaskKind | None:
    """The kind of ``task`` (the first kind, in order of precedence, whose name it holds), or None."""
    for kind in _TABLE:
        if kind.name in task:
            return kind
    return None


def unsupported(task: Mapping[str, Any]) -> str | None:
    """Why this runner cannot run ``task`` though the DSL allows it (None: it is supported)."""
    kind = kind_of(task)
    return kind.refusal(task) if kind is not None and kind.refusal is not None else None


def unsupported_problems(definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(path, message)`` for every task of a (schema-valid) document the runner cannot run:
    what validation at apply refuses, beyond the schema, with the README's reason (authentication
    policies included: ``digest``, ``grant: authorization_code``)."""
    # Both walk the document with this table.
    from ._validate import authentication_policies
    from ._walk import iter_tasks

    problems: list[tuple[str, str]] = []
    for path, task in iter_tasks(definition):
        reason = unsupported(task)
        if reason is not None:
            problems.append((path, reason))
    for where, policy in authentication_policies(definition):  # digest, authorization_code
        problems.extend(policy_refusals(where, policy))
    return problems
