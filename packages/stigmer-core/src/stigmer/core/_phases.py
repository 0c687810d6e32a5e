"""The one table of execution phases: their names, and which of them end an execution.

Every distribution asks this module whether a phase is terminal and what it is called; nothing
else lists phases. Phase numbers are those of ``stigmer.v1.Phase`` (pinned by a test against the
generated enum), so this module imports no protobuf and the CLI can use it at start.
"""

from __future__ import annotations

__all__ = [
    "PHASE_NAMES",
    "STOPPED_PHASES",
    "TERMINAL_PHASES",
    "TERMINAL_PHASE_NAMES",
    "is_terminal",
    "phase_name",
    "phase_number",
]

# number -> name without the ``PHASE_`` prefix, in the order of the proto enum
PHASE_NAMES: dict[int, str] = {
    0: "UNSPECIFIED",
    1: "PENDING",
    2: "RUNNING",
    3: "WAITING_APPROVAL",
    4: "SUCCEEDED",
    5: "FAILED",
    6: "CANCELLED",
}
_NUMBERS = {name: number for number, name in PHASE_NAMES.items()}

TERMINAL_PHASE_NAMES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
TERMINAL_PHASES = frozenset(_NUMBERS[name] for name in TERMINAL_PHASE_NAMES)
# where a follower stops waiting: the end, or a pause that needs a person (an approval)
STOPPED_PHASES = TERMINAL_PHASES | {_NUMBERS["WAITING_APPROVAL"]}


def phase_name(phase: int | str) -> str:
    """``4`` or ``"PHASE_SUCCEEDED"`` -> ``"SUCCEEDED"``; an unknown number is returned as text."""
    if isinstance(phase, str):
        return phase.removeprefix("PHASE_")
    return PHASE_NAMES.get(phase, str(phase))


def phase_number(name: str) -> int:
    """``"SUCCEEDED"`` (or ``"PHASE_SUCCEEDED"``, any case) -> ``4``; ``KeyError`` for an unknown name."""
    return _NUMBERS[name.upper().removeprefix("PHASE_")]


def is_terminal(phase: int | str) -> bool:
    """True when ``phase`` (a number or a name) ends an execution: succeeded, failed or cancelled."""
    return phase_name(phase) in TERMINAL_PHASE_NAMES
