"""One runner per task type; each returns ``(output, flow directive or None)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .call import run_call
from .events import run_emit, run_listen
from .flow import run_do, run_for, run_fork, run_raise, run_set, run_switch, run_wait
from .run import run_run
from .trycatch import run_try

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["RUNNERS"]

Runner = Callable[["Interpreter", str, Mapping[str, Any], Any, "Scope"], Awaitable[tuple[Any, Any]]]

RUNNERS: Mapping[str, Runner] = {
    "call": run_call,
    "do": run_do,
    "emit": run_emit,
    "for": run_for,
    "fork": run_fork,
    "listen": run_listen,
    "raise": run_raise,
    "run": run_run,
    "set": run_set,
    "switch": run_switch,
    "try": run_try,
    "wait": run_wait,
}
