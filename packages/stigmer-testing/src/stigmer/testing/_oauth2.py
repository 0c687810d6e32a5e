"""``OAuth2Authority``: an OAuth2 / OIDC authority and the API it protects, on 127.0.0.1.

Token endpoints (any path ending ``/token``; parameters as a form or as JSON), OIDC discovery
(``…/.well-known/openid-configuration``), an OpenAPI document (``/openapi.json``) and a
protected API (every other path: a bearer token it issued, else 401). It records the token
requests, the tokens it issued and the API calls made with them.

Grants: ``client_credentials``, ``password`` (:attr:`OAuth2Authority.users`), ``refresh_token``
(:attr:`~OAuth2Authority.refresh_tokens`, rotated when asked) and token exchange (RFC 8693:
subject and actor tokens it issued or was told about in :attr:`~OAuth2Authority.exchangeable`).
Client authentication, checked strictly so a client sending something wrong is refused:
``client_secret_basic``, ``client_secret_post``, ``none`` (for :attr:`~OAuth2Authority.public_clients`)
and RFC 7523 JWT assertions — ``client_secret_jwt`` (HMAC with the client secret) and
``private_key_jwt`` (a key registered with :meth:`OAuth2Authority.trust_key`): signature,
``iss`` = ``sub`` = the client, ``aud`` = the token endpoint's URL, ``exp`` (at most five
minutes ahead), ``jti`` never seen before. More than one method in a request is refused.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import HMACAlgorithm

from ._http import HttpWorld, Request, Response, json_response

__all__ = ["ASSERTION_TYPE", "CLIENT_ID", "CLIENT_SECRET", "TOKEN_EXCHANGE", "TOKEN_TYPE", "OAuth2Authority"]

CLIENT_ID = "workflow-runtime"
CLIENT_SECRET = "s3cr3t-Cl1ent-9b8a7c"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 8693 token type identifiers by short name: ``TOKEN_TYPE + "access_token"``.
TOKEN_TYPE = "urn:ietf:params:oauth:token-type:"
_HMAC = ("HS256", "HS384", "HS512")
_SIGNED = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA")
_MAX_ASSERTION_LIFETIME = 300

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


_HASHES = {"HS256": HMACAlgorithm.SHA256, "HS384": HMACAlgorithm.SHA384, "HS512": HMACAlgorithm.SHA512}


class _AnyLengthHMAC(HMACAlgorithm):
    def check_key_length(self, key: bytes) -> str | None:
        return None


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.answer = json_response({"error": error, "error_description": description}, status)


class OAuth2Authority(HttpWorld):
    """Issues tokens to ``client_id`` (authenticated by ``client_secret`` or a trusted key)."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_keys: list[PublicKey] = []
        self.public_clients: set[str] = set()
        self.users: dict[str, str] = {}
        self.refresh_tokens: set[str] = set()
        self.rotate_refresh_tokens = False
        self.exchangeable: dict[str, str] = {}  # token -> its RFC 8693 type URI
        self.issuer: str | None = None  # when set, access tokens are JWTs with this ``iss``
        self.expires_in: int | None = 3600
        self.token_requests: list[dict[str, Any]] = []
        self.api_calls: list[str] = []
        self.issued: list[str] = []
        self.grants: dict[str, dict[str, Any]] = {}  # access token -> who got it, how
        self.assertion_ids: set[str] = set()
        self._signing_key = uuid.uuid4().hex * 2
        self._token_lock = threading.Lock()

    @property
    def base(self) -> str:
        return self.url

    def reset(self) -> None:
        """Forget token requests, API calls and grant settings (issued tokens stay valid);
        tokens last an hour and are opaque again."""
        self.token_requests.clear()
        self.api_calls.clear()
        self.expires_in = 3600
        self.client_keys.clear()
        self.public_clients.clear()
        self.users.clear()
        self.refresh_tokens.clear()
        self.rotate_refresh_tokens = False
        self.exchangeable.clear()
        self.issuer = None

    def trust_key(self, key: PublicKey | str | bytes) -> None:
        """Accept ``private_key_jwt`` assertions signed by the private half of ``key`` (a
        public key or its PEM)."""
        if isinstance(key, str | bytes):
            loaded = serialization.load_pem_public_key(key.encode() if isinstance(key, str) else key)
            if not isinstance(
                loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
            ):
                raise TypeError(f"unsupported key type {type(loaded).__name__}")
            key = loaded
        self.client_keys.append(key)

    @staticmethod
    def client_of(headers: dict[str, str], form: dict[str, str]) -> tuple[str, str, str]:
        """(client id, secret, how they were sent) from a token request with a shared secret."""
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
            issuer = self.issuer or self.base + path.removesuffix("/.well-known/openid-configuration")
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

    # ------------------------------------------------------------------ token endpoint
    def _token(self, request: Request) -> Response:
        audiences: list[str] = []
        if request.headers.get("content-type", "").startswith("application/json"):
            payload = json.loads(request.body)
            audience = payload.get("audience")
            audiences = [str(a) for a in audience] if isinstance(audience, list) else []
            form = {k: str(v) for k, v in payload.items() if k not in ("audience",) or not audiences}
        else:
            params = parse_qs(request.body.decode())
            audiences = params.get("audience", [])
            form = {k: v[0] for k, v in params.items() if k != "audience" or len(v) == 1}
        record: dict[str, Any] = {
            "path": request.target,
            "form": form,
            "grant": form.get("grant_type"),
            "audiences": audiences or ([form["audience"]] if "audience" in form else []),
        }
        self.token_requests.append(record)
        with self._token_lock:
            try:
                record["client"], record["sent"] = self._authenticate(request, form, record)
                grant = self._grant(form, record["client"], record["sent"])
            except _Refused as refused:
                record["refused"] = json.loads(refused.answer.body)["error_description"]
                return refused.answer
            return json_response(self._issue(form, record["client"], grant))

    def _authenticate(
        self, request: Request, form: dict[str, str], record: dict[str, Any]
    ) -> tuple[str, str]:
        """(client id, method) of an authenticated client, else :class:`_Refused`."""
        methods = [
            name
            for name, present in (
                ("basic", request.headers.get("authorization", "").startswith("Basic ")),
                ("post", "client_secret" in form),
                ("assertion", "client_assertion" in form or "client_assertion_type" in form),
            )
            if present
        ]
        if len(methods) > 1:
            record["sent"] = "+".join(methods)
            raise _Refused(
                400, "invalid_request", f"more than one client authentication ({', '.join(methods)})"
            )
        if methods == ["assertion"]:
            return self._assertion(request, form, record)
        if not methods:
            record["sent"] = "none"
            client = form.get("client_id", "")
            if client and client in self.public_clients:
                return client, "none"
            raise _Refused(401, "invalid_client", f"client {client!r} must authenticate")
        client, secret, sent = self.client_of(request.headers, form)
        record["sent"] = sent
        if client != self.client_id or secret != self.client_secret:
            raise _Refused(401, "invalid_client", "bad client credentials")
        return client, sent

    def _assertion(self, request: Request, form: dict[str, str], record: dict[str, Any]) -> tuple[str, str]:
        record["sent"] = "assertion"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _Refused(401, "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        try:
            alg = str(jwt.get_unverified_header(assertion).get("alg"))
        except jwt.PyJWTError as error:
            raise _Refused(401, "invalid_client", f"client assertion: {error}") from None
        if alg in _HMAC:
            keys: list[Any] = [self.client_secret.encode()]
            method = "client_secret_jwt"
        elif alg in _SIGNED:
            keys = list(self.client_keys)
            method = "private_key_jwt"
        else:
            raise _Refused(401, "invalid_client", f"client assertion algorithm {alg!r} is not accepted")
        record["sent"] = method
        verifier = jwt.PyJWS(algorithms=[alg])
        if alg in _HMAC:  # any secret length: the authority chose it
            verifier.unregister_algorithm(alg)
            verifier.register_algorithm(alg, _AnyLengthHMAC(_HASHES[alg]))
        problem = "no trusted key"
        for key in keys:
            try:
                verifier.decode_complete(assertion, key, algorithms=[alg])
                break
            except jwt.PyJWTError as error:
                problem = str(error)
        else:
            raise _Refused(401, "invalid_client", f"client assertion: {problem}")
        try:  # the signature is good: now the claims
            claims: dict[str, Any] = jwt.decode(
                assertion,
                audience=self.base + request.path,
                options={
                    "verify_signature": False,
                    "verify_exp": True,
                    "verify_aud": True,
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                },
            )
        except jwt.PyJWTError as error:
            raise _Refused(401, "invalid_client", f"client assertion: {error}") from None
        record["assertion"] = {"alg": alg, **claims}
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            raise _Refused(401, "invalid_client", "client assertion: iss and sub must be the client id")
        if form.get("client_id", self.client_id) != self.client_id:
            raise _Refused(401, "invalid_client", "client_id does not match the client assertion")
        if int(claims["exp"]) > time.time() + _MAX_ASSERTION_LIFETIME:
            raise _Refused(401, "invalid_client", "client assertion: exp is too far ahead")
        if claims["jti"] in self.assertion_ids:
            raise _Refused(401, "invalid_client", "client assertion: jti was used before (replay)")
        self.assertion_ids.add(str(claims["jti"]))
        return self.client_id, method

    def _grant(self, form: dict[str, str], client: str, sent: str) -> dict[str, Any]:
        """What the grant gives: who the token is for, and whether a refresh token comes along."""
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if sent == "none":
                raise _Refused(401, "unauthorized_client", "a public client cannot use client_credentials")
            return {"grant": grant, "sub": client}
        if grant == "password":
            user, password = form.get("username", ""), form.get("password", "")
            if user not in self.users or self.users[user] != password:
                raise _Refused(400, "invalid_grant", "bad username or password")
            return {"grant": grant, "sub": user, "refresh": True}
        if grant == "refresh_token":
            presented = form.get("refresh_token", "")
            if presented not in self.refresh_tokens:
                raise _Refused(400, "invalid_grant", "unknown or used refresh token")
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(presented)
            return {"grant": grant, "sub": client, "refresh": self.rotate_refresh_tokens}
        if grant == TOKEN_EXCHANGE:
            subject = self._exchanged(form, "subject")
            if subject is None:
                raise _Refused(400, "invalid_request", "subject_token is required")
            actor = self._exchanged(form, "actor")
            return {"grant": grant, "sub": subject, "act": actor}
        raise _Refused(400, "unsupported_grant_type", f"grant_type {grant!r}")

    def _exchanged(self, form: dict[str, str], party: str) -> str | None:
        token, kind = form.get(f"{party}_token"), form.get(f"{party}_token_type")
        if token is None:
            if kind is not None:
                raise _Refused(400, "invalid_request", f"{party}_token_type without {party}_token")
            return None
        if not kind:
            raise _Refused(400, "invalid_request", f"{party}_token_type is required with {party}_token")
        known = self.exchangeable.get(token) or (
            TOKEN_TYPE + "access_token" if token in self.issued else None
        )
        if known is None:
            raise _Refused(400, "invalid_grant", f"unknown {party}_token")
        if kind != known:
            raise _Refused(400, "invalid_request", f"{party}_token_type {kind!r} is not the token's type")
        return token

    def _issue(self, form: dict[str, str], client: str, grant: dict[str, Any]) -> dict[str, Any]:
        scope = form.get("scope", "")
        if self.issuer is not None:
            claims = {"iss": self.issuer, "sub": grant["sub"], "azp": client, "jti": uuid.uuid4().hex}
            token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        else:
            token = f"at-{len(self.issued) + 1}-{scope}".replace(" ", "+")
        self.issued.append(token)
        self.grants[token] = {"client": client, **{k: v for k, v in grant.items() if k != "refresh"}}
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
        if grant["grant"] == TOKEN_EXCHANGE:
            answer["issued_token_type"] = TOKEN_TYPE + "access_token"
        if grant.get("refresh"):
            refresh = f"rt-{uuid.uuid4().hex}"
            self.refresh_tokens.add(refresh)
            answer["refresh_token"] = refresh
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return answer
