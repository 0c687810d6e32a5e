"""OAuth2 / OIDC grants beyond client_credentials and JWT client authentication (RFC 7523),
against a real local authority that verifies what it receives (signature, aud, iss, sub, exp,
jti), written from the DSL reference's OAuth2 section and RFCs 6749, 7523 and 8693."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.core import Backend, Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import (
    InProcessHost,
    WorkflowError,
    WorkflowRunner,
    WorkflowValidationError,
    load_workflow,
    run_workflow,
)
from stigmer.runner.workflow._task_kinds import unsupported_problems
from stigmer.runner.workflow._tasks.oauth import TokenCache, oauth2_token
from stigmer.testing import CLIENT_ID, CLIENT_SECRET, OAuth2Authority

Doc = Callable[..., dict[str, Any]]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE = "urn:ietf:params:oauth:token-type:"
PASSWORD = "correct-horse-Battery-61"


@pytest.fixture(scope="module")
def _authority_server() -> Iterator[OAuth2Authority]:
    with OAuth2Authority() as authority:
        yield authority


@pytest.fixture
def authority(_authority_server: OAuth2Authority) -> OAuth2Authority:
    _authority_server.reset()
    return _authority_server


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fetch(authority: OAuth2Authority, auth: dict[str, Any], path: str = "/api/x") -> dict[str, Any]:
    return {
        "fetch": {
            "call": "http",
            "with": {"method": "get", "endpoint": {"uri": authority.base + path, "authentication": auth}},
        }
    }


def policy(authority: OAuth2Authority, grant: str, **extra: Any) -> dict[str, Any]:
    return {
        "authority": authority.base + "/realms/demo",
        "grant": grant,
        "client": {"id": CLIENT_ID, "secret": "${ $secrets.CLIENT_SECRET }"},
        **extra,
    }


async def run(wf: dict[str, Any], **secrets: str) -> Any:
    async with InProcessHost(secrets=secrets) as host:
        return await run_workflow(wf, host)


# ------------------------------------------------------------------------------- grants
async def test_password_grant_sends_the_resource_owner_credentials(
    authority: OAuth2Authority, document: Doc
) -> None:
    authority.users["ada"] = PASSWORD
    auth = {"oauth2": policy(authority, "password", username="ada", password="${ $secrets.ADA_PASSWORD }")}
    wf = document([fetch(authority, auth)], use={"secrets": ["CLIENT_SECRET", "ADA_PASSWORD"]})
    output = await run(wf, CLIENT_SECRET=CLIENT_SECRET, ADA_PASSWORD=PASSWORD)
    [request] = authority.token_requests
    assert request["form"] == {
        "grant_type": "password",
        "username": "ada",
        "password": PASSWORD,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert output["token"] == authority.issued[-1]
    assert authority.grants[output["token"]]["sub"] == "ada"


async def test_a_refused_password_is_an_authentication_error_that_never_shows_it(
    authority: OAuth2Authority, document: Doc
) -> None:
    authority.users["ada"] = "another-password"
    auth = {"oauth2": policy(authority, "password", username="ada", password="${ $secrets.ADA_PASSWORD }")}
    wf = document([fetch(authority, auth)], use={"secrets": ["CLIENT_SECRET", "ADA_PASSWORD"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_SECRET=CLIENT_SECRET, ADA_PASSWORD=PASSWORD)
    problem = caught.value.problem
    assert problem["type"].endswith("/authentication") and problem["status"] == 401
    assert "invalid_grant: bad username or password" in problem["detail"]
    assert PASSWORD not in json.dumps(problem) and CLIENT_SECRET not in json.dumps(problem)


async def test_a_stored_policy_missing_what_its_grant_needs_is_a_configuration_error(
    authority: OAuth2Authority, document: Doc
) -> None:
    """Inline policies are refused at validation; one held in a secret is read at run time."""
    stored = json.dumps(
        {
            "authority": authority.base,
            "grant": "password",
            "username": "ada",
            "client": {"id": CLIENT_ID, "secret": CLIENT_SECRET},
        }
    )
    wf = document([fetch(authority, {"oauth2": {"use": "IDP"}})], use={"secrets": ["IDP"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, IDP=stored)
    assert caught.value.problem["type"].endswith("/configuration")
    assert "oauth2 grant password needs username and password" in caught.value.problem["detail"]
    assert authority.token_requests == []


async def test_refresh_token_grant_uses_the_given_refresh_token_then_the_rotated_one(
    authority: OAuth2Authority, document: Doc
) -> None:
    """The refresh token is the policy's subject token; an authority that rotates refresh
    tokens answers a new one, which the next refresh must use (the old one is spent)."""
    authority.refresh_tokens.add("rt-given-1")
    authority.rotate_refresh_tokens = True
    authority.expires_in = 120  # reused for 108 s
    auth = {
        "oauth2": policy(
            authority,
            "refresh_token",
            subject={
                "token": "${ $secrets.REFRESH }",
                "type": "urn:ietf:params:oauth:token-type:refresh_token",
            },
        )
    }
    wf = document(
        [
            fetch(authority, auth),
            {"later": {"wait": {"seconds": 200}}},
            {"again": fetch(authority, auth)["fetch"]},
        ],
        use={"secrets": ["CLIENT_SECRET", "REFRESH"]},
    )
    async with _Clock(secrets={"CLIENT_SECRET": CLIENT_SECRET, "REFRESH": "rt-given-1"}) as host:
        await run_workflow(wf, host)
    first, second = authority.token_requests
    assert first["form"]["grant_type"] == "refresh_token"
    assert first["form"]["refresh_token"] == "rt-given-1"
    assert second["form"]["refresh_token"] not in ("rt-given-1", "")
    assert "refused" not in second, second.get("refused")
    assert len(authority.api_calls) == 2


async def test_token_exchange_sends_subject_and_actor_tokens(
    authority: OAuth2Authority, document: Doc
) -> None:
    """RFC 8693: subject_token(_type), actor_token(_type); short type names mean the RFC's URIs."""
    authority.exchangeable["user-id-token-77"] = TOKEN_TYPE + "id_token"
    authority.exchangeable["service-jwt-42"] = TOKEN_TYPE + "jwt"
    auth = {
        "oidc": policy(
            authority,
            TOKEN_EXCHANGE,
            subject={"token": "${ $secrets.USER_TOKEN }", "type": TOKEN_TYPE + "id_token"},
            actor={"token": "${ $secrets.SERVICE_TOKEN }", "type": "jwt"},
            audiences=["orders"],
        )
    }
    wf = document([fetch(authority, auth)], use={"secrets": ["CLIENT_SECRET", "USER_TOKEN", "SERVICE_TOKEN"]})
    output = await run(
        wf, CLIENT_SECRET=CLIENT_SECRET, USER_TOKEN="user-id-token-77", SERVICE_TOKEN="service-jwt-42"
    )
    [request] = authority.token_requests
    assert request["path"] == "/oidc/connect/token"  # discovered
    assert request["form"] == {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": "user-id-token-77",
        "subject_token_type": TOKEN_TYPE + "id_token",
        "actor_token": "service-jwt-42",
        "actor_token_type": TOKEN_TYPE + "jwt",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": "orders",
    }
    grant = authority.grants[output["token"]]
    assert (grant["sub"], grant["act"]) == ("user-id-token-77", "service-jwt-42")


