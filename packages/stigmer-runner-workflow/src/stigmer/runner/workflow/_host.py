"""The host interface: every effect and every clock or random read of the interpreter goes through it."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "GrpcRequest",
    "Host",
    "HttpRequest",
    "HttpResponse",
    "Masking",
    "ProcessResult",
    "Redacting",
    "retry_event",
]


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request a task wants made; ``body`` is JSON data, text, bytes or None."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    follow_redirects: bool = False


@dataclass(frozen=True)
class HttpResponse:
    """What came back: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str = ""


@dataclass(frozen=True)
class GrpcRequest:
    """A gRPC call a task wants made (``call: grpc``).

    ``proto_uri`` names the ``.proto`` file describing the service; ``proto`` is its text when the
    task already fetched it (an ``http(s)`` resource), None for a ``file://`` resource the host
    reads itself (next to the files it imports). ``arguments`` is the request message as JSON
    data; ``metadata`` the call's metadata (lower-case keys, e.g. ``authorization``).
    """

    proto_uri: str
    service: str
    method: str
    host: str
    port: int
    proto: str | None = None
    arguments: Any = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of a shell command, script or container."""

    code: int
    stdout: str
    stderr: str


@runtime_checkable
class Host(Protocol):
    """Where a workflow's effects happen.

    The interpreter is pure: it evaluates expressions and decides what to do next, and asks
    the host for everything else — I/O, time, randomness, secrets — and tells it about
    progress. A durable host (e.g. Temporal) runs the effect methods as activities and
    answers ``now``/``random``/``new_id`` deterministically.
    """

    def now(self) -> datetime.datetime:
        """The current time (timezone-aware)."""
        ...

    def random(self) -> float:
        """A number in [0, 1) for retry jitter."""
        ...

    def new_id(self) -> str:
        """A fresh unique id (emitted event ids)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def get_secrets(self, names: Sequence[str]) -> Mapping[str, str]:
        """The values of the declared secrets ``names``; called right before an expression reads them."""
        ...

    async def http_request(self, request: HttpRequest) -> HttpResponse: ...

    async def grpc_call(self, request: GrpcRequest) -> Any:
        """Make the gRPC call: the response message as JSON data (a list of them for a server
        streaming method); failures are :class:`WorkflowError` problems."""
        ...

    async def call_agent(
        self,
        agent: str,
        message: Any,
        session: str | None,
        *,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> Any:
        """Stigmer's ``call: agent``: run ``agent`` on ``message`` and return its output;
        ``attachments`` (``{name, content[, encoding]}`` or ``{name, artifact}``) go into its
        workspace."""
        ...

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Wait for the next event (a CloudEvent as a dict) that may match one of ``filters``.

        The interpreter checks the match itself; a host may use ``filters`` to narrow delivery.
        """
        ...

    async def emit(self, event: Mapping[str, Any]) -> None: ...

    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult: ...

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult: ...

    async def run_workflow(self, namespace: str, name: str, version: str, input: Any) -> Any:
        """Run another workflow to completion and return its output."""
        ...

    async def task_started(self, path: str, name: str, input: Any) -> None: ...

    async def task_completed(self, path: str, name: str, output: Any) -> None: ...

    async def task_failed(self, path: str, name: str, error: Mapping[str, Any]) -> None: ...

    async def task_retried(
        self,
        path: str,
        name: str,
        attempt: int,
        delay: float,
        error: Mapping[str, Any],
        *,
        max_attempts: int | None = None,
    ) -> None:
        """Retry number ``attempt`` (of ``max_attempts`` the policy allows; None: no count) of the
        ``try`` at ``path`` starts after ``delay`` seconds, because of ``error``. Record it with
        :func:`retry_event`."""
        ...

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        """A JSON-serializable resume point, offered after every completed task."""
        ...


@runtime_checkable
class Redacting(Protocol):
    """Optional for a host: values it must mask wherever it records them (e.g. access tokens)."""

    def conceal(self, *values: str) -> None: ...


@runtime_checkable
class Masking(Protocol):
    """Optional for a host: masks the secrets it knows in a text, so that a task can cut the text
    short (an error quoting a response body) without leaving a prefix of a secret behind."""

    def mask(self, text: str) -> str: ...


@runtime_checkable
class TokenBroker(Protocol):
    """Optional for a host: obtains OAuth2/OIDC access tokens itself (a durable host does it in an
    activity, so neither the client secret nor the token enters its history)."""

    async def oauth2_token(self, scheme: str, policy: Mapping[str, Any]) -> str:
        """The token for ``policy`` (evaluated; may hold secret references), or a reference the
        host replaces with it in the requests it sends."""
        ...


def retry_event(
    attempt: int, max_attempts: int | None, delay: float, error: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The text and data of a ``task.retried`` event: ``retry 1/3 in 0.2s (communication error)``,
    and ``{"attempt", "maxAttempts", "delay", "error"}`` for clients that render it themselves."""
    of = f"/{max_attempts}" if max_attempts is not None else ""
    seconds = f"{delay:.3f}".rstrip("0").rstrip(".") or "0"
    cause = str(error.get("title") or "").strip().lower()
    if not cause:
        kind = str(error.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
        cause = kind.replace("-", " ").replace("_", " ")
    text = f"retry {attempt}{of} in {seconds}s" + (f" ({cause})" if cause else "")
    data = {"attempt": attempt, "maxAttempts": max_attempts, "delay": delay, "error": dict(error)}
    return text, data
