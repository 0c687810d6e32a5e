"""Loading the agent libraries in a cold process without the garbage collector's full passes.

Loading pydantic-ai, a provider SDK and the MCP client creates some hundred thousand long-lived
objects (classes, schemas); the collector's full passes over them while they load cost about a
fifth of the loading time (≈0.4 s of CPU in a cold ``stigmer agent execute``), and none of it is
garbage. Each pause covers synchronous imports only (no await inside), and turns the collector
back on only if it was on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "load_pydantic_ai"]


@contextmanager
def collector_paused() -> Iterator[None]:
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def load_pydantic_ai() -> None:
    """pydantic-ai and its message types, which every run needs (the provider and MCP client
    are loaded when the agent is built, also with the collector paused)."""
    with collector_paused():
        import pydantic_ai.messages  # noqa: F401