async def test_token_exchange_of_a_token_this_run_obtained(authority: OAuth2Authority, document: Doc) -> None:
    """The subject can be the access token another policy got, read from $authorization."""
    first = fetch(authority, {"oauth2": policy(authority, "client_credentials")})
    first["fetch"]["output"] = {"as": "${ {subject: $authorization.parameter} }"}
    exchange = policy(authority, TOKEN_EXCHANGE, subject={"token": "${ .subject }", "type": "access_token"})
    second = fetch(authority, {"oauth2": exchange}, "/api/exchanged")
    wf = document([first, {"exchanged": second["fetch"]}], use={"secrets": ["CLIENT_SECRET"]})
    output = await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    first_token, exchanged = authority.issued[-2:]
    form = authority.token_requests[1]["form"]
    assert (form["subject_token"], form["subject_token_type"]) == (first_token, TOKEN_TYPE + "access_token")
    assert output == {"path": "/api/exchanged", "token": exchanged}
    assert exchanged != first_token


@pytest.mark.parametrize("encoding", ["application/x-www-form-urlencoded", "application/json"])
async def test_each_audience_is_its_own_parameter(
    authority: OAuth2Authority, document: Doc, encoding: str
) -> None:
    """RFC 8693 section 2.1: several audiences are several audience parameters (a JSON list)."""
    authority.exchangeable["user-token-9"] = TOKEN_TYPE + "access_token"
    auth = policy(
        authority,
        TOKEN_EXCHANGE,
        subject={"token": "user-token-9", "type": "access_token"},
        audiences=["orders", "https://billing.example/api"],
        request={"encoding": encoding},
    )
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["CLIENT_SECRET"]})
    await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    [request] = authority.token_requests
    assert request["audiences"] == ["orders", "https://billing.example/api"]
    assert "refused" not in request


