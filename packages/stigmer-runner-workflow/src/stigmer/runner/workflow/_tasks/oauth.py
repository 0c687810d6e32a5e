"""OAuth2 / OpenID Connect: fetching, caching and presenting access tokens.

Grants: ``client_credentials``, ``password``, ``refresh_token`` (the refresh token is the
policy's ``subject.token``) and token exchange (RFC 8693, ``subject``/``actor`` tokens). Client
authentication: ``client_secret_post`` (the DSL's default), ``client_secret_basic``, ``none`` and
JWT client assertions (RFC 7523): ``client_secret_jwt`` (HS256 with ``client.secret``) and
``private_key_jwt`` (``client.assertion`` as given, or signed here with the PEM private key in
``client.secret``). ``authorization_code`` needs a person at a browser and is refused.

The token request goes through the host (``Host.http_request``) right before the call that
needs it; credentials are resolved just in time by the policy's expressions and never kept
beyond the request. Tokens are cached per resolved authentication policy (authority, client,
grant and the rest) until shortly before they expire (``expires_in``), measured on the host's
clock.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from .._errors import ErrorKind, WorkflowError
from .._host import Host, HttpRequest, HttpResponse

__all__ = [
    "CLIENT_AUTHENTICATIONS",
    "GRANTS",
    "TOKEN_EXCHANGE",
    "UNSUPPORTED_GRANTS",
    "UNSUPPORTED_SCHEMES",
    "TokenCache",
    "oauth2_token",
    "policy_credentials",
    "policy_gaps",
    "policy_refusals",
    "stored_policy",
    "unsupported_grant",
    "unsupported_scheme",
]

DEFAULT_TOKEN_ENDPOINT: Final = "/oauth2/token"
OIDC_DISCOVERY: Final = "/.well-known/openid-configuration"
#: How long a token without ``expires_in`` is reused.
DEFAULT_LIFETIME: Final = 300.0
#: Refresh this long before ``expires_in`` runs out (at most a tenth of the lifetime).
EXPIRY_MARGIN: Final = 30.0
#: How long a client assertion signed here is valid (RFC 7523: the authority rejects it after).
ASSERTION_LIFETIME: Final = 60
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANTS: Final = ("client_credentials", "password", "refresh_token", TOKEN_EXCHANGE)
#: Grants the DSL names that the runner refuses, with the reason.
UNSUPPORTED_GRANTS: Final = {
    "authorization_code": "it needs a person to sign in at a browser and hand back a code, "
    "which an unattended workflow cannot do (use client_credentials, password, refresh_token "
    "or token exchange)",
}
CLIENT_AUTHENTICATIONS: Final = (
    "client_secret_post",
    "client_secret_basic",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
)
_ENCODINGS: Final = ("application/x-www-form-urlencoded", "application/json")
#: RFC 8693 section 3 token type identifiers, by the short names a policy may use.
_TOKEN_TYPES: Final = ("access_token", "refresh_token", "id_token", "saml1", "saml2", "jwt")


@dataclass
class _Token:
    value: str
    expires: datetime.datetime


@dataclass
class TokenCache:
    """Access tokens of one run, keyed by a digest of the resolved policy (never by its values)."""

    tokens: dict[str, _Token] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)  # OIDC authority -> token endpoint
    issuers: dict[str, str] = field(default_factory=dict)  # OIDC authority -> advertised issuer
    refresh: dict[str, str] = field(default_factory=dict)  # policy -> rotated refresh token
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


def policy_credentials(settings: Mapping[str, Any]) -> list[str]:
    """The credential values in an authentication policy's settings (to be masked)."""
    client = settings.get("client")
    client = client if isinstance(client, Mapping) else {}
    values = [
        settings.get("password"),
        settings.get("token"),
        client.get("secret"),
        client.get("assertion"),
    ]
    for party in ("subject", "actor"):
        token = settings.get(party)
        if isinstance(token, Mapping):
            values.append(token.get("token"))
    return [v for v in values if isinstance(v, str) and v]


def _config(message: str) -> WorkflowError:
    return WorkflowError.of(ErrorKind.CONFIGURATION, message)


def _token_type(scheme: str, party: str, token: Any) -> tuple[str, str]:
    """(token, RFC 8693 token type URI) of the policy's ``subject`` or ``actor``."""
    if not isinstance(token, Mapping) or not isinstance(token.get("token"), str) or not token["token"]:
        raise _config(f"{scheme} {party} needs a token and its type")
    kind = token.get("type")
    if not isinstance(kind, str) or not kind:
        raise _config(f"{scheme} {party} needs a type")
    if ":" not in kind:  # a short name: access_token, jwt ...
        if kind not in _TOKEN_TYPES:
            raise _config(
                f"{scheme} {party} type {kind!r} is not a token type (use a URI or one of "
                f"{', '.join(_TOKEN_TYPES)})"
            )
        kind = f"urn:ietf:params:oauth:token-type:{kind}"
    return str(token["token"]), kind


