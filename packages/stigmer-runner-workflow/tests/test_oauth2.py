"""OAuth2 / OIDC client credentials against a real local server acting as authority and API."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import InProcessHost, WorkflowError, WorkflowRunner, run_workflow

Doc = Callable[..., dict[str, Any]]
CLIENT_ID = "workflow-runtime"
CLIENT_SECRET = "s3cr3t-Cl1ent-9b8a7c"


@dataclass
class Authority:
    """Token endpoint(s), OIDC discovery and a protected API, with what they received."""

    base: str = ""
    expires_in: int | None = 3600
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def client_of(self, headers: dict[str, str], form: dict[str, str]) -> tuple[str, str, str]:
        """(client id, secret, how they were sent) from a token request."""
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote(user), unquote(password), "basic"
        return form.get("client_id", ""), form.get("client_secret", ""), "post"


def _handler(state: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _token(self, raw: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if headers.get("content-type", "").startswith("application/json"):
                form = {k: str(v) for k, v in json.loads(raw).items()}
            else:
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            client, secret, sent = state.client_of(headers, form)
            state.token_requests.append({"path": self.path, "form": form, "sent": sent})
            if form.get("grant_type") != "client_credentials":
                self._reply(400, {"error": "unsupported_grant_type"})
            elif client != CLIENT_ID or secret != CLIENT_SECRET:
                self._reply(401, {"error": "invalid_client", "error_description": "bad client credentials"})
            else:
                token = f"at-{len(state.issued) + 1}-{form.get('scope', '')}".replace(" ", "+")
                state.issued.append(token)
                answer: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
                if state.expires_in is not None:
                    answer["expires_in"] = state.expires_in
                self._reply(200, answer)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/token"):
                self._token(raw)
            else:
                self.do_GET()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.endswith("/.well-known/openid-configuration"):
                issuer = state.base + path.removesuffix("/.well-known/openid-configuration")
                self._reply(200, {"issuer": issuer, "token_endpoint": state.base + "/oidc/connect/token"})
                return
            if path == "/openapi.json":
                self._reply(
                    200,
                    {
                        "openapi": "3.0.3",
                        "info": {"title": "t", "version": "1"},
                        "paths": {"/api/whoami": {"get": {"operationId": "whoami"}}},
                    },
                )
                return
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            if not auth.startswith("Bearer ") or token not in state.issued:
                self._reply(401, {"message": "no valid bearer token"})
                return
            state.api_calls.append(token)
            self._reply(200, {"path": path, "token": token})

    return Handler


@pytest.fixture(scope="module")
def _authority_server() -> Iterator[Authority]:
    state = Authority()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def authority(_authority_server: Authority) -> Authority:
    _authority_server.token_requests.clear()
    _authority_server.api_calls.clear()
    _authority_server.expires_in = 3600
    return _authority_server


class ClockHost(InProcessHost):
    """Virtual clock: ``wait`` tasks advance ``now`` without real waiting."""

    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def now(self) -> datetime.datetime:
        return self.moment

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.moment += datetime.timedelta(seconds=seconds)


def oauth2(authority: Authority, **extra: Any) -> dict[str, Any]:
    return {
        "authority": authority.base + "/realms/demo",
        "grant": "client_credentials",
        "client": {"id": CLIENT_ID, "secret": "${ $secrets.CLIENT_SECRET }"},
        **extra,
    }


async def test_client_credentials_token_is_fetched_once_and_sent_as_bearer(
    authority: Authority, document: Doc
) -> None:
    wf = document(
        [
            {
                "loop": {
                    "for": {"each": "n", "in": "${ [1, 2, 3] }"},
                    "do": [
                        {
                            "fetch": {
                                "call": "http",
                                "with": {
                                    "method": "get",
                                    "endpoint": {
                                        "uri": authority.base + "/api/items",
                                        "authentication": {"use": "idp"},
                                    },
                                },
                                "output": {"as": "${ {token: .token, auth: $authorization} }"},
                            }
                        }
                    ],
                }
            }
        ],
        use={
            "secrets": ["CLIENT_SECRET"],
            "authentications": {"idp": {"oauth2": oauth2(authority, scopes=["read", "write"])}},
        },
    )
    async with InProcessHost(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        output = await run_workflow(wf, host)
    assert len(authority.token_requests) == 1  # cached for the other two calls
    request = authority.token_requests[0]
    assert request["path"] == "/realms/demo/oauth2/token"
    assert request["sent"] == "post"  # client_secret_post by default, as the DSL schema says
    assert request["form"]["client_id"] == CLIENT_ID
    assert request["form"]["client_secret"] == CLIENT_SECRET
    assert request["form"]["scope"] == "read write"
    token = authority.issued[-1]
    assert authority.api_calls == [token, token, token]
    assert output == {"token": token, "auth": {"scheme": "Bearer", "parameter": token}}


async def test_client_secret_post_with_audiences_and_json_encoding(
    authority: Authority, document: Doc
) -> None:
    policy = oauth2(
        authority,
        endpoints={"token": "/protocol/openid-connect/token"},
        audiences=["orders-api"],
        request={"encoding": "application/json"},
    )
    policy["client"]["authentication"] = "client_secret_post"
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {
                            "uri": authority.base + "/api/orders",
                            "authentication": {"oauth2": policy},
                        },
                    },
                }
            }
        ],
        use={"secrets": ["CLIENT_SECRET"]},
    )
    async with InProcessHost(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        output = await run_workflow(wf, host)
    assert output == {"path": "/api/orders", "token": authority.issued[-1]}
    [request] = authority.token_requests
    assert request["path"] == "/realms/demo/protocol/openid-connect/token"
    assert request["sent"] == "post"
    assert request["form"] == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": "orders-api",
    }


async def test_a_token_is_fetched_again_shortly_before_it_expires(
    authority: Authority, document: Doc
) -> None:
    authority.expires_in = 120  # reused for 108 s (a tenth of the lifetime is kept as margin)
    call = {
        "call": "http",
        "with": {
            "method": "get",
            "endpoint": {"uri": authority.base + "/api/x", "authentication": {"use": "idp"}},
        },
    }
    wf = document(
        [
            {"first": call},
            {"soon": {"wait": {"seconds": 100}}},
            {"second": call},
            {"later": {"wait": {"seconds": 10}}},
            {"third": call},
        ],
        use={"secrets": ["CLIENT_SECRET"], "authentications": {"idp": {"oauth2": oauth2(authority)}}},
    )
    async with ClockHost(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        await run_workflow(wf, host)
    assert len(authority.token_requests) == 2
    first, second = authority.issued[-2:]
    assert authority.api_calls == [first, first, second]


async def test_oidc_discovers_the_token_endpoint(authority: Authority, document: Doc) -> None:
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {
                            "uri": authority.base + "/api/me",
                            "authentication": {"oidc": oauth2(authority)},
                        },
                    },
                }
            }
        ],
        use={"secrets": ["CLIENT_SECRET"]},
    )
    async with InProcessHost(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        output = await run_workflow(wf, host)
    assert [r["path"] for r in authority.token_requests] == ["/oidc/connect/token"]
    assert output["token"] == authority.issued[-1]


async def test_openapi_calls_use_the_token_too(authority: Authority, document: Doc) -> None:
    wf = document(
        [
            {
                "who": {
                    "call": "openapi",
                    "with": {
                        "document": {"endpoint": authority.base + "/openapi.json"},
                        "operationId": "whoami",
                        "authentication": {"use": "idp"},
                    },
                    "output": {"as": "${ $authorization.scheme }"},
                }
            }
        ],
        use={"secrets": ["CLIENT_SECRET"], "authentications": {"idp": {"oauth2": oauth2(authority)}}},
    )
    async with InProcessHost(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        assert await run_workflow(wf, host) == "Bearer"
    assert authority.api_calls == [authority.issued[-1]]


async def test_refused_client_credentials_are_an_authentication_error(
    authority: Authority, document: Doc
) -> None:
    wrong = "not-the-" + CLIENT_SECRET
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {"uri": authority.base + "/api/x", "authentication": {"use": "idp"}},
                    },
                }
            }
        ],
        use={"secrets": ["CLIENT_SECRET"], "authentications": {"idp": {"oauth2": oauth2(authority)}}},
    )
    async with InProcessHost(secrets={"CLIENT_SECRET": wrong}) as host:
        with pytest.raises(WorkflowError) as caught:
            await run_workflow(wf, host)
    problem = caught.value.problem
    assert problem["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"
    assert problem["status"] == 401
    assert problem["instance"] == "/do/0/fetch"
    assert "could not obtain an access token" in problem["detail"]
    assert "invalid_client: bad client credentials" in problem["detail"]
    assert wrong not in json.dumps(problem)
    assert authority.api_calls == []


async def test_an_unreachable_token_endpoint_is_an_authentication_error(document: Doc) -> None:
    policy = {
        "authority": "http://127.0.0.1:9",
        "grant": "client_credentials",
        "client": {"id": "x", "secret": "y"},
    }
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {"uri": "http://127.0.0.1:9/api", "authentication": {"oauth2": policy}},
                    },
                }
            }
        ]
    )
    async with InProcessHost() as host:
        with pytest.raises(WorkflowError) as caught:
            await run_workflow(wf, host)
    assert caught.value.problem["status"] == 401
    assert "http://127.0.0.1:9/oauth2/token" in caught.value.problem["detail"]


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        (
            {"oauth2": {"authority": "http://a", "grant": "password", "username": "u", "password": "p"}},
            "password",
        ),
        ({"oidc": {"authority": "http://a", "grant": "refresh_token"}}, "refresh_token"),
        ({"digest": {"username": "u", "password": "p"}}, "digest"),
        (
            {
                "oauth2": {
                    "authority": "http://a",
                    "grant": "client_credentials",
                    "client": {"id": "c", "authentication": "private_key_jwt"},
                }
            },
            "private_key_jwt",
        ),
    ],
)
async def test_unsupported_schemes_and_grants_are_configuration_errors(
    document: Doc, auth: dict[str, Any], says: str
) -> None:
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {"uri": "http://127.0.0.1:9/", "authentication": auth},
                    },
                }
            }
        ]
    )
    async with InProcessHost() as host:
        with pytest.raises(WorkflowError) as caught:
            await run_workflow(wf, host)
    assert caught.value.problem["type"].endswith("/configuration")
    assert says in caught.value.problem["detail"]


async def test_a_policy_stored_as_a_secret(authority: Authority, document: Doc) -> None:
    stored = json.dumps(
        {
            "authority": authority.base,
            "grant": "client_credentials",
            "client": {"id": CLIENT_ID, "secret": CLIENT_SECRET},
        }
    )
    wf = document(
        [
            {
                "fetch": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {
                            "uri": authority.base + "/api/s",
                            "authentication": {"oauth2": {"use": "IDP_POLICY"}},
                        },
                    },
                }
            }
        ],
        use={"secrets": ["IDP_POLICY"]},
    )
    async with InProcessHost(secrets={"IDP_POLICY": stored}) as host:
        output = await run_workflow(wf, host)
    assert output["token"] == authority.issued[-1]
    assert [r["path"] for r in authority.token_requests] == ["/oauth2/token"]


# ------------------------------------------------------------ Lite mode through a real store
@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"o" * 32)
    try:
        yield store
    finally:
        await store.close()


async def test_the_runner_never_records_the_client_secret_or_the_token(
    authority: Authority, backend: Backend, tmp_path: Path
) -> None:
    body = f"""\
  document: {{dsl: 1.0.0, namespace: demo, name: oauth, version: 1.0.0}}
  use:
    secrets: [CLIENT_SECRET]
    authentications:
      idp:
        oauth2:
          authority: {authority.base}/realms/demo
          grant: client_credentials
          client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_SECRET }}'}}
  do:
    - first:
        call: http
        with:
          method: post
          endpoint: {{uri: '{authority.base}/api/one', authentication: {{use: idp}}}}
    - second:
        call: http
        with:
          method: get
          endpoint: {{uri: '{authority.base}/api/two', authentication: {{use: idp}}}}
        output:
          as: '${{ {{path, seen: .token, auth: $authorization}} }}'
