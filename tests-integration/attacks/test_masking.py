"""Masking against encodings, in Lite through the real ``stigmer`` command.

A principal allowed to use a secret runs workflows that push it into every record it can reach:
a multi-line key in an HTTP header (refused by the HTTP client, whose error used to quote it), a
jq error on it (jq quotes a prefix), jq's ``@base64`` / ``@uri`` / ``tojson``, an API on
127.0.0.1 echoing the query it received (URL-encoded, in a body and in an error), and the
response as ``output: raw`` (base64 of the body). The API receives the real values, yet neither
the value, an encoded form nor a prefix of it is in ``$STIGMER_HOME`` (database, WAL, logs) or in
anything the CLI printed.

Masking is a courtesy to principals allowed to use a secret (docs/secrets.md); who may use one is
decided by grants, elsewhere.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.testing import HttpWorld, Request, Response, json_response

from .conftest import SharedServer, find_leaks

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


def _pem() -> str:
    body = base64.b64encode(secrets.token_bytes(150)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"


class Api(HttpWorld):
    """A local API that echoes what it receives (never the internet); ``requests`` lists them
    (path, query, headers with lower-case names)."""

    @property
    def base(self) -> str:
        return self.url

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"path": r.path, "query": {k: v[0] for k, v in r.params.items()}, "headers": r.headers}
                for r in self.received
            ]

    def handle(self, request: Request) -> Response:
        query = {k: v[0] for k, v in request.params.items()}
        if request.path == "/echo":
            return json_response({"headers": request.headers, "query": query})
        if request.path == "/echo-raw":
            return Response(body=request.target.encode(), content_type="text/plain")
        return Response(
            status=400, body=b"bad request: " + request.target.encode(), content_type="text/plain"
        )


@pytest.fixture
def api() -> Iterator[Api]:
    with Api() as server:
        yield server


def _workflow(name: str, tasks: str) -> str:
    return (
        f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
        f"  document: {{dsl: 1.0.0, namespace: attacks, name: {name}, version: 1.0.0}}\n"
        "  use: {secrets: [PEM, API_TOKEN]}\n  do:\n" + tasks
    )


def _manifests(base: str) -> str:
    workflows = {
        "pem-header": f"""\
    - send:
        call: http
        with:
          method: get
          endpoint: {base}/echo
          headers: {{X-Key: '${{ $secrets.PEM }}'}}
""",
        "jq-error": """\
    - add:
        set: {x: '${ $secrets.API_TOKEN + 1 }'}
""",
        "jq-error-object": """\
    - csv:
        set: {x: '${ [{k: $secrets.PEM}] | @csv }'}
""",
        "encodings": """\
    - encode:
        set:
          b64: '${ $secrets.API_TOKEN | @base64 }'
          pem64: '${ $secrets.PEM | @base64 }'
          uri: '${ $secrets.PEM | @uri }'
          json: '${ $secrets.PEM | tojson }'
          both: '${ {pem: $secrets.PEM, token: $secrets.API_TOKEN} | tojson | @base64 }'
""",
        "query-echo": f"""\
    - echo:
        call: http
        with:
          method: get
          endpoint: {base}/echo-raw
          query: {{key: '${{ $secrets.PEM }}', token: '${{ $secrets.API_TOKEN }}'}}
""",
        "query-error": f"""\
    - fail:
        call: http
        with:
          method: get
          endpoint: {base}/refuse
          query: {{key: '${{ $secrets.PEM }}', token: '${{ $secrets.API_TOKEN }}'}}
""",
        "raw-output": f"""\
    - raw:
        call: http
        with:
          method: get
          endpoint: {base}/echo
          headers: {{X-Token: '${{ $secrets.API_TOKEN }}'}}
          query: {{key: '${{ $secrets.PEM }}'}}
          output: raw
