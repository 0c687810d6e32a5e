"""``HttpWorld``: a real HTTP server on 127.0.0.1 standing in for the URLs tests call.

Every request is recorded (method, target, headers, body) before ``handler`` answers it; a
handler returns a :class:`Response` (JSON, bytes, or a stream of chunks written one by one, as
server-sent events are). Subclasses override :meth:`HttpWorld.handle`, or pass a function.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

__all__ = ["HttpWorld", "Request", "Response", "json_response"]


@dataclass(frozen=True)
class Request:
    """One request as the server received it; header names are lower-case."""

    method: str
    target: str  # the request line's target as sent: path and query, URL-encoded
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    """An answer: ``body`` sent with its length, or ``stream`` chunks flushed one by one (the
    connection closes after a stream)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=json.dumps(payload).encode(), headers=dict(headers or {}))


Handler = Callable[[Request], Response]


class HttpWorld:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) that records every request.

    Use it as a context manager (``with HttpWorld(handler) as world: world.url``), or call
    :meth:`start` and :meth:`close`. ``handler`` (else :meth:`handle`) answers each request.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or self.handle
        self.received: list[Request] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what it received ------------------------------------------------------------------------
    def count(self, path: str) -> int:
        """How many requests went to ``path`` (without query)."""
        with self.lock:
            return sum(1 for r in self.received if r.path == path)

    @property
    def auth(self) -> list[str]:
        """The ``Authorization`` header of every request so far ("" where there was none)."""
        with self.lock:
            return [r.headers.get("authorization", "") for r in self.received]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()

    # -- answering -------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """The default answer: 404 (override, or pass a handler)."""
        return json_response({"message": f"no route for {request.path}"}, 404)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        world = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    method=self.command,
                    target=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with world.lock:
                    world.received.append(request)
                response = world.handler(request)
                try:
                    self._send(response)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the caller went away meanwhile (e.g. was killed)

            def _send(self, response: Response) -> None:
                self.send_response(response.status)
                self.send_header("content-type", response.content_type)
                if response.stream is None:
                    self.send_header("content-length", str(len(response.body)))
                else:
                    self.send_header("cache-control", "no-cache")
                    self.send_header("connection", "close")
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if response.stream is None:
                    self.wfile.write(response.body)
                    return
                for chunk in response.stream:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return _Handler