async def test_token_exchange_with_an_unknown_short_type_is_a_configuration_error(
    authority: OAuth2Authority, document: Doc
) -> None:
    auth = {"oauth2": policy(authority, TOKEN_EXCHANGE, subject={"token": "t", "type": "passport"})}
    wf = document([fetch(authority, auth)], use={"secrets": ["CLIENT_SECRET"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    assert "subject type 'passport' is not a token type" in caught.value.problem["detail"]


# ------------------------------------------------------------------ client authentication
async def test_client_secret_basic(authority: OAuth2Authority, document: Doc) -> None:
    auth = policy(authority, "client_credentials")
    auth["client"]["authentication"] = "client_secret_basic"
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["CLIENT_SECRET"]})
    await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    [request] = authority.token_requests
    assert request["sent"] == "basic"
    assert request["form"] == {"grant_type": "client_credentials"}  # no credentials in the body


async def test_client_authentication_none_sends_only_the_client_id(
    authority: OAuth2Authority, document: Doc
) -> None:
    authority.users["ada"] = PASSWORD
    authority.public_clients.add("cli-app")
    auth = {
        "authority": authority.base,
        "grant": "password",
        "client": {"id": "cli-app", "authentication": "none"},
        "username": "ada",
        "password": "${ $secrets.P }",
    }
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["P"]})
    await run(wf, P=PASSWORD)
    [request] = authority.token_requests
    assert request["sent"] == "none"
    assert request["form"]["client_id"] == "cli-app" and "client_secret" not in request["form"]


async def test_client_secret_jwt_signs_a_fresh_assertion_with_the_client_secret(
    authority: OAuth2Authority, document: Doc
) -> None:
    """RFC 7523 section 3: iss = sub = client id, aud = the token endpoint, exp, a unique jti;
    HS256 with the client secret. The authority verifies all of it; a refetch after expiry
    carries a new jti (the authority refuses a replayed one)."""
    authority.expires_in = 120
    auth = policy(authority, "client_credentials", request={"encoding": "application/json"})
    auth["client"]["authentication"] = "client_secret_jwt"
    wf = document(
        [
            fetch(authority, {"oauth2": auth}),
            {"later": {"wait": {"seconds": 200}}},
            {"again": fetch(authority, {"oauth2": auth})["fetch"]},
        ],
        use={"secrets": ["CLIENT_SECRET"]},
    )
    before = int(time.time())
    async with _Clock(secrets={"CLIENT_SECRET": CLIENT_SECRET}) as host:
        await run_workflow(wf, host)
    first, second = authority.token_requests
    for request in (first, second):
        assert "refused" not in request, request.get("refused")
        assert request["sent"] == "client_secret_jwt"
        assert request["form"]["client_assertion_type"] == ASSERTION_TYPE
        assert "client_secret" not in request["form"]
        claims = request["assertion"]
        assert claims["alg"] == "HS256"
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert claims["aud"] == authority.base + "/realms/demo/oauth2/token"
        assert before <= claims["exp"] <= int(time.time()) + 300
    assert first["assertion"]["jti"] != second["assertion"]["jti"]
    assert CLIENT_SECRET not in json.dumps(first["form"])