""",
    }
    return "---\n".join(_workflow(name, tasks) for name, tasks in workflows.items())


EXPECTED = {
    "pem-header": "FAILED",
    "jq-error": "FAILED",
    "jq-error-object": "FAILED",
    "encodings": "SUCCEEDED",
    "query-echo": "SUCCEEDED",
    "query-error": "FAILED",
    "raw-output": "SUCCEEDED",
}


def test_no_encoding_of_a_secret_reaches_any_record(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path, api: Api
) -> None:
    pem, token = _pem(), "sk-proj-" + secrets.token_urlsafe(36)
    printed: list[str] = []

    def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = stigmer(*args, input=input)
        printed.extend([result.stdout, result.stderr])
        return result

    for name, value in (("PEM", pem), ("API_TOKEN", token)):
        assert cli("secret", "set", name, input=value).returncode == 0
    manifest = tmp_path / "attacks.yaml"
    manifest.write_text(_manifests(api.base))
    applied = cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    ids: list[str] = []
    for name, phase in EXPECTED.items():
        result = cli("run", name, "-o", "json")
        record = json.loads(result.stdout)
        assert record["phase"] == phase, (name, record["error"])
        ids.append(record["id"])
        cli("run", name)  # the human rendering too: events as they come, the error line
    # Detached runs: a background process runs them, its stderr kept in $STIGMER_HOME/logs.
    for name in ("pem-header", "query-error", "raw-output"):
        detached = cli("run", name, "--detach")
        assert detached.returncode == 0, detached.stderr
        ids.append(detached.stdout.strip())
        followed = stigmer("execution", "logs", "-f", ids[-1], timeout=60)
        printed.extend([followed.stdout, followed.stderr])
        assert f"phase {EXPECTED[name]}" in followed.stdout
    assert len(list((stigmer_home / "logs").glob("*.log"))) == 3
    for execution_id in ids:
        cli("execution", "get", execution_id, "-o", "yaml")
        cli("execution", "logs", execution_id)

    # The attacks reached the API with the real values: there was something to leak.
    sent = [r for r in api.requests if r["path"] in ("/echo-raw", "/refuse", "/echo")]
    assert {r["query"].get("key") for r in sent} == {pem}
    assert token in {r["query"].get("token") for r in sent} | {r["headers"].get("x-token") for r in sent}

    # The errors say what failed, without the value.
    errors = " ".join(printed)
    assert "header X-Key has a line break" in errors
    assert "string and number cannot be added" in errors
    assert "object is not valid in a csv row" in errors

    assert any(p.name.startswith("stigmer.db") for p in stigmer_home.iterdir())
    for value in (pem, token, token[:16], *pem.splitlines()[1:-1]):
        assert find_leaks(value, paths=[stigmer_home], texts=printed) == [], value[:12]


def test_a_short_secret_is_stored_with_a_warning(stigmer: StigmerCli) -> None:
    short = stigmer("secret", "set", "PIN", input="42")
    assert short.returncode == 0, short.stderr
    assert "warning: PIN is shorter than 3 characters" in short.stderr
    assert "will not be masked in output" in short.stderr and "42" not in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1
    listed = stigmer("secret", "list", "-o", "json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["PIN"]
    long_enough = stigmer("secret", "set", "PIN", input="421")
    assert long_enough.returncode == 0
    assert "warning" not in long_enough.stderr


async def test_on_a_shared_server_no_encoding_of_an_admin_secret_is_recorded(
    shared_server: SharedServer,
) -> None:
    """The admin (allowed to use its secrets) runs the jq and encoding attacks on the server, which
    runs them itself: its database, WAL and log hold no form of the values."""
    pem, token = _pem(), "sk-proj-" + secrets.token_urlsafe(36)
    admin = shared_server.admin()
    seen: list[str] = []
    try:
        await admin.set_secret(svc.SetSecretRequest(name="PEM", value=pem))
        await admin.set_secret(svc.SetSecretRequest(name="API_TOKEN", value=token))
        manifests = _manifests("http://127.0.0.1:9")  # the HTTP attacks are not run here
        for loaded in parse_manifest(manifests, "attacks.yaml"):
            await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        for name in ("jq-error", "jq-error-object", "encodings"):
            spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
            created = await admin.create_execution(svc.CreateExecutionRequest(spec=spec))
            request = svc.WatchExecutionRequest(execution_id=created.metadata.id)
            events = [e async for e in admin.watch_execution(request)]
            done = await admin.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
            assert execution_pb2.Phase.Name(done.status.phase) == f"PHASE_{EXPECTED[name]}", done.status.error
            seen.append(str(done))
            seen.extend(json.dumps(json_format.MessageToDict(e)) for e in events)
        assert "string and number cannot be added" in " ".join(seen)
    finally:
        await admin.close()
    for value in (pem, token, token[:16], *pem.splitlines()[1:-1]):
        assert find_leaks(value, paths=shared_server.recorded(), texts=seen) == [], value[:12]
