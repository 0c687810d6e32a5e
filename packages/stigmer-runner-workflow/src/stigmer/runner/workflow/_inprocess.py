"""``InProcessHost``: effects in this process with asyncio — httpx, subprocesses, an event queue."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.core import header_problem

from ._errors import ErrorKind, WorkflowError
from ._grpc import ProtoCache, call_grpc
from ._host import GrpcRequest, HttpRequest, HttpResponse, ProcessResult, retry_event
from ._telemetry import http_span

if TYPE_CHECKING:  # httpx is imported by the first HTTP call (a run without one skips ~50 ms)
    import httpx

__all__ = ["InProcessHost", "http_error_text"]

logger = logging.getLogger(__name__)

AgentHandler = Callable[[str, Any, "str | None"], Awaitable[Any]]
WorkflowHandler = Callable[[str, str, str, Any], Awaitable[Any]]
_SCRIPT_COMMANDS: Mapping[str, tuple[list[str], str]] = {
    "python": ([sys.executable], ".py"),
    "python3": ([sys.executable], ".py"),
    "js": (["node"], ".mjs"),
    "javascript": (["node"], ".mjs"),
    "node": (["node"], ".mjs"),
    "sh": (["/bin/sh"], ".sh"),
    "bash": (["bash"], ".sh"),
}


def http_error_text(exc: BaseException) -> str:
    """An HTTP client failure without the request's or response's values (see ``header_problem``).

    Network errors and timeouts say what happened (their messages come from the OS, not the
    request); protocol, URL and encoding errors quote what they refused, so only their kind is
    kept.
    """
    import httpx

    kind = type(exc).__name__
    if isinstance(exc, httpx.LocalProtocolError):
        return f"{kind}: the HTTP client refused the request (a header name or value it cannot send)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{kind}: the server's answer is not valid HTTP"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"{kind}: the URL is not one the HTTP client can request"
    if isinstance(exc, UnicodeError):
        return f"{kind}: a header or the URL holds characters HTTP cannot carry"
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError):
        return f"{kind}: {exc}" if str(exc) else kind
    return kind


class InProcessHost:
    """Runs a workflow's effects in this process.

    - HTTP through an ``httpx.AsyncClient`` (pass ``client`` to share one or mount a transport;
      ``rewrite_url`` maps each URL before sending, e.g. to point public hosts at a local stub);
    - gRPC calls with ``grpc.aio``, their ``.proto`` compiled by protoc and cached (:mod:`._grpc`);
    - shell commands and scripts as subprocesses; ``run: workflow`` and ``call: agent`` through
      the ``run_workflow_handler`` / ``agent_handler`` callables;
    - secrets from ``secrets`` (or a ``secrets_provider`` coroutine called each time they are needed);
    - events on one in-memory queue: :meth:`publish` feeds ``listen``; ``emit`` records and
      publishes. Each event is delivered to one waiting ``listen`` (there is no fan-out), and an
      event the listening task does not match is dropped.

    Lifecycle callbacks are recorded in ``events`` (and the last checkpoint in ``last_checkpoint``)
    so callers can show progress or resume.
    """

    # What the interpreter asks of a host (the defaults it assumes for hosts without them): each
    # ``for`` iteration is reported as a task, and expressions that run in a jq process may be
    # awaited in a thread.
    report_iterations = True
    deterministic = False

    def __init__(
        self,
        *,
        secrets: Mapping[str, str] | None = None,
        secrets_provider: Callable[[Sequence[str]], Awaitable[Mapping[str, str]]] | None = None,
        client: httpx.AsyncClient | None = None,
        rewrite_url: Callable[[str], str] | None = None,
        agent_handler: AgentHandler | None = None,
        run_workflow_handler: WorkflowHandler | None = None,
        on_checkpoint: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
        http_timeout: float = 30.0,
    ) -> None:
        self._secrets = dict(secrets or {})
        self._secrets_provider = secrets_provider
        self._client = client
        self._owns_client = client is None
        self._rewrite_url = rewrite_url
        self._agent_handler = agent_handler
        self._run_workflow_handler = run_workflow_handler
        self._on_checkpoint = on_checkpoint
        self._http_timeout = http_timeout
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._protos = ProtoCache()
        self.emitted: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str, Any]] = []
        self.last_checkpoint: Mapping[str, Any] | None = None

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> InProcessHost:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------- determinism
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def random(self) -> float:
        return random.random()

    def new_id(self) -> str:
        return str(uuid.uuid4())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # --------------------------------------------------------------- secrets
    async def get_secrets(self, names: Sequence[str]) -> Mapping[str, str]:
        if self._secrets_provider is not None:
            return dict(await self._secrets_provider(names))
        return {name: self._secrets[name] for name in names if name in self._secrets}

    # ------------------------------------------------------------------ HTTP
    async def http_request(self, request: HttpRequest) -> HttpResponse:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._http_timeout)
            self._owns_client = True
        url = self._rewrite_url(request.url) if self._rewrite_url else request.url
        kwargs: dict[str, Any] = {}
        if isinstance(request.body, bytes):
            kwargs["content"] = request.body
        elif isinstance(request.body, str):
            kwargs["content"] = request.body.encode()
        elif request.body is not None:
            kwargs["json"] = request.body
        for name, value in request.headers.items():
            problem = header_problem(name, value)
            if problem:
                raise WorkflowError.of(
                    ErrorKind.CONFIGURATION, f"{request.method} {request.url} not sent: {problem}"
                )
        try:
            with http_span(request.method, url) as span:
                response = await self._client.request(
                    request.method,
                    url,
                    headers=dict(request.headers),
                    params=dict(request.query) or None,
                    follow_redirects=request.follow_redirects,
                    **kwargs,
                )
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status_code)
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            raise WorkflowError.of(
                ErrorKind.COMMUNICATION, f"{request.method} {request.url} failed: {http_error_text(exc)}"
            ) from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        return HttpResponse(
            status=response.status_code, headers=headers, content=response.content, url=str(response.url)
        )

    # ------------------------------------------------------------------ gRPC
    async def grpc_call(self, request: GrpcRequest) -> Any:
        """Compile the request's ``.proto`` (cached) and make the call (see :mod:`._grpc`)."""
        return await call_grpc(request, self._protos)

    # -------------------------------------------------------- agents, flows
    async def call_agent(
        self,
        agent: str,
        message: Any,
        session: str | None,
        *,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> Any:
        if attachments:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, "call: agent with.attachments needs a Stigmer backend"
            )
        if self._agent_handler is None:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"call: agent ({agent!r}) needs an agent runner; none is configured"
            )
        return await self._agent_handler(agent, message, session)

    async def run_workflow(self, namespace: str, name: str, version: str, input: Any) -> Any:
        if self._run_workflow_handler is None:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION,
                f"run: workflow {namespace}/{name}:{version} needs a workflow resolver",
            )
        return await self._run_workflow_handler(namespace, name, version, input)

    # ---------------------------------------------------------------- events
    def publish(self, event: Mapping[str, Any]) -> None:
        """Deliver an event to ``listen`` tasks."""
        self._queue.put_nowait(dict(event))

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._queue.get()

    async def emit(self, event: Mapping[str, Any]) -> None:
        self.emitted.append(dict(event))
        self.publish(event)

    # ------------------------------------------------------------- processes
    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        return await self._exec(["/bin/sh", "-c", command, "sh", *arguments], environment, stdin)

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult:
        found = _SCRIPT_COMMANDS.get(language.lower())
        if found is None:
            raise WorkflowError.of(ErrorKind.CONFIGURATION, f"script language {language!r} is not supported")
        command, suffix = found
        with tempfile.TemporaryDirectory(prefix="stigmer-script-") as folder:
            path = Path(folder) / f"script{suffix}"
            path.write_text(code, encoding="utf-8")
            return await self._exec([*command, str(path), *arguments], environment, stdin)

    async def _exec(
        self, argv: list[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        env = {**os.environ, **environment}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise WorkflowError.of(ErrorKind.RUNTIME, f"could not start {argv[0]}: {exc}") from None
        try:
            out, err = await process.communicate((stdin or "").encode())
        except asyncio.CancelledError:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        return ProcessResult(
            code=process.returncode or 0,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
        )

    # ------------------------------------------------------------- lifecycle
    async def task_started(self, path: str, name: str, input: Any) -> None:
        self.events.append(("started", path, name, input))

    async def task_completed(self, path: str, name: str, output: Any) -> None:
        self.events.append(("completed", path, name, output))

    async def task_failed(self, path: str, name: str, error: Mapping[str, Any]) -> None:
        self.events.append(("failed", path, name, dict(error)))

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
        self.events.append(("retried", path, name, retry_event(attempt, max_attempts, delay, error)[1]))

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.last_checkpoint = json.loads(json.dumps(state))
        if self._on_checkpoint is not None:
            await self._on_checkpoint(self.last_checkpoint)
