"""The SDK client of the context this invocation uses (``--context``, else the current one).

Every command that talks to a backend goes through ``stigmer.sdk.AsyncStigmer``: it chooses and
opens the backend of the context, runs executions in this process in a local context, follows
them and answers approvals. The SDK is imported on first use, never at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from stigmer.cli._options import OPTIONS

if TYPE_CHECKING:
    from stigmer.sdk import AsyncStigmer

__all__ = ["connect", "run_async"]

T = TypeVar("T")


def connect() -> AsyncStigmer:
    """A client of the active context (use it as ``async with connect() as client``)."""
    from stigmer.sdk import AsyncStigmer

    return AsyncStigmer(context=OPTIONS.context or None)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)