"""
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: oauth}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    await backend.set_secret(svc.SetSecretRequest(name="CLIENT_SECRET", value=CLIENT_SECRET))
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="oauth"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    redactor = Redactor()
    finished = await WorkflowRunner(redactor=redactor).execute(backend, created.metadata.id)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    token = authority.issued[-1]
    assert len(authority.token_requests) == 1
    assert authority.api_calls == [token, token]
    assert json_format.MessageToDict(finished.status.output) == {
        "path": "/api/two",
        "seen": "***",
        "auth": {"scheme": "Bearer", "parameter": "***"},
    }
    assert CLIENT_SECRET in redactor and token in redactor
    stream = backend.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id))
    events = []
    try:
        async for event in stream:
            events.append(event)
            if event.sequence >= finished.status.last_sequence:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [e.type for e in events].count("task.completed") == 2
    recorded = str(events) + str(finished)
    assert CLIENT_SECRET not in recorded and token not in recorded
    await backend.close()
    paths = list(tmp_path.glob("stigmer.db*"))
    assert paths, "found no files to check"
    for path in paths:
        data = path.read_bytes()
        assert CLIENT_SECRET.encode() not in data and token.encode() not in data, path


class MaskingHost(InProcessHost):
    """Records what the interpreter asks it to mask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.concealed: set[str] = set()

    def conceal(self, *values: str) -> None:
        self.concealed.update(values)


