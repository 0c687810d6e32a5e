"""OAuth2 / OpenID Connect client credentials: fetching, caching and presenting access tokens.

The token request goes through the host (``Host.http_request``) right before the call that
needs it; the client secret is resolved just in time by the policy's expressions and never
kept beyond the request. Tokens are cached per resolved authentication policy until shortly
before they expire (``expires_in``), measured on the host's clock.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from .._errors import ErrorKind, WorkflowError
from .._host import Host, HttpRequest, HttpResponse

__all__ = ["TokenCache", "oauth2_token", "stored_policy"]

DEFAULT_TOKEN_ENDPOINT: Final = "/oauth2/token"
OIDC_DISCOVERY: Final = "/.well-known/openid-configuration"
#: How long a token without ``expires_in`` is reused.
DEFAULT_LIFETIME: Final = 300.0
#: Refresh this long before ``expires_in`` runs out (at most a tenth of the lifetime).
EXPIRY_MARGIN: Final = 30.0
_CLIENT_AUTHS: Final = ("client_secret_basic", "client_secret_post", "none")
_ENCODINGS: Final = ("application/x-www-form-urlencoded", "application/json")


@dataclass
class _Token:
    value: str
    expires: datetime.datetime


@dataclass
class TokenCache:
    """Access tokens of one run, keyed by a digest of the resolved policy (never by its values)."""

    tokens: dict[str, _Token] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)  # OIDC authority -> token endpoint
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


def stored_policy(scheme: str, name: str, value: Any) -> Mapping[str, Any]:
    """The settings of an authentication policy stored as secret ``name`` (a JSON object)."""
    try:
        settings = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        settings = None
    if not isinstance(settings, Mapping):
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION,
            f"secret {name!r} must hold the {scheme} settings as a JSON object",
        )
    return settings


async def oauth2_token(
    host: Host, cache: TokenCache, scheme: str, policy: Mapping[str, Any], secrets: list[str]
) -> str:
    """An access token for the ``oauth2``/``oidc`` ``policy`` (already evaluated): cached or fetched.

    ``secrets`` collects the credential values sent, so callers can keep them out of errors.
    """
    grant = policy.get("grant")
    if grant != "client_credentials":
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION,
            f"{scheme} grant {grant!r} is not supported (only client_credentials is)",
        )
    authority = policy.get("authority")
    if not isinstance(authority, str) or not authority:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, f"{scheme} authentication needs an authority")
    client = policy.get("client") or {}
    if not isinstance(client, Mapping) or not isinstance(client.get("id"), str):
        raise WorkflowError.of(ErrorKind.CONFIGURATION, f"{scheme} authentication needs client.id")
    method = client.get("authentication") or "client_secret_post"  # the DSL schema's default
    if method not in _CLIENT_AUTHS:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION,
            f"{scheme} client authentication {method!r} is not supported (use {', '.join(_CLIENT_AUTHS)})",
        )
    secret = client.get("secret")
    if method != "none" and not isinstance(secret, str):
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"{scheme} client authentication {method} needs client.secret"
        )
    encoding = (policy.get("request") or {}).get("encoding") or _ENCODINGS[0]
    if encoding not in _ENCODINGS:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, f"{scheme} token request encoding {encoding!r}")
    if isinstance(secret, str) and secret:
        secrets.append(secret)

    key = hashlib.sha256(json.dumps([scheme, policy], sort_keys=True, default=str).encode()).hexdigest()
    async with cache.lock(key):
        cached = cache.tokens.get(key)
        if cached is not None and host.now() < cached.expires:
            return cached.value
        if scheme == "oidc":
            token_url = await _discover(host, cache, authority)
        else:
            token_url = _join(
                authority, str((policy.get("endpoints") or {}).get("token") or DEFAULT_TOKEN_ENDPOINT)
            )
        form: dict[str, str] = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if method == "client_secret_basic":
            pair = f"{quote(client['id'], safe='')}:{quote(str(secret), safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = client["id"]
            if method == "client_secret_post":
                form["client_secret"] = str(secret)
        scopes = policy.get("scopes") or []
        if scopes:
            form["scope"] = " ".join(str(s) for s in scopes)
        audiences = policy.get("audiences") or []
        if audiences:
            form["audience"] = " ".join(str(a) for a in audiences)
        if encoding == "application/json":
            headers["Content-Type"] = "application/json"
            body: Any = form
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form)
        fetched_at = host.now()
        response = await _send(host, HttpRequest("POST", token_url, headers=headers, body=body), token_url)
        token, lifetime = _parse_token(response, token_url)
        margin = min(EXPIRY_MARGIN, lifetime / 10)
        cache.tokens[key] = _Token(token, fetched_at + datetime.timedelta(seconds=lifetime - margin))
        return token


async def _discover(host: Host, cache: TokenCache, authority: str) -> str:
    """The token endpoint an OpenID provider advertises (cached per authority)."""
    if authority in cache.endpoints:
        return cache.endpoints[authority]
    url = _join(authority, OIDC_DISCOVERY)
    response = await _send(host, HttpRequest("GET", url, headers={"Accept": "application/json"}), url)
    document = _json(response)
    if not 200 <= response.status < 300 or not isinstance(document, Mapping):
        raise _failure(url, f"OpenID configuration answered HTTP {response.status}")
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise _failure(url, "the OpenID configuration has no token_endpoint")
    cache.endpoints[authority] = endpoint
    return endpoint


async def _send(host: Host, request: HttpRequest, url: str) -> HttpResponse:
    try:
        return await host.http_request(request)
    except WorkflowError as error:
        raise _failure(url, str(error.problem.get("detail") or error)) from None


def _parse_token(response: HttpResponse, url: str) -> tuple[str, float]:
    payload = _json(response)
    if not 200 <= response.status < 300:
        reason = f"HTTP {response.status}"
        if isinstance(payload, Mapping) and payload.get("error"):
            reason += f" {payload['error']}"
            if payload.get("error_description"):
                reason += f": {payload['error_description']}"
        raise _failure(url, f"the token request was refused ({reason})")
    if not isinstance(payload, Mapping) or not isinstance(payload.get("access_token"), str):
        raise _failure(url, "the token response has no access_token")
    token_type = str(payload.get("token_type") or "Bearer")
    if token_type.lower() != "bearer":
        raise _failure(url, f"token_type {token_type!r} is not supported (only Bearer is)")
    expires_in = payload.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return str(payload["access_token"]), max(lifetime, 0.0)


def _json(response: HttpResponse) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _join(authority: str, endpoint: str) -> str:
    """``endpoint`` as is when absolute, else appended to the authority's path."""
    if "://" in endpoint:
        return endpoint
    return authority.rstrip("/") + "/" + endpoint.lstrip("/")


def _failure(url: str, reason: str) -> WorkflowError:
    return WorkflowError.of(
        ErrorKind.AUTHENTICATION,
        f"could not obtain an access token from {url}: {reason}",
        title="Authentication failed",
    )
