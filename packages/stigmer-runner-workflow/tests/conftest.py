"""Shared fixtures: a real local HTTP server (``stigmer.testing.HttpWorld``) standing in for the
public hosts workflows call."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from stigmer.core import Backend
from stigmer.runner.workflow import InProcessHost
from stigmer.testing import HttpWorld, Request, Response, json_response


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``STIGMER_HOME``: validated documents a runner keeps go under it, not the user's."""
    home = tmp_path / "stigmer-home"
    monkeypatch.setenv("STIGMER_HOME", str(home))
    return home


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    """A local store on a SQLite file of the test's own (a test file may define its own)."""
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"k" * 32)
    try:
        yield store
    finally:
        await store.close()


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


class Stub(HttpWorld):
    """The running stub: its base URL, what it received, and a URL rewrite for InProcessHost.

    Routes: the petstore (``/v2/pet…``, ``/v2/swagger.json``), an OpenAPI 3 echo (``/openapi.json``,
    ``/api/items/{id}``), ``/basic-auth/USER/PASSWORD``, ``/echo`` (method, headers, query, body),
    ``/echo-raw`` and ``/fail-raw…`` (the request target as sent), ``/text``, ``/not-json``,
    ``/redirect`` (to ``/echo``) and ``/status/CODE``; a path in ``flaky`` answers the statuses
    listed there first."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.flaky: dict[str, list[int]] = {}

    @property
    def base(self) -> str:
        return self.url

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base + rest

    def host(self, **kwargs: Any) -> InProcessHost:
        return InProcessHost(rewrite_url=self.rewrite, **kwargs)

    def handle(self, request: Request) -> Response:
        path, body, query = request.path, request.body, request.params
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "query": query,
                "headers": request.headers,
                "body": body.decode("utf-8", "replace"),
            }
        )
        segments = [s for s in path.split("/") if s]
        if self.flaky.get(path):
            return json_response({"message": "try again"}, self.flaky[path].pop(0))
        if path == "/v2/swagger.json":
            return json_response(SWAGGER)
        if path == "/openapi.json":
            return json_response(OPENAPI3)
        if segments[:2] == ["api", "items"]:
            return json_response(
                {
                    "method": request.method,
                    "item": segments[2],
                    "query": {k: v[0] for k, v in query.items()},
                    "trace": request.headers.get("x-trace"),
                    "body": json.loads(body) if body else None,
                }
            )
        if path == "/v2/pet/findByStatus":
            wanted = set(",".join(query.get("status", [])).split(","))
            return json_response([p for p in PETS.values() if p["status"] in wanted])
        if segments[:2] == ["v2", "pet"] and len(segments) == 3 and segments[2].isdigit():
            pet = PETS.get(int(segments[2]))
            return json_response(
                pet or {"code": 1, "type": "error", "message": "Pet not found"}, 200 if pet else 404
            )
        if segments[:2] == ["v2", "pet"] and request.method in ("POST", "PUT"):
            return json_response(json.loads(body or b"{}"))
        if segments[:1] == ["basic-auth"] and len(segments) == 3:
            expected = "Basic " + base64.b64encode(f"{segments[1]}:{segments[2]}".encode()).decode()
            if request.headers.get("authorization") == expected:
                return json_response({"authenticated": True, "user": segments[1]})
            return Response(status=401, content_type="text/plain")
        if path == "/echo":
            return json_response(
                {
                    "method": request.method,
                    "headers": request.headers,
                    "query": {k: v[0] for k, v in query.items()},
                    "body": json.loads(body) if body else None,
                }
            )
        if path == "/echo-raw":  # the request line's target as sent (URL-encoded)
            return Response(body=request.target.encode(), content_type="text/plain")
        if path.startswith("/fail-raw"):  # an API error quoting the request's target
            return Response(
                status=400, body=b"bad request " + request.target.encode(), content_type="text/plain"
            )
        if path == "/text":
            return Response(body=b"plain words", content_type="text/plain")
        if path == "/not-json":
            return Response(body=b"<html>oops</html>")
        if path == "/redirect":
            return Response(status=302, headers={"Location": "/echo"})
        if segments[:1] == ["status"] and len(segments) == 2:
            return json_response({"status": int(segments[1])}, int(segments[1]))
        return json_response({"message": f"no route for {path}"}, 404)


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[Stub]:
    with Stub() as stub:
        yield stub


@pytest.fixture
def stub(_stub_server: Stub) -> Stub:
    """The local HTTP stub, with its request log and flaky-route table cleared for this test."""
    _stub_server.requests.clear()
    _stub_server.flaky.clear()
    return _stub_server


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