_STRING_FIELDS: Final = ("grant", "authority", "username", "password")
_LIST_FIELDS: Final = ("scopes", "audiences", "issuers")
_OBJECT_FIELDS: Final = {
    "client": ("id", "secret", "assertion", "authentication"),
    "request": ("encoding",),
    "endpoints": ("token", "revocation", "introspection"),
    "subject": ("token", "type"),
    "actor": ("token", "type"),
}


def _check_shape(scheme: str, policy: Mapping[str, Any]) -> None:
    """Refuse fields of the wrong type (a policy held in a secret was never schema-checked)."""
    for name in _STRING_FIELDS:
        if policy.get(name) is not None and not isinstance(policy[name], str):
            raise _config(f"{scheme} {name} must be a string")
    for name in _LIST_FIELDS:
        value = policy.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise _config(f"{scheme} {name} must be a list of strings")
    for name, fields in _OBJECT_FIELDS.items():
        value = policy.get(name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise _config(f"{scheme} {name} must be an object")
        for field_name in fields:
            if value.get(field_name) is not None and not isinstance(value[field_name], str):
                raise _config(f"{scheme} {name}.{field_name} must be a string")


def _grant_parameters(
    scheme: str, grant: str, policy: Mapping[str, Any], secrets: list[str]
) -> dict[str, str]:
    """The request parameters a grant adds (its credentials join ``secrets``)."""
    if grant == "client_credentials":
        return {}
    if grant == "password":
        username, password = policy.get("username"), policy.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise _config(f"{scheme} grant password needs username and password")
        secrets.append(password)
        return {"username": username, "password": password}
    if grant == "refresh_token":
        subject = policy.get("subject")
        token = subject.get("token") if isinstance(subject, Mapping) else None
        if not isinstance(token, str) or not token:
            raise _config(f"{scheme} grant refresh_token needs the refresh token as subject.token")
        secrets.append(token)
        return {"refresh_token": token}
    subject, subject_type = _token_type(scheme, "subject", policy.get("subject"))
    parameters = {"subject_token": subject, "subject_token_type": subject_type}
    secrets.append(subject)
    if policy.get("actor") is not None:
        actor, actor_type = _token_type(scheme, "actor", policy.get("actor"))
        parameters |= {"actor_token": actor, "actor_token_type": actor_type}
        secrets.append(actor)
    return parameters


async def oauth2_token(
    host: Host, cache: TokenCache, scheme: str, policy: Mapping[str, Any], secrets: list[str]
) -> str:
    """An access token for the ``oauth2``/``oidc`` ``policy`` (already evaluated): cached or fetched.

    ``secrets`` collects the credential values sent, so callers can keep them out of errors.
    """
    _check_shape(scheme, policy)
    grant = policy.get("grant")
    if grant in UNSUPPORTED_GRANTS:
        raise _config(f"{scheme} {unsupported_grant(str(grant))}")
    if grant not in GRANTS:
        raise _config(f"{scheme} grant {grant!r} is not supported (use {', '.join(GRANTS)})")
    authority = policy.get("authority")
    if not isinstance(authority, str) or not authority:
        raise _config(f"{scheme} authentication needs an authority")
    client = policy.get("client") or {}
    if not isinstance(client, Mapping):
        raise _config(f"{scheme} client must be an object")
    method = client.get("authentication") or "client_secret_post"  # the DSL schema's default
    if method not in CLIENT_AUTHENTICATIONS:
        raise _config(
            f"{scheme} client authentication {method!r} is not supported "
            f"(use {', '.join(CLIENT_AUTHENTICATIONS)})"
        )
    secret, assertion = client.get("secret"), client.get("assertion")
    given_assertion = method in ("client_secret_jwt", "private_key_jwt") and isinstance(assertion, str)
    if not isinstance(client.get("id"), str) and method != "none" and not given_assertion:
        raise _config(f"{scheme} authentication needs client.id")
    if method in ("client_secret_basic", "client_secret_post") and not isinstance(secret, str):
        raise _config(f"{scheme} client authentication {method} needs client.secret")
    if method == "client_secret_jwt" and not (secret or given_assertion):  # HMAC needs a key
        raise _config(f"{scheme} client authentication {method} needs client.secret")
    if method == "private_key_jwt" and not (secret or given_assertion):
        raise _config(
            f"{scheme} client authentication private_key_jwt needs client.assertion "
            "(a signed JWT) or the client's PEM private key as client.secret"
        )
    encoding = (policy.get("request") or {}).get("encoding") or _ENCODINGS[0]
    if encoding not in _ENCODINGS:
        raise _config(f"{scheme} token request encoding {encoding!r}")
    secrets.extend(v for v in (secret, assertion) if isinstance(v, str) and v)
    grant_form = _grant_parameters(scheme, str(grant), policy, secrets)

    key = hashlib.sha256(json.dumps([scheme, policy], sort_keys=True, default=str).encode()).hexdigest()
    async with cache.lock(key):
        cached = cache.tokens.get(key)
        if cached is not None and host.now() < cached.expires:
            return cached.value
        issuers = [str(i) for i in policy.get("issuers") or ()]
        if scheme == "oidc":
            token_url = await _discover(host, cache, authority)
            advertised = cache.issuers.get(authority)
            if issuers and advertised not in issuers:
                raise _failure(token_url, f"the provider's issuer {advertised!r} is not in issuers")
        else:
            token_url = _join(
                authority, str((policy.get("endpoints") or {}).get("token") or DEFAULT_TOKEN_ENDPOINT)
            )
        if grant == "refresh_token" and key in cache.refresh:
            grant_form["refresh_token"] = cache.refresh[key]  # the authority rotated it
        form: dict[str, str] = {"grant_type": str(grant), **grant_form}
        headers = {"Accept": "application/json"}
        client_id = client.get("id")
        if method == "client_secret_basic":
            pair = f"{quote(str(client_id), safe='')}:{quote(str(secret), safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif method in ("client_secret_jwt", "private_key_jwt"):
            if given_assertion:
                signed = str(assertion)
            else:
                signed = _client_assertion(scheme, method, str(client_id), str(secret), token_url)
                secrets.append(signed)
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = signed
            if isinstance(client_id, str):
                form["client_id"] = client_id
        elif isinstance(client_id, str):
            form["client_id"] = client_id
            if method == "client_secret_post":
                form["client_secret"] = str(secret)
        scopes = policy.get("scopes") or []
        if scopes:
            form["scope"] = " ".join(str(s) for s in scopes)
        # RFC 8693 section 2.1: one audience parameter per audience.
        audiences = [str(a) for a in policy.get("audiences") or ()]
        if encoding == "application/json":
            headers["Content-Type"] = "application/json"
            body: Any = dict(form)
            if audiences:
                body["audience"] = audiences[0] if len(audiences) == 1 else audiences
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode([*form.items(), *(("audience", a) for a in audiences)])
        fetched_at = host.now()
        response = await _send(host, HttpRequest("POST", token_url, headers=headers, body=body), token_url)
        token, lifetime, refresh = _parse_token(response, token_url)
        if issuers:
            issued_by = _jwt_issuer(token)
            if issued_by is not None and issued_by not in issuers:
                raise _failure(token_url, f"the token's issuer {issued_by!r} is not in issuers")
        if refresh is not None:
            secrets.append(refresh)
            if grant == "refresh_token":
                cache.refresh[key] = refresh
        margin = min(EXPIRY_MARGIN, lifetime / 10)
        cache.tokens[key] = _Token(token, fetched_at + datetime.timedelta(seconds=lifetime - margin))
        return token


def _client_assertion(scheme: str, method: str, client_id: str, secret: str, audience: str) -> str:
    """A fresh RFC 7523 client assertion: HS256 with the client secret, or signed with the
    client's PEM private key (RS256 for RSA, ES256/384/512 for EC by curve, EdDSA for Ed25519)."""
    # Imported here: only workflows with JWT client authentication need them.
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    now = int(time.time())  # the authority checks exp/iat against its own (real) clock
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    if method == "client_secret_jwt":
        return _hs256(claims, secret)
    try:
        key = serialization.load_pem_private_key(secret.encode(), password=None)
    except (ValueError, TypeError, binascii.Error):
        raise _config(
            f"{scheme} client authentication private_key_jwt: client.secret is not an unencrypted "
            "PEM private key (or give a signed client.assertion)"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        return jwt.encode(claims, key, algorithm="RS256")
    curves = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in curves:
        return jwt.encode(claims, key, algorithm=curves[key.curve.name])
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return jwt.encode(claims, key, algorithm="EdDSA")
    raise _config(
        f"{scheme} client authentication private_key_jwt: the private key's type is not "
        "supported (use RSA, EC P-256/P-384/P-521 or Ed25519)"
    )


def _hs256(claims: Mapping[str, Any], secret: str) -> str:
    """``claims`` signed HS256 with ``secret``, whatever its length: the authority chose the
    secret, and PyJWT's short-key warning would only reach the workflow's user as noise."""
    import jwt
    from jwt.algorithms import HMACAlgorithm

    class AnyLength(HMACAlgorithm):
        def check_key_length(self, key: bytes) -> str | None:
            return None

    signer = jwt.PyJWS(algorithms=["HS256"])
    signer.unregister_algorithm("HS256")
    signer.register_algorithm("HS256", AnyLength(HMACAlgorithm.SHA256))
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return signer.encode(payload, secret, algorithm="HS256", headers={"typ": "JWT"})


def _jwt_issuer(token: str) -> str | None:
    """The ``iss`` claim of a JWT access token (not verified: the API verifies it), or None when
    the token is opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    issuer = claims.get("iss") if isinstance(claims, Mapping) else None
    return str(issuer) if issuer is not None else None


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
    cache.issuers[authority] = str(document.get("issuer") or "")
    return endpoint


async def _send(host: Host, request: HttpRequest, url: str) -> HttpResponse:
    try:
        return await host.http_request(request)
    except WorkflowError as error:
        raise _failure(url, str(error.problem.get("detail") or error)) from None


def _parse_token(response: HttpResponse, url: str) -> tuple[str, float, str | None]:
    """(access token, lifetime in seconds, refresh token if one was issued)."""
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
    # RFC 8693: an exchange answering token_type N_A issued something other than an access token.
    if token_type.lower() != "bearer":
        raise _failure(url, f"token_type {token_type!r} is not supported (only Bearer is)")
    expires_in = payload.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    refresh = payload.get("refresh_token")
    return str(payload["access_token"]), max(lifetime, 0.0), refresh if isinstance(refresh, str) else None


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


#: Authentication schemes the DSL names that the runner refuses, with the reason.
UNSUPPORTED_SCHEMES: Final = {
    "digest": "the runner does not answer HTTP Digest challenges (RFC 7616); use basic over "
    "HTTPS, bearer, oauth2 or oidc",
}


def unsupported_scheme(scheme: str) -> str:
    """The refusal of an authentication scheme the runner does not support (validation and run)."""
    return f"{scheme} authentication is not supported: {UNSUPPORTED_SCHEMES[scheme]}"


def unsupported_grant(grant: str) -> str:
    """The refusal of an OAuth2 grant the runner does not support (validation and run)."""
    return f"grant {grant!r} is not supported: {UNSUPPORTED_GRANTS[grant]}"


def policy_refusals(path: str, policy: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for what the DSL allows in authentication ``policy`` (at JSON pointer
    ``path``) but the runner cannot carry out: ``digest``, ``grant: authorization_code``."""
    problems: list[tuple[str, str]] = []
    for scheme, settings in policy.items():
        if scheme in UNSUPPORTED_SCHEMES:
            problems.append((f"{path}/{scheme}", unsupported_scheme(scheme)))
        grant = settings.get("grant") if isinstance(settings, Mapping) else None
        if scheme in ("oauth2", "oidc") and isinstance(grant, str) and grant in UNSUPPORTED_GRANTS:
            problems.append((f"{path}/{scheme}/grant", unsupported_grant(grant)))
    return problems


def policy_gaps(path: str, policy: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, message) when an inline OAuth2/OIDC ``policy`` lacks what its grant or client
    authentication needs: it could not run anywhere."""
    problems: list[tuple[str, str]] = []
    for scheme, settings in policy.items():
        if scheme not in ("oauth2", "oidc") or not isinstance(settings, Mapping):
            continue
        grant = settings.get("grant")
        needs = _GRANT_NEEDS.get(grant) if isinstance(grant, str) else None
        if needs is not None and not needs[0](settings):
            problems.append((f"{path}/{scheme}", f"grant {grant} needs {needs[1]}"))
        client = settings.get("client")
        if (
            isinstance(client, Mapping)
            and client.get("authentication") == "private_key_jwt"
            and client.get("assertion") is None
            and client.get("secret") is None
        ):
            problems.append(
                (
                    f"{path}/{scheme}/client",
                    "private_key_jwt needs client.assertion (a signed JWT) or the client's "
                    "PEM private key as client.secret",
                )
            )
    return problems


def _has_credentials(settings: Mapping[str, Any]) -> bool:
    return settings.get("username") is not None and settings.get("password") is not None


def _has_subject(settings: Mapping[str, Any]) -> bool:
    subject = settings.get("subject")
    return isinstance(subject, Mapping) and subject.get("token") is not None


#: What each grant needs in the policy, checked at validation (the values may be expressions).
_GRANT_NEEDS: Final[dict[str, tuple[Callable[[Mapping[str, Any]], bool], str]]] = {
    "password": (_has_credentials, "username and password"),
    "refresh_token": (_has_subject, "the refresh token as subject.token"),
    TOKEN_EXCHANGE: (_has_subject, "subject (the token to exchange and its type)"),
}
