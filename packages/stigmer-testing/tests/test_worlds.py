"""The HTTP world, the OAuth2 authority, ports and the MCP server."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request

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
