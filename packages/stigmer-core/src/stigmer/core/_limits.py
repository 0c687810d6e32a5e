"""Per-execution limits: how much one run may do before it ends FAILED with a limit error.

Limits are settings of the process that runs executions (Lite's CLI, ``stigmer server``, a runner
worker): ``STIGMER_LIMIT_<NAME>`` environment variables, else the ``limits:`` mapping of
``$STIGMER_HOME/config.yaml``, else the defaults below. On a shared server the admin sets them
when starting the server and its runners; a user's workflow cannot raise them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from stigmer.core._errors import InvalidArgument

__all__ = ["LIMIT_SETTINGS", "Limits"]

_MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one execution may use; every default is far above what an ordinary run needs."""

    tasks: int = 50_000
    """Tasks executed (each loop iteration, retry and jump counts its tasks again)."""
    events: int = 200_000
    """Events recorded in the execution's log."""
    output_bytes: int = 8 * _MIB
    """The workflow's output, and any value one expression evaluates to (as JSON)."""
    event_bytes: int = 4 * _MIB
    """One recorded event's data: a task's input, output or error, an emitted event (as JSON)."""
    jq_seconds: float = 5.0
    """One jq evaluation's run time."""
    jq_memory_bytes: int = 512 * _MIB
    """One jq evaluation's memory."""
    agent_requests: int = 500
    """Model requests in one agent turn (between a prompt or an approval and the answer or the
    next pause): an agent at work on files and commands makes one per tool call."""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits of this process: environment, then ``config.yaml``'s ``limits:``, then defaults."""
        from stigmer.core._settings import Settings

        env = dict(os.environ if environ is None else environ)
        configured = Settings.load(env).raw.get("limits") or {}
        if not isinstance(configured, Mapping):
            raise InvalidArgument("config.yaml: 'limits' must be a mapping", ["limits"])
        values: dict[str, Any] = {}
        for name, (variable, key) in LIMIT_SETTINGS.items():
            if variable in env:
                values[name] = _parse(name, env[variable], variable)
            elif key in configured:
                values[name] = _parse(name, configured[key], f"config.yaml limits.{key}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Limits:
        """The inverse of :meth:`to_dict` (unknown keys ignored, missing ones default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


#: Each limit's environment variable and ``config.yaml`` key (under ``limits:``).
LIMIT_SETTINGS: Final[Mapping[str, tuple[str, str]]] = {
    "tasks": ("STIGMER_LIMIT_TASKS", "tasks"),
    "events": ("STIGMER_LIMIT_EVENTS", "events"),
    "output_bytes": ("STIGMER_LIMIT_OUTPUT_BYTES", "outputBytes"),
    "event_bytes": ("STIGMER_LIMIT_EVENT_BYTES", "eventBytes"),
    "jq_seconds": ("STIGMER_LIMIT_JQ_SECONDS", "jqSeconds"),
    "jq_memory_bytes": ("STIGMER_LIMIT_JQ_MEMORY_BYTES", "jqMemoryBytes"),
    "agent_requests": ("STIGMER_LIMIT_AGENT_REQUESTS", "agentRequests"),
}


def _parse(name: str, raw: Any, where: str) -> int | float:
    try:
        value = float(raw) if name == "jq_seconds" else int(str(raw).replace("_", ""))
    except (TypeError, ValueError):
        value = -1
    if not value > 0:
        kind = "a number of seconds" if name == "jq_seconds" else "a whole number"
        raise InvalidArgument(f"{where}: expected {kind} above 0, got {raw!r}", [where])
    return value
