"""The agent run's events: core's :class:`~stigmer.core.EventWriter`, unbuffered, with the agent's
names for its calls.

The writer numbers (after the execution's ``status.last_sequence``, so resending is idempotent),
scrubs, coalesces streamed text into ``text.delta`` events (every ``flush_interval`` seconds or
``flush_chars`` characters), applies the event limits and raises :class:`RunStopped` when the
execution was cancelled. What stays here is the agent's own: events are written as they happen
(a follower sees each tool call live), and tool results are clipped to ``MAX_PAYLOAD`` characters.
"""

from __future__ import annotations

import json
from typing import Any

from stigmer.core import Backend, EventWriter, Redactor, RunStopped, jsonable, to_value
from stigmer.core import NewEvent as Ev

__all__ = ["MAX_PAYLOAD", "Ev", "EventSink", "RunStopped", "clip", "jsonable", "to_value"]

MAX_PAYLOAD = 32_000  # characters of a tool result kept in an event; the model still sees all of it


def clip(value: Any, limit: int = MAX_PAYLOAD) -> Any:
    """``value`` as JSON data, or a truncated text of it when its JSON is longer than ``limit``."""
    data = jsonable(value)
    text = data if isinstance(data, str) else json.dumps(data)
    if len(text) <= limit:
        return data
    return text[:limit] + f"... [{len(text) - limit} more characters]"


class EventSink(EventWriter):
    """The events and status of one agent execution, each written as it happens.

    ``update`` (inherited) writes buffered text, ``events`` and status changes in one call.
    """

    def __init__(
        self,
        backend: Backend,
        execution_id: str,
        *,
        last_sequence: int,
        redactor: Redactor,
        runner: str,
        flush_interval: float = 0.1,
        flush_chars: int = 200,
    ) -> None:
        super().__init__(
            backend,
            execution_id,
            last_sequence=last_sequence,
            redactor=redactor,
            runner=runner,
            text_interval=flush_interval,
            text_chars=flush_chars,
        )

    async def emit(self, type: str, *, subject: str = "", text: str = "", data: Any = None) -> None:
        """Write one event now (after any buffered text)."""
        await self.event(type, subject=subject, text=text, data=data)
