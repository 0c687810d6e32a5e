"""Handing an in-process run over to another process at a step boundary (Lite's Ctrl-C detach).

The process that runs an execution (``stigmer run`` in a local context) asks for a handover with
:meth:`Handover.request`; the runner, which sees it through :func:`handover_requested` (a context
variable set around the runner's task), stops at its next step boundary — its progress saved, no
effect under way — by raising :class:`~stigmer.core.RunStopped` with the execution still RUNNING,
so another process resumes it from there and no started effect runs twice. A step whose waiting
can resume exactly (a ``wait`` whose deadline is in its checkpoint) hands over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["Handover", "handing_over", "handover_requested", "no_handover", "until_handover"]

_CURRENT: ContextVar[Handover | None] = ContextVar("stigmer_handover", default=None)


class Handover:
    """A request, made once, that the run stop at its next step boundary."""

    def __init__(self) -> None:
        self._requested = asyncio.Event()

    def request(self) -> None:
        self._requested.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    async def wait(self) -> None:
        """Return once the handover is requested."""
        await self._requested.wait()


def handover_requested() -> bool:
    """True once the process running the run in this context asked to hand it over."""
    handover = _CURRENT.get()
    return handover is not None and handover.requested


@contextlib.contextmanager
def handing_over(handover: Handover | None) -> Iterator[None]:
    """Within this block (and tasks it creates), runs may be handed over through ``handover``."""
    token = _CURRENT.set(handover)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def no_handover() -> contextlib.AbstractContextManager[None]:
    """A child run awaited by a step of its parent runs to its end (the parent hands over after)."""
    return handing_over(None)


async def until_handover() -> None:
    """Return once a handover of the run in this context is requested (never, without one)."""
    handover = _CURRENT.get()
    if handover is None:
        await asyncio.Event().wait()
    else:
        await handover.wait()
