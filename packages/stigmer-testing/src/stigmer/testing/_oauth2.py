"""``OAuth2Authority``: an OAuth2 / OIDC authority and the API it protects, on 127.0.0.1.

Token endpoints (any path ending ``/token``; client credentials sent in the form, as JSON, or as
HTTP Basic), OIDC discovery (``…/.well-known/openid-configuration``), an OpenAPI document
(``/openapi.json``) and a protected API (every other path: a bearer token it issued, else 401).
It records the token requests, the tokens it issued and the API calls made with them.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, unquote

from ._http import HttpWorld, Request, Response, json_response

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "OAuth2Authority"]

CLIENT_ID = "workflow-runtime"
CLIENT_SECRET = "s3cr3t-Cl1ent-9b8a7c"


class OAuth2Authority(HttpWorld):
    """Issues tokens to ``client_id`` / ``client_secret`` (client credentials grant only)."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in: int | None = 3600
        self.token_requests: list[dict[str, Any]] = []
        self.api_calls: list[str] = []
        self.issued: list[str] = []

    @property
    def base(self) -> str:
        return self.url

    def reset(self) -> None:
        """Forget token requests and API calls (issued tokens stay valid); tokens last an hour."""
        self.token_requests.clear()
        self.api_calls.clear()
        self.expires_in = 3600

    @staticmethod
    def client_of(headers: dict[str, str], form: dict[str, str]) -> tuple[str, str, str]:
        """(client id, secret, how they were sent) from a token request."""
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote(user), unquote(password), "basic"
        return form.get("client_id", ""), form.get("client_secret", ""), "post"

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/token"):
            return self._token(request)
        path = request.path
        if path.endswith("/.well-known/openid-configuration"):
            issuer = self.base + path.removesuffix("/.well-known/openid-configuration")
            return json_response({"issuer": issuer, "token_endpoint": self.base + "/oidc/connect/token"})
        if path == "/openapi.json":
            return json_response(
                {
                    "openapi": "3.0.3",
                    "info": {"title": "t", "version": "1"},
                    "paths": {"/api/whoami": {"get": {"operationId": "whoami"}}},
                }
            )
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.issued:
            return json_response({"message": "no valid bearer token"}, 401)
        self.api_calls.append(token)
        return json_response({"path": path, "token": token})

    def _token(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(request.body).items()}
        else:
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        client, secret, sent = self.client_of(request.headers, form)
        self.token_requests.append({"path": request.target, "form": form, "sent": sent})
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if client != self.client_id or secret != self.client_secret:
            return json_response(
                {"error": "invalid_client", "error_description": "bad client credentials"}, 401
            )
        token = f"at-{len(self.issued) + 1}-{form.get('scope', '')}".replace(" ", "+")
        self.issued.append(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return json_response(answer)
