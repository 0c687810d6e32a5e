"""OAuth2 credentials against records, in Lite through the real ``stigmer`` command.

A workflow allowed to use a password and a client's private key (``private_key_jwt``) gets
tokens from an authority on 127.0.0.1 and pushes everything it can into its records: the API
echoes the bearer token, the output asks for ``$authorization``, and a second authority refuses
the request with an error that quotes every parameter it received (the password, the signed
client assertion, the subject token). The real values reach the authorities, yet neither the
password, the key (or a line of it), an assertion, a refresh token nor an access token is in
``$STIGMER_HOME`` (database, WAL, logs) or in anything the CLI printed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from stigmer.testing import CLIENT_ID, OAuth2Authority, Request, Response, json_response

from .conftest import find_leaks

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


class EchoingAuthority(OAuth2Authority):
    """Grants as usual, except ``/leaky/token``: refused with every parameter quoted back."""

    def handle(self, request: Request) -> Response:
        if request.path == "/leaky/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            self.token_requests.append({"path": request.target, "form": form, "refused": "echoed"})
            quoted = json.dumps(form)
            return json_response({"error": "invalid_grant", "error_description": f"you sent {quoted}"}, 400)
        return super().handle(request)


@pytest.fixture
def authority() -> Iterator[EchoingAuthority]:
    with EchoingAuthority() as server:
        yield server


def _manifests(base: str) -> str:
    policy = f"""\
          authority: {base}
          grant: password
          username: ada
          password: '${{ $secrets.ADA_PASSWORD }}'
          client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_KEY }}', authentication: private_key_jwt}}
"""
    head = "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {0}}}\nspec:\n"
    doc = "  document: {{dsl: 1.0.3, namespace: attacks, name: {0}, version: 1.0.0}}\n"
    use = (
        "  use:\n    secrets: [CLIENT_KEY, ADA_PASSWORD]\n    authentications:\n      ada:\n        oauth2:\n"
    )
    granted = (
        head.format("oauth-echo")
        + doc.format("oauth-echo")
        + use
        + policy
        + f"""\
  do:
    - call:
        call: http
        with:
          method: get
          endpoint: {{uri: '{base}/api/echo', authentication: {{use: ada}}}}
        output:
          as: '${{ {{token: .token, auth: $authorization, again: ($authorization.parameter | @base64)}} }}'
"""
    )
    refused = (
        head.format("oauth-leaky")
        + doc.format("oauth-leaky")
        + "  use: {secrets: [CLIENT_KEY, ADA_PASSWORD]}\n"
        + f"""\
  do:
    - call:
        call: http
        with:
          method: get
          endpoint:
            uri: '{base}/api/echo'
            authentication:
              oauth2:
                authority: {base}/leaky
                endpoints: {{token: /token}}
                grant: password
                username: ada
                password: '${{ $secrets.ADA_PASSWORD }}'
                client: {{id: {CLIENT_ID}, secret: '${{ $secrets.CLIENT_KEY }}', authentication: private_key_jwt}}
"""
    )
    return granted + "---\n" + refused


def test_no_oauth_credential_or_token_reaches_any_record(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path, authority: EchoingAuthority
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    password = "pw-" + secrets.token_urlsafe(18)
    authority.trust_key(key.public_key())
    authority.users["ada"] = password
    printed: list[str] = []

    def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = stigmer(*args, input=input)
        printed.extend([result.stdout, result.stderr])
        return result

    for name, value in (("CLIENT_KEY", pem), ("ADA_PASSWORD", password)):
        assert cli("secret", "set", name, input=value).returncode == 0
    manifest = tmp_path / "oauth.yaml"
    manifest.write_text(_manifests(authority.base))
    applied = cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    ids = []
    for name, phase in (("oauth-echo", "SUCCEEDED"), ("oauth-leaky", "FAILED")):
        record = json.loads(cli("run", name, "-o", "json").stdout)
        assert record["phase"] == phase, (name, record["error"])
        ids.append(record["id"])
        cli("run", name)  # the human rendering too
    for execution_id in ids:
        cli("execution", "get", execution_id, "-o", "yaml")
        cli("execution", "logs", execution_id)

    # The authorities received the real credentials: there was something to leak.
    granted = [
        r for r in authority.token_requests if r.get("sent") == "private_key_jwt" and "refused" not in r
    ]
    leaky = [r for r in authority.token_requests if r.get("refused") == "echoed"]
    assert granted and leaky
    assert {r["form"]["password"] for r in granted + leaky} == {password}
    assertions = [r["form"]["client_assertion"] for r in granted + leaky]
    refresh = list(authority.refresh_tokens)
    assert refresh and authority.issued
    errors = " ".join(printed)
    assert "invalid_grant: you sent" in errors  # the refusal is reported, its echo masked
    assert '"password": "***", "client_assertion_type"' in errors

    assert any(p.name.startswith("stigmer.db") for p in stigmer_home.iterdir())
    for value in (password, *pem.splitlines()[1:-1], *assertions, *refresh, *authority.issued):
        assert find_leaks(value, paths=[stigmer_home], texts=printed) == [], value[:12]
