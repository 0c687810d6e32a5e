"""How the console reaches the Backend: through the server's own servicer, as the logged-in caller.

Each call is checked with the same role rule as the gRPC interceptor (:func:`permission_error`),
then served by the same :class:`BackendServicer` method under :func:`acting_as` the caller's
Principal, so the store applies its ownership rules and the servicer its dispatch (a run created
here is started like one created over gRPC; an approval resumes the paused run). The servicer
ends a failed call with ``context.abort``; the stand-in context here turns that into
:class:`CallError` carrying the same status name and message a gRPC client would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

from stigmer.core import Principal, acting_as
from stigmer.server._auth import _TokenCache, permission_error
from stigmer.server._tokens import TokenStore

__all__ = ["CallError", "Gateway"]


class CallError(Exception):
    """A call the Backend (or the role check) refused: ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Context:
    """The part of a grpc.aio ServicerContext that the servicer uses."""

    async def abort(self, code: Any, details: str = "") -> NoReturn:
        raise CallError(getattr(code, "name", str(code)), details)

    def set_trailing_metadata(self, _metadata: Any) -> None:
        return None

    def invocation_metadata(self) -> tuple[()]:
        return ()


class Gateway:
    """The servicer and token store of one server, for the console's requests."""

    def __init__(self, servicer: Any, tokens: TokenStore) -> None:
        self._servicer = servicer
        self.tokens = tokens
        self._cache = _TokenCache(tokens)

    async def authenticate(self, token: str) -> Principal | None:
        """The Principal of an API token (``stigmer token create``), or None; cached 2 s like gRPC's."""
        token = token.strip()
        if not token or len(token) > 512:
            return None
        return await self._cache.resolve(token)

    def forget(self) -> None:
        self._cache.clear()

    def _check(self, principal: Principal, method: str) -> None:
        denied = permission_error(principal, method)
        if denied is not None:
            raise CallError("PERMISSION_DENIED", denied)

    async def call(self, principal: Principal, method: str, request: Any) -> Any:
        """``method`` (a BackendService method name) as ``principal``; raises :class:`CallError`."""
        self._check(principal, method)
        with acting_as(principal):
            return await getattr(self._servicer, method)(request, _Context())

    async def watch(self, principal: Principal, request: Any) -> AsyncIterator[Any]:
        """The events of ``WatchExecution`` as ``principal``."""
        self._check(principal, "WatchExecution")
        with acting_as(principal):
            async for event in self._servicer.WatchExecution(request, _Context()):
                yield event
