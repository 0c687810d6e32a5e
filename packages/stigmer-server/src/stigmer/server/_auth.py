"""Bearer-token authentication, role checks and request logging for ``stigmer server``.

One grpc.aio server interceptor wraps every method handler: it reads the ``authorization:
Bearer <token>`` metadata, resolves the caller through the :class:`TokenStore` (with a short
cache), refuses what the caller's role may not do, and logs method, status code, duration and
token id. It never looks at request or response bodies, so nothing secret can reach the log.

Besides the API tokens of the :class:`TokenStore`, the server issues tokens scoped to one
execution (:class:`ExecutionTokens`): in memory only, handed to the child process that runs the
execution, revoked when it ends. They resolve to a ``runner`` principal whose ``execution_id``
names that execution.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from stigmer.core import StigmerError, acting_as, current_principal
from stigmer.server._servicer import abort_with
from stigmer.server._tokens import Principal, TokenStore, token_digest

__all__ = [
    "EXECUTION_TOKEN_PREFIX",
    "PUBLIC_METHOD_PREFIXES",
    "AuthInterceptor",
    "ExecutionTokens",
    "current_principal",
    "permission_error",
]

logger = logging.getLogger("stigmer.server")

_SERVICE_PREFIX = "/stigmer.v1.BackendService/"

# Methods that need no token: health checks (for supervisors and load balancers) and reflection
# (the schema is public).
PUBLIC_METHOD_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_RUNNER = frozenset(
    {
        "Get",
        "List",
        "ListVersions",  # the definition version an execution pinned
        "GetExecution",
        "ListExecutions",
        "GetExecutionContext",
        "UpdateExecutionStatus",
        "WatchExecution",
        "GetArtifact",
        # A workflow's `call: agent` / `run: workflow` starts child executions.
        "CreateExecution",
        # An agent's memory tools (the store limits a runner to its execution's agent).
        "CreateMemory",
        "ListMemories",
        "GetMemory",
        "DeleteMemory",
    }
)
_USER_DENIED = frozenset({"GetExecutionContext", "UpdateExecutionStatus"})
# Secret grants are checked by the store: a user may grant or revoke only secrets it owns.

_CACHE_TTL = 2.0  # seconds a verified token is trusted before the store is asked again
_CACHE_MAX = 4096


def permission_error(principal: Principal, method: str) -> str | None:
    """Why ``principal`` may not call ``method`` (a bare method name), or None if it may."""
    role = principal.role
    if role == "admin":
        return None
    if role == "user" and method not in _USER_DENIED:
        return None
    if role == "runner" and method in _RUNNER:
        return None
    needed = (
        "runner or admin" if method in _USER_DENIED else ("user or admin" if role == "runner" else "admin")
    )
    return (
        f"{method} requires the {needed} role; token {principal.token_id} ({principal.name!r}) "
        f"has role {role!r}"
    )


EXECUTION_TOKEN_PREFIX = "xtk_"


class ExecutionTokens:
    """Tokens scoped to one execution, issued by the server per dispatched run; in memory only.

    ``issue(execution_id)`` returns a fresh token (replacing any earlier one of that execution);
    ``resolve(token)`` gives the ``runner`` principal with ``execution_id`` set, or None once
    ``revoke(execution_id)`` was called (or after a server restart). Only digests are kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, str]] = {}  # token id -> (sha256, execution id)
        self._by_execution: dict[str, str] = {}  # execution id -> token id

    def issue(self, execution_id: str) -> str:
        """A new token for the run of ``execution_id``; shown only here."""
        if not execution_id:
            raise ValueError("an execution token needs an execution id")
        token_id = f"{EXECUTION_TOKEN_PREFIX}{secrets.token_hex(10)}"
        token = f"{token_id}.{secrets.token_urlsafe(32)}"
        with self._lock:
            earlier = self._by_execution.pop(execution_id, None)
            if earlier is not None:
                self._by_id.pop(earlier, None)
            self._by_id[token_id] = (token_digest(token), execution_id)
            self._by_execution[execution_id] = token_id
        return token

    def revoke(self, execution_id: str) -> None:
        """Invalidate the token of ``execution_id`` (harmless when there is none)."""
        with self._lock:
            token_id = self._by_execution.pop(execution_id, None)
            if token_id is not None:
                self._by_id.pop(token_id, None)

    def resolve(self, token: str) -> Principal | None:
        """The principal ``token`` stands for, or None when it is unknown, wrong or revoked."""
        token_id, sep, secret = token.partition(".")
        if not sep or not secret or not token_id.startswith(EXECUTION_TOKEN_PREFIX):
            return None
        with self._lock:
            found = self._by_id.get(token_id)
        if found is None or not hmac.compare_digest(found[0], token_digest(token)):
            return None
        execution_id = found[1]
        return Principal(
            token_id=token_id, name=f"execution {execution_id}", role="runner", execution_id=execution_id
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


_UNAUTHENTICATED = (
    "invalid or revoked token; run `stigmer login --endpoint <endpoint> --token <token>` with a token from "
    "`stigmer token create`"
)
_MISSING = (
    "missing credentials: send `authorization: Bearer <token>` metadata; run "
    "`stigmer login --endpoint <endpoint> --token <token>` with a token from `stigmer token create`"
)


class _TokenCache:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, token: str) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await asyncio.to_thread(self._store.verify, token)
        if len(self._entries) >= _CACHE_MAX:
            self._entries.clear()
        self._entries[token] = (now + _CACHE_TTL, principal)
        return principal

    def clear(self) -> None:
        self._entries.clear()


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticate, authorize and log every RPC of the server."""

    def __init__(self, store: TokenStore, executions: ExecutionTokens | None = None) -> None:
        self._cache = _TokenCache(store)
        self._executions = executions
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def forget_cached_tokens(self) -> None:
        """Drop cached verifications, e.g. right after a revocation in this process."""
        self._cache.clear()

    async def _admit(self, method: str, context: Any) -> Principal:
        token = _bearer(context.invocation_metadata())
        if not token:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, _MISSING if token is None else _UNAUTHENTICATED
            )
        try:
            if token and token.startswith(EXECUTION_TOKEN_PREFIX):
                # Never cached: a revoked execution token stops working at once.
                principal = self._executions.resolve(token) if self._executions is not None else None
            else:
                principal = await self._cache.resolve(token or "")
        except StigmerError as err:  # the token store is unreachable
            logger.warning("cannot check a token: %s", err)
            await abort_with(context, err)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)
        assert principal is not None
        if method.startswith(_SERVICE_PREFIX):
            denied = permission_error(principal, method[len(_SERVICE_PREFIX) :])
            if denied is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        return principal

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if method.startswith(PUBLIC_METHOD_PREFIXES):
            return handler
        # The wrapped handler of a method is built once and reused for every call.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client- and bidi-streaming methods are not part of the contract

    def _wrap_unary(
        self, method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        name = method.rsplit("/", 1)[-1]

        async def unary(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            principal: Principal | None = None
            try:
                principal = await self._admit(method, context)
                if isinstance(request, _Malformed):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message(method))
                with acting_as(principal):
                    response = await behavior(request, context)
            except BaseException:
                _log(name, _code_name(context), principal, start)
                raise
            _log(name, "OK", principal, start)
            return response

        return unary

    def _wrap_stream(
        self, method: str, behavior: Callable[[Any, Any], AsyncIterator[Any]]
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        name = method.rsplit("/", 1)[-1]

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            start = time.perf_counter()
            principal: Principal | None = None
            try:
                principal = await self._admit(method, context)
                if isinstance(request, _Malformed):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message(method))
                with acting_as(principal):
                    async for item in behavior(request, context):
                        yield item
            except BaseException:
                _log(name, _code_name(context), principal, start)
                raise
            _log(name, "OK", principal, start)

        return stream


class _Malformed:
    """Stands in for a request body that does not decode, so the caller gets INVALID_ARGUMENT."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def message(self, method: str) -> str:
        return f"malformed request to {method.rsplit('/', 1)[-1]}: the body is not a valid message ({self.reason})"


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf DecodeError and friends
            return _Malformed(type(exc).__name__)

    return deserialize


def _code_name(context: Any) -> str:
    """The status an RPC that raised ends with (set by ``context.abort``), else CANCELLED."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "CANCELLED" if context.cancelled() else "UNKNOWN"


def _log(name: str, code: str, principal: Principal | None, start: float) -> None:
    # At debug level: a line per call costs a busy server about 5% of its time.
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "rpc method=%s code=%s duration_ms=%.2f token=%s",
            name,
            code,
            (time.perf_counter() - start) * 1000.0,
            principal.token_id if principal is not None else "-",
        )
