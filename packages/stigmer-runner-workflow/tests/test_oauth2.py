"""OAuth2 / OIDC client credentials against a real local server acting as authority and API."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import Backend, Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import InProcessHost, WorkflowError, WorkflowRunner, run_workflow
from stigmer.testing import CLIENT_ID, CLIENT_SECRET, OAuth2Authority

Doc = Callable[..., dict[str, Any]]
Authority = OAuth2Authority


@pytest.fixture(scope="module")
def _authority_server() -> Iterator[OAuth2Authority]:
    with OAuth2Authority() as authority:
        yield authority


@pytest.fixture
def authority(_authority_server: OAuth2Authority) -> OAuth2Authority:
    _authority_server.reset()
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
            {"oauth2": {"authority": "http://a", "grant": "client_credentials", "client": {"secret": "s"}}},
            "needs client.id",
        ),
        (
            {
                "oauth2": {
                    "authority": "http://a",
                    "grant": "client_credentials",
                    "client": {"id": "c", "authentication": "client_secret_jwt"},
                }
            },
            "client_secret_jwt needs client.secret",
        ),
        (
            {
                "oauth2": {
                    "authority": "http://a",
                    "grant": "client_credentials",
                    "client": {"id": "c", "secret": "", "authentication": "client_secret_jwt"},
                }
            },
            "client_secret_jwt needs client.secret",
        ),
    ],
)
async def test_incomplete_policies_are_configuration_errors(
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
