"""Shared fixtures: a real local HTTP server standing in for the public hosts workflows call."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from stigmer.runner.workflow import InProcessHost

PETS = {
    1: {"id": 1, "name": "Milou", "status": "available", "category": {"id": 1, "name": "dogs"}},
    2: {"id": 2, "name": "Rantanplan", "status": "available"},
    3: {"id": 3, "name": "Garfield", "status": "sold"},
}

SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "Swagger Petstore", "version": "1.0.7"},
    "host": "petstore.swagger.io",
    "basePath": "/v2",
    "schemes": ["https", "http"],
    "paths": {
        "/pet/findByStatus": {
            "get": {
                "operationId": "findPetsByStatus",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": True,
                        "type": "array",
                        "items": {"type": "string"},
                    }
                ],
            }
        },
        "/pet/{petId}": {
            "get": {
                "operationId": "getPetById",
                "parameters": [{"name": "petId", "in": "path", "required": True, "type": "integer"}],
            },
        },
        "/pet": {
            "post": {
                "operationId": "addPet",
                "parameters": [{"name": "body", "in": "body", "required": True}],
            }
        },
    },
}


OPENAPI3 = {
    "openapi": "3.0.3",
    "info": {"title": "Echo", "version": "1"},
    "servers": [{"url": "/api"}],
    "paths": {
        "/items/{itemId}": {
            "put": {
                "operationId": "putItem",
                "parameters": [
                    {"name": "itemId", "in": "path", "required": True},
                    {"name": "dryRun", "in": "query"},
                    {"name": "X-Trace", "in": "header"},
                ],
                "requestBody": {"content": {"application/json": {}}},
            }
        }
    },
}


@dataclass
class Stub:
    """The running stub: its base URL, what it received, and a URL rewrite for InProcessHost."""

    base: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    flaky: dict[str, list[int]] = field(default_factory=dict)

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base + rest

    def host(self, **kwargs: Any) -> InProcessHost:
        return InProcessHost(rewrite_url=self.rewrite, **kwargs)


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.requests.append(
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
            )
            segments = [s for s in parts.path.split("/") if s]
            query = parse_qs(parts.query)
            if stub.flaky.get(parts.path):
                self._reply(stub.flaky[parts.path].pop(0), {"message": "try again"})
                return
            if parts.path == "/v2/swagger.json":
                self._reply(200, SWAGGER)
            elif parts.path == "/openapi.json":
                self._reply(200, OPENAPI3)
            elif segments[:2] == ["api", "items"]:
                self._reply(
                    200,
                    {
                        "method": self.command,
                        "item": segments[2],
                        "query": {k: v[0] for k, v in query.items()},
                        "trace": self.headers.get("X-Trace"),
                        "body": json.loads(body) if body else None,
                    },
                )
            elif parts.path == "/v2/pet/findByStatus":
                wanted = set(",".join(query.get("status", [])).split(","))
                self._reply(200, [p for p in PETS.values() if p["status"] in wanted])
            elif segments[:2] == ["v2", "pet"] and len(segments) == 3 and segments[2].isdigit():
                pet = PETS.get(int(segments[2]))
                self._reply(
                    200 if pet else 404, pet or {"code": 1, "type": "error", "message": "Pet not found"}
                )
            elif segments[:2] == ["v2", "pet"] and self.command in ("POST", "PUT"):
                self._reply(200, json.loads(body or b"{}"))
            elif segments[:1] == ["basic-auth"] and len(segments) == 3:
                expected = "Basic " + base64.b64encode(f"{segments[1]}:{segments[2]}".encode()).decode()
                if self.headers.get("Authorization") == expected:
                    self._reply(200, {"authenticated": True, "user": segments[1]})
                else:
                    self._reply(401, b"", "text/plain")
            elif parts.path == "/echo":
                self._reply(
                    200,
                    {
                        "method": self.command,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "query": {k: v[0] for k, v in query.items()},
                        "body": json.loads(body) if body else None,
                    },
                )
            elif parts.path == "/echo-raw":  # the request line's target as sent (URL-encoded)
                self._reply(200, self.path.encode(), "text/plain")
            elif parts.path.startswith("/fail-raw"):  # an API error quoting the request's target
                self._reply(400, b"bad request " + self.path.encode(), "text/plain")
            elif parts.path == "/text":
                self._reply(200, b"plain words", "text/plain")
            elif parts.path == "/not-json":
                self._reply(200, b"<html>oops</html>", "application/json")
            elif parts.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/echo")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif segments[:1] == ["status"] and len(segments) == 2:
                self._reply(int(segments[1]), {"status": int(segments[1])})
            else:
                self._reply(404, {"message": f"no route for {parts.path}"})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[tuple[ThreadingHTTPServer, Stub]]:
    stub = Stub(base="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, stub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stub(_stub_server: tuple[ThreadingHTTPServer, Stub]) -> Stub:
    """The local HTTP stub, with its request log and flaky-route table cleared for this test."""
    _, state = _stub_server
    state.requests.clear()
    state.flaky.clear()
    return state


DOC = {"dsl": "1.0.3", "namespace": "test", "name": "t", "version": "1.0.0"}


@pytest.fixture
def document() -> Callable[..., dict[str, Any]]:
    """Build a workflow document from a task list (and optional top-level sections)."""

    def build(tasks: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
        return {"document": dict(DOC), **top, "do": tasks}

    return build


class ClockHost(InProcessHost):
    """InProcessHost on a virtual clock: ``sleep`` records the delay and advances ``now``.

    Real waiting is compressed logarithmically (a day takes ~0.23 s) so that racing timers
    still finish in the order of their virtual durations.
    """

    def __init__(self, *, jitter: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sleeps: list[float] = []
        self.moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        self._jitter = jitter

    def now(self) -> datetime.datetime:
        return self.moment

    def random(self) -> float:
        return self._jitter

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Gaps of a few virtual seconds must stay tens of real milliseconds apart, or a loaded
        # machine can reorder racing timers (a timeout and the work it guards).
        await asyncio.sleep(math.log1p(seconds) * 0.02)
        self.moment += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock_host(stub: Stub) -> Callable[..., ClockHost]:
    """Make a virtual-clock host whose HTTP goes to the local stub."""

    def make(**kwargs: Any) -> ClockHost:
        return ClockHost(rewrite_url=stub.rewrite, **kwargs)

    return make