async def test_client_secret_jwt_signed_with_the_wrong_secret_is_refused(
    authority: OAuth2Authority, document: Doc
) -> None:
    wrong = "not-" + CLIENT_SECRET
    auth = policy(authority, "client_credentials")
    auth["client"]["authentication"] = "client_secret_jwt"
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["CLIENT_SECRET"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_SECRET=wrong)
    detail = caught.value.problem["detail"]
    assert "invalid_client: client assertion: Signature verification failed" in detail
    [request] = authority.token_requests
    assert request["sent"] == "client_secret_jwt"
    assert wrong not in json.dumps(caught.value.problem)
    assert request["form"]["client_assertion"] not in json.dumps(caught.value.problem)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_private_key_jwt_signs_with_the_pem_private_key_from_secrets(
    authority: OAuth2Authority, document: Doc, rsa_key: rsa.RSAPrivateKey, kind: str
) -> None:
    key = rsa_key if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    authority.trust_key(key.public_key())
    auth = {
        "authority": authority.base,
        "grant": "client_credentials",
        "client": {
            "id": CLIENT_ID,
            "secret": "${ $secrets.CLIENT_KEY }",
            "authentication": "private_key_jwt",
        },
        "scopes": ["orders:read"],
    }
    wf = document([fetch(authority, {"oidc": auth})], use={"secrets": ["CLIENT_KEY"]})
    output = await run(wf, CLIENT_KEY=pem(key))
    [request] = authority.token_requests
    assert "refused" not in request, request.get("refused")
    assert request["sent"] == "private_key_jwt"
    assert request["assertion"]["alg"] == ("RS256" if kind == "rsa" else "ES256")
    assert request["assertion"]["aud"] == authority.base + "/oidc/connect/token"
    assert request["form"]["scope"] == "orders:read"
    assert output["token"] == authority.issued[-1]


async def test_private_key_jwt_signed_by_an_untrusted_key_is_refused(
    authority: OAuth2Authority, document: Doc, rsa_key: rsa.RSAPrivateKey
) -> None:
    authority.trust_key(rsa_key.public_key())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    auth = {
        "authority": authority.base,
        "grant": "client_credentials",
        "client": {
            "id": CLIENT_ID,
            "secret": "${ $secrets.CLIENT_KEY }",
            "authentication": "private_key_jwt",
        },
    }
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["CLIENT_KEY"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_KEY=pem(other))
    assert "invalid_client: client assertion: Signature verification failed" in caught.value.problem["detail"]
    assert "PRIVATE KEY" not in json.dumps(caught.value.problem)


async def test_private_key_jwt_with_a_given_assertion_sends_it_as_is(
    authority: OAuth2Authority, document: Doc, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The DSL's own form: client.assertion holds a JWT signed elsewhere."""
    authority.trust_key(rsa_key.public_key())
    token_url = authority.base + "/oauth2/token"
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "jti": uuid.uuid4().hex, "exp": now + 60}
    assertion = jwt.encode(claims, rsa_key, algorithm="RS256")
    auth = {
        "authority": authority.base,
        "grant": "client_credentials",
        "client": {"assertion": "${ $secrets.ASSERTION }", "authentication": "private_key_jwt"},
    }
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["ASSERTION"]})
    await run(wf, ASSERTION=assertion)
    [request] = authority.token_requests
    assert request["form"]["client_assertion"] == assertion
    assert "client_id" not in request["form"]
    assert request["sent"] == "private_key_jwt" and "refused" not in request