async def test_credentials_inside_policies_are_handed_over_for_masking(
    authority: Authority, document: Doc, stub: Any
) -> None:
    def get(uri: str, auth: dict[str, Any]) -> dict[str, Any]:
        return {"call": "http", "with": {"method": "get", "endpoint": {"uri": uri, "authentication": auth}}}

    stored = json.dumps(
        {
            "authority": authority.base,
            "grant": "client_credentials",
            "client": {"id": CLIENT_ID, "secret": CLIENT_SECRET},
        }
    )
    bearer_policy = json.dumps({"token": "stored-bearer-7f3a"})
    wf = document(
        [
            {"oauth": get(authority.base + "/api/a", {"oauth2": {"use": "IDP_POLICY"}})},
            {"bearer": get(stub.base + "/echo", {"bearer": {"use": "BEARER_POLICY"}})},
            {"basic": get(stub.base + "/echo", {"basic": {"username": "ada", "password": "pw-1"}})},
        ],
        use={"secrets": ["IDP_POLICY", "BEARER_POLICY"]},
    )
    host = MaskingHost(secrets={"IDP_POLICY": stored, "BEARER_POLICY": bearer_policy})
    async with host:
        output = await run_workflow(wf, host)
    token = authority.issued[-1]
    encoded = base64.b64encode(b"ada:pw-1").decode()
    assert output["headers"]["authorization"] == f"Basic {encoded}"
    assert [r["headers"]["authorization"] for r in stub.requests] == [
        "Bearer stored-bearer-7f3a",
        f"Basic {encoded}",
    ]
    assert {CLIENT_SECRET, token, "stored-bearer-7f3a", encoded} <= host.concealed
    assert authority.api_calls == [token]
