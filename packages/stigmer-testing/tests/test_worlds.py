"""The HTTP world, the OAuth2 authority, ports and the MCP server."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from stigmer.testing import (
    CLIENT_ID,
    CLIENT_SECRET,
    HttpWorld,
    OAuth2Authority,
    Request,
    Response,
    free_port,
    json_response,
    mcp_http_server,
    wait_for_port,
)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read()


def test_a_world_records_requests_and_answers_with_its_handler() -> None:
    def handler(request: Request) -> Response:
        if request.path == "/stream":
            return Response(content_type="text/plain", stream=iter([b"a", b"b"]))
        return json_response({"path": request.path, "query": request.params})

    with HttpWorld(handler) as world:
        assert _get(world.url + "/x?n=1", {"Authorization": "Bearer t"}) == (
            200,
            json.dumps({"path": "/x", "query": {"n": ["1"]}}).encode(),
        )
        assert _get(world.url + "/stream") == (200, b"ab")
        assert _get(world.url + "/x")[0] == 200
    assert world.count("/x") == 2 and world.count("/stream") == 1
    assert world.auth == ["Bearer t", "", ""]
    assert world.received[0].target == "/x?n=1"


def test_a_plain_world_answers_404() -> None:
    with HttpWorld() as world:
        status, _ = _get(world.url + "/nothing")
    assert status == 404


def test_the_authority_issues_tokens_to_its_client_only() -> None:
    with OAuth2Authority() as idp:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(urllib.request.Request(idp.url + "/t/token", data=data)) as answer:
            token = json.loads(answer.read())["access_token"]
        assert _get(idp.url + "/api/me", {"Authorization": f"Bearer {token}"})[0] == 200
        assert _get(idp.url + "/api/me", {"Authorization": "Bearer forged"})[0] == 401
        bad = urllib.parse.urlencode({**form, "client_secret": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(idp.url + "/t/token", data=bad))
        assert refused.value.code == 401
        refused.value.close()
    assert idp.issued == [token] and idp.api_calls == [token]
    assert [r["sent"] for r in idp.token_requests] == ["post", "post"]


def test_free_port_is_free_and_wait_for_port_times_out() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it
    with pytest.raises(TimeoutError, match=str(port)):
        wait_for_port(port, timeout=0.3)


def test_the_mcp_server_serves_streamable_http() -> None:
    with mcp_http_server() as url:
        assert url.endswith("/mcp")
        port = int(urllib.parse.urlsplit(url).port or 0)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def _token_request(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {})) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def test_the_authority_verifies_jwt_client_assertions_strictly() -> None:
    """RFC 7523: signature by the client's secret (HS256) or trusted key, iss = sub = client,
    aud = the token endpoint, exp not passed nor far ahead, jti used once; one method only."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with OAuth2Authority() as idp:
        idp.trust_key(key.public_key())
        url = idp.url + "/t/token"
        now = int(time.time())

        def claims(**change: Any) -> dict[str, Any]:
            base = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": url, "exp": now + 60, "jti": uuid.uuid4().hex}
            return {k: v for k, v in {**base, **change}.items() if v is not None}

        def attempt(assertion: str, **extra: str) -> tuple[int, Any]:
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
                **extra,
            }
            return _token_request(url, form)

        good = jwt.encode(claims(), key, algorithm="RS256")
        assert attempt(good)[0] == 200
        assert attempt(good)[1]["error_description"] == "client assertion: jti was used before (replay)"
        hs = jwt.encode(claims(), CLIENT_SECRET.encode() * 2, algorithm="HS256")  # not the secret
        refused = {
            "Signature verification failed": attempt(hs),
            "Audience doesn't match": attempt(jwt.encode(claims(aud=idp.url), key, algorithm="RS256")),
            "Signature has expired": attempt(jwt.encode(claims(exp=now - 5), key, algorithm="RS256")),
            "exp is too far ahead": attempt(jwt.encode(claims(exp=now + 3600), key, algorithm="RS256")),
            'Token is missing the "jti" claim': attempt(jwt.encode(claims(jti=None), key, algorithm="RS256")),
            "iss and sub must be the client id": attempt(
                jwt.encode(claims(sub="other"), key, algorithm="RS256")
            ),
            "more than one client authentication": attempt(
                jwt.encode(claims(), key, algorithm="RS256"), client_secret=CLIENT_SECRET
            ),
        }
        for expected, (status, answer) in refused.items():
            assert status in (400, 401) and expected in answer["error_description"], (expected, answer)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert attempt(jwt.encode(claims(), other, algorithm="RS256"))[0] == 401
    assert [r["sent"] for r in idp.token_requests][:2] == ["private_key_jwt", "private_key_jwt"]
    assert len(idp.issued) == 1


def test_the_authority_grants_password_refresh_and_token_exchange() -> None:
    with OAuth2Authority() as idp:
        url = idp.url + "/token"
        client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        idp.users["ada"] = "pw"
        idp.rotate_refresh_tokens = True
        status, answer = _token_request(
            url, {"grant_type": "password", "username": "ada", "password": "pw", **client}
        )
        assert status == 200 and answer["refresh_token"].startswith("rt-")
        assert (
            _token_request(url, {"grant_type": "password", "username": "ada", "password": "no", **client})[0]
            == 400
        )
        refresh = {"grant_type": "refresh_token", "refresh_token": answer["refresh_token"], **client}
        status, renewed = _token_request(url, refresh)
        assert status == 200 and renewed["refresh_token"] != answer["refresh_token"]
        assert _token_request(url, refresh)[1]["error"] == "invalid_grant"  # rotated: spent
        exchange = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": renewed["access_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            **client,
        }
        status, exchanged = _token_request(url, exchange)
        assert status == 200 and exchanged["issued_token_type"].endswith(":access_token")
        wrong_type = {**exchange, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
        assert _token_request(url, wrong_type)[0] == 400
        no_actor_type = {**exchange, "actor_token": renewed["access_token"]}
        assert "actor_token_type is required" in _token_request(url, no_actor_type)[1]["error_description"]
        assert idp.grants[exchanged["access_token"]]["sub"] == renewed["access_token"]
