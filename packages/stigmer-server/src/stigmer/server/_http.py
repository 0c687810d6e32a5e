"""The server's HTTP listener beside gRPC (``--http-listen HOST:PORT``): an ASGI app on uvicorn.

Routes today: ``GET /healthz`` (``ok``, no token: for load balancers and probes) and
``GET /metrics`` (Prometheus text format, see ``_metrics``), which needs a bearer token of any
role (``Authorization: Bearer <token>``, the same tokens as gRPC) unless the server runs with
``--metrics-public``. It uses the gRPC listener's TLS certificate and key when given, and the
same rule: a non-loopback address without TLS is refused unless ``--insecure``.

It is where more HTTP surfaces mount: :meth:`HttpListener.mount` adds an ASGI app under a path
prefix (the web console) and :meth:`HttpListener.route` adds routes (webhooks and events, see
``_hooks``) before :meth:`HttpListener.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stigmer.core import Principal

__all__ = ["HttpListener"]

logger = logging.getLogger("stigmer.server")

Verify = Callable[[str], Principal | None]


class HttpListener:
    """One uvicorn server on ``host:port`` serving Starlette routes; started and stopped by ``serve``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        verify: Verify,
        metrics: Any,
        metrics_public: bool = False,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._verify = verify
        self._metrics = metrics
        self._metrics_public = metrics_public
        self._tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
        self._mounts: list[tuple[str, Any]] = []
        self._routes: list[Any] = []
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.address = ""

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.address}"

    def mount(self, path: str, app: Any) -> None:
        """Serve the ASGI ``app`` under ``path`` (e.g. ``/console``); before :meth:`start`."""
        self._mounts.append((path, app))

    def route(self, *routes: Any) -> None:
        """Serve Starlette ``routes`` (``POST /hooks/{name}``, ``POST /events``); before :meth:`start`."""
        self._routes.extend(routes)

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, Response
        from starlette.routing import Mount, Route

        async def healthz(_request: Request) -> Response:
            return PlainTextResponse("ok\n")

        async def metrics(request: Request) -> Response:
            if not self._metrics_public:
                denied: Response | None = await self._authorize(request)
                if denied is not None:
                    return denied
            body, content_type = self._metrics.exposition()
            return Response(body, media_type=content_type)

        routes: list[Any] = [Route("/healthz", healthz), Route("/metrics", metrics)]
        routes += self._routes
        routes += [Mount(path, app=app) for path, app in self._mounts]
        return Starlette(routes=routes)

    async def _authorize(self, request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return PlainTextResponse(
                "missing credentials: send `Authorization: Bearer <token>` (a token from `stigmer token create`)\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await asyncio.to_thread(self._verify, token.strip())
        if principal is None:
            return PlainTextResponse(
                "invalid or revoked token\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    async def start(self) -> str:
        """Bind and serve in the background; the bound ``host:port``."""
        import socket

        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            from stigmer.core import FailedPrecondition

            raise FailedPrecondition(
                f"cannot listen for HTTP on {self.host}:{self.port}: {exc.strerror or exc}; is the port in use?"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        bound = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(self._tls[0]) if self._tls else None,
            ssl_keyfile=str(self._tls[1]) if self._tls else None,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # `serve` owns SIGTERM/SIGINT
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="stigmer-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                break
            await asyncio.sleep(0.01)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.address = f"{host}:{bound}"
        return self.address

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self._task, 10)