async def test_private_key_jwt_with_something_else_than_a_key_is_a_configuration_error(
    authority: OAuth2Authority, document: Doc
) -> None:
    auth = {
        "authority": authority.base,
        "grant": "client_credentials",
        "client": {
            "id": CLIENT_ID,
            "secret": "${ $secrets.CLIENT_KEY }",
            "authentication": "private_key_jwt",
        },
    }
    wf = document([fetch(authority, {"oauth2": auth})], use={"secrets": ["CLIENT_KEY"]})
    with pytest.raises(WorkflowError) as caught:
        await run(
            wf, CLIENT_KEY="-----BEGIN PRIVATE KEY-----\nnot-base64-at-all!\n-----END PRIVATE KEY-----\n"
        )
    problem = caught.value.problem
    assert problem["type"].endswith("/configuration")
    assert "client.secret is not an unencrypted PEM private key" in problem["detail"]
    assert "not-base64-at-all" not in json.dumps(problem)
    assert authority.token_requests == []


# ------------------------------------------------------------------------------ issuers
async def test_issuers_accept_a_token_from_a_listed_issuer_and_refuse_others(
    authority: OAuth2Authority, document: Doc
) -> None:
    authority.issuer = "https://idp.example/realms/demo"
    good = policy(authority, "client_credentials", issuers=["https://idp.example/realms/demo"])
    bad = policy(authority, "client_credentials", issuers=["https://elsewhere.example"])
    wf = document([fetch(authority, {"oauth2": good})], use={"secrets": ["CLIENT_SECRET"]})
    assert (await run(wf, CLIENT_SECRET=CLIENT_SECRET))["token"] == authority.issued[-1]
    wf = document([fetch(authority, {"oauth2": bad})], use={"secrets": ["CLIENT_SECRET"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    assert (
        "the token's issuer 'https://idp.example/realms/demo' is not in issuers"
        in caught.value.problem["detail"]
    )
    assert len(authority.api_calls) == 1


async def test_oidc_issuers_are_checked_against_the_discovered_issuer(
    authority: OAuth2Authority, document: Doc
) -> None:
    auth = policy(authority, "client_credentials", issuers=["https://elsewhere.example"])
    wf = document([fetch(authority, {"oidc": auth})], use={"secrets": ["CLIENT_SECRET"]})
    with pytest.raises(WorkflowError) as caught:
        await run(wf, CLIENT_SECRET=CLIENT_SECRET)
    assert (
        f"the provider's issuer '{authority.base}/realms/demo' is not in issuers"
        in caught.value.problem["detail"]
    )
    assert authority.token_requests == []


# -------------------------------------------------------------------- refused up front
def _fetching(document: Doc, auth: dict[str, Any]) -> dict[str, Any]:
    call = {"method": "get", "endpoint": {"uri": "http://127.0.0.1:9/", "authentication": auth}}
    return document([{"fetch": {"call": "http", "with": call}}])


@pytest.mark.parametrize(
    ("auth", "where", "says"),
    [
        (
            {"oauth2": {"authority": "http://a", "grant": "authorization_code", "client": {"id": "c"}}},
            "/do/0/fetch/with/endpoint/authentication/oauth2/grant",
            "grant 'authorization_code' is not supported: it needs a person to sign in at a browser",
        ),
        (
            {"digest": {"username": "u", "password": "p"}},
            "/do/0/fetch/with/endpoint/authentication/digest",
            "digest authentication is not supported: the runner does not answer HTTP Digest challenges",
        ),
    ],
)
async def test_what_the_dsl_allows_but_the_runner_cannot_do_is_refused_with_the_reason(
    document: Doc, auth: dict[str, Any], where: str, says: str
) -> None:
    """A valid document (load_workflow accepts it), refused before running by the task-kind
    registry's unsupported_problems (validation at apply) and, if run, with the same message."""
    workflow = load_workflow(_fetching(document, auth))
    [(path, message)] = unsupported_problems(workflow.definition)
    assert path == where and says in message
    async with InProcessHost() as host:
        with pytest.raises(WorkflowError) as caught:
            await run_workflow(workflow, host)
    assert caught.value.problem["type"].endswith("/configuration")
    assert says in caught.value.problem["detail"]


@pytest.mark.parametrize(
    ("auth", "where", "says"),
    [
        (
            {
                "oauth2": {
                    "authority": "http://a",
                    "grant": "password",
                    "username": "u",
                    "client": {"id": "c"},
                }
            },
            "/do/0/fetch/with/endpoint/authentication/oauth2",
            "grant password needs username and password",
        ),
        (
            {"oidc": {"authority": "http://a", "grant": "refresh_token", "client": {"id": "c"}}},
            "/do/0/fetch/with/endpoint/authentication/oidc",
            "grant refresh_token needs the refresh token as subject.token",
        ),
        (
            {"oauth2": {"authority": "http://a", "grant": TOKEN_EXCHANGE, "client": {"id": "c"}}},
            "/do/0/fetch/with/endpoint/authentication/oauth2",
            f"grant {TOKEN_EXCHANGE} needs subject",
        ),
        (
            {
                "oidc": {
                    "authority": "http://a",
                    "grant": "client_credentials",
                    "client": {"id": "c", "authentication": "private_key_jwt"},
                }
            },
            "/do/0/fetch/with/endpoint/authentication/oidc/client",
            "private_key_jwt needs client.assertion (a signed JWT) or the client's PEM private key",
        ),
    ],
)
def test_incomplete_inline_policies_are_invalid(
    document: Doc, auth: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(_fetching(document, auth))
    assert any(path == where and says in message for path, message in caught.value.problems), (
        caught.value.problems
    )


def test_named_policies_in_use_authentications_are_checked_too(document: Doc) -> None:
    data = {"authentication": {"digest": {"username": "u", "password": "p"}}}  # data, not a policy
    wf = document(
        [{"noop": {"set": data}}],
        use={
            "authentications": {
                "sso": {"oauth2": {"authority": "http://a", "grant": "authorization_code"}},
                "old": {"digest": {"username": "u", "password": "p"}},
                "half": {"oauth2": {"authority": "http://a", "grant": "password"}},
            }
        },
    )
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(wf)
    assert [path for path, _ in caught.value.problems] == ["/use/authentications/half/oauth2"]
    del wf["use"]["authentications"]["half"]
    assert [path for path, _ in unsupported_problems(load_workflow(wf).definition)] == [
        "/use/authentications/sso/oauth2/grant",
        "/use/authentications/old/digest",
    ]


class _Clock(InProcessHost):
    """Virtual clock: ``wait`` advances ``now`` without real waiting."""

    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def now(self) -> datetime.datetime:
        return self.moment

    async def sleep(self, seconds: float) -> None:
        self.moment += datetime.timedelta(seconds=seconds)


# ------------------------------------------------------- nothing recorded holds a credential
async def test_lite_runs_never_record_passwords_private_keys_assertions_or_tokens(
    authority: OAuth2Authority, backend: Backend, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """A password grant with a private_key_jwt client, then a token exchange of its token: the
    password, the PEM key, the signed assertion, the refresh token and the access tokens reach
    neither the events, nor the execution, nor the database files, even when echoed back."""
    authority.users["ada"] = PASSWORD
    authority.trust_key(rsa_key.public_key())
    key = pem(rsa_key)
    body = f"""\
  document: {{dsl: 1.0.3, namespace: demo, name: grants, version: 1.0.0}}
  use:
    secrets: [CLIENT_KEY, ADA_PASSWORD]
    authentications:
      ada:
        oauth2:
          authority: {authority.base}
          grant: password
          username: ada
          password: '${{ $secrets.ADA_PASSWORD }}'
          client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_KEY }}', authentication: private_key_jwt}}
  do:
    - first:
        call: http
        with:
          method: get
          endpoint: {{uri: '{authority.base}/api/one', authentication: {{use: ada}}}}
        output:
          as: '${{ {{subject: .token, auth: $authorization}} }}'
    - exchanged:
        call: http
        with:
          method: get
          endpoint:
            uri: '{authority.base}/api/two'
            authentication:
              oauth2:
                authority: {authority.base}
                grant: {TOKEN_EXCHANGE}
                subject: {{token: '${{ .subject }}', type: access_token}}
                client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_KEY }}', authentication: private_key_jwt}}
        output:
          as: '${{ {{path, seen: .token, auth: $authorization}} }}'
"""
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: grants}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    await backend.set_secret(svc.SetSecretRequest(name="CLIENT_KEY", value=key))
    await backend.set_secret(svc.SetSecretRequest(name="ADA_PASSWORD", value=PASSWORD))
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="grants"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    finished = await WorkflowRunner(redactor=Redactor()).execute(backend, created.metadata.id)
    assert finished.status.phase == execution_pb2.PHASE_SUCCEEDED, finished.status.error
    first, second = authority.token_requests
    assert (first["grant"], first["sent"], "refused" in first) == ("password", "private_key_jwt", False)
    assert (second["grant"], second["sent"], "refused" in second) == (
        TOKEN_EXCHANGE,
        "private_key_jwt",
        False,
    )
    access, exchanged = authority.issued[-2:]
    assert second["form"]["subject_token"] == access
    assert authority.api_calls == [access, exchanged]
    assert json_format.MessageToDict(finished.status.output) == {
        "path": "/api/two",
        "seen": "***",
        "auth": {"scheme": "Bearer", "parameter": "***"},
    }
    stream = backend.watch_execution(svc.WatchExecutionRequest(execution_id=created.metadata.id))
    events = []
    try:
        async for event in stream:
            events.append(event)
            if event.sequence >= finished.status.last_sequence:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    credentials = [
        PASSWORD,
        key,
        *key.splitlines()[1:-1],  # each line of the key, too
        first["form"]["client_assertion"],
        second["form"]["client_assertion"],
        access,
        exchanged,
    ]
    recorded = str(events) + str(finished)
    for value in credentials:
        assert value not in recorded
    await backend.close()
    paths = list(tmp_path.glob("stigmer.db*"))
    assert paths, "found no files to check"
    for path in paths:
        data = path.read_bytes()
        for value in credentials:
            assert value.encode() not in data, path


# ------------------------------------------------------------------ any policy, a clear error
_json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_policy_fields = st.fixed_dictionaries(
    {},
    optional={
        "authority": st.just("http://127.0.0.1:9") | _json,
        "grant": st.sampled_from(
            ["client_credentials", "password", "refresh_token", TOKEN_EXCHANGE, "authorization_code"]
        )
        | _json,
        "client": st.fixed_dictionaries(
            {},
            optional={
                "id": st.just("c") | _json,
                "secret": st.just("s") | _json,
                "assertion": _json,
                "authentication": st.sampled_from(
                    [
                        "client_secret_post",
                        "client_secret_basic",
                        "client_secret_jwt",
                        "private_key_jwt",
                        "none",
                    ]
                )
                | _json,
            },
        )
        | _json,
        "request": st.fixed_dictionaries({}, optional={"encoding": st.just("application/json") | _json})
        | _json,
        "endpoints": st.fixed_dictionaries({}, optional={"token": st.just("/t") | _json}) | _json,
        "scopes": st.lists(st.text(max_size=5), max_size=2) | _json,
        "audiences": st.lists(st.text(max_size=5), max_size=2) | _json,
        "issuers": st.lists(st.text(max_size=5), max_size=2) | _json,
        "username": st.just("u") | _json,
        "password": st.just("p") | _json,
        "subject": st.fixed_dictionaries({"token": st.just("t") | _json, "type": st.just("jwt") | _json})
        | _json,
        "actor": st.fixed_dictionaries({"token": st.just("t") | _json, "type": _json}) | _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(settings_=_policy_fields, scheme=st.sampled_from(["oauth2", "oidc"]))
async def test_any_stored_policy_gives_a_clear_error_never_a_traceback(
    scheme: str, settings_: dict[str, Any]
) -> None:
    """A policy held in a secret skips the schema: whatever it holds, the token request ends in a
    configuration or authentication problem (nothing listens on 127.0.0.1:9)."""
    async with InProcessHost() as host:
        with pytest.raises(WorkflowError) as caught:
            await oauth2_token(host, TokenCache(), scheme, settings_, [])
    assert caught.value.problem["type"].rsplit("/", 1)[-1] in ("configuration", "authentication")
