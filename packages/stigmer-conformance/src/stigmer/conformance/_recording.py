"""A Backend wrapper that records every response, to search them for secret values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import Message
from stigmer.core import Backend

__all__ = ["RecordingBackend"]


class RecordingBackend:
    """Forwards every call to ``inner`` and keeps ``(method, response)`` for each response message."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.responses: list[tuple[str, Message]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name == "watch_execution":
            return self._watch(target)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await target(*args, **kwargs)
            if isinstance(result, Message):
                self.responses.append((name, result))
            return result

        return call

    def _watch(self, target: Callable[..., AsyncIterator[Message]]) -> Callable[..., AsyncIterator[Message]]:
        async def watch(*args: Any, **kwargs: Any) -> AsyncIterator[Message]:
            async for event in target(*args, **kwargs):
                self.responses.append(("watch_execution", event))
                yield event

        return watch

    def leaks(self, value: str, allowed: tuple[str, ...] = ("get_execution_context",)) -> list[str]:
        """Methods (other than ``allowed``) whose response contains ``value`` in any form."""
        needle = value.encode("utf-8")
        found = []
        for method, message in self.responses:
            if method in allowed:
                continue
            if needle in message.SerializeToString() or value in str(message):
                found.append(method)
        return found
