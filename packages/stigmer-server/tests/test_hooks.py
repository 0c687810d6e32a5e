"""The webhook and event routes in process (Starlette's test client over a real SQLite store):
whatever arrives, the answer is a clear 2xx/4xx, never a 500 or a traceback, and a run starts
only for a correct signature."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient
from stigmer.backend.local import LocalBackend
from stigmer.core import Principal, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.server._hooks import Hooks

KEY = "whsec-unit-0123456789"
MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: echo}
spec:
  document: {dsl: 1.0.0, namespace: t, name: echo, version: 1.0.0}
  do:
    - keep: {set: {got: '${ . }'}}
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: orders}
spec:
  target: {kind: Workflow, name: echo}
  secret: HOOK_KEY
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: broken}
spec:
  target: {kind: Workflow, name: echo}
  secret: HOOK_KEY
  input: '.body | no_such_function'
---
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {name: helper}
spec:
  instructions: Summarize the event.
  model: {provider: openai, name: m}
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: to-agent}
spec:
  target: {kind: Agent, name: helper}
  secret: HOOK_KEY
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: to-agent-text}
spec:
  target: {kind: Agent, name: helper}
  secret: HOOK_KEY
  input: '"summarize issue " + (.body.issue | tostring)'
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: keyless}
spec:
  target: {kind: Workflow, name: echo}
  secret: NOT_STORED
"""


class Started:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.executions: list[Any] = []

    def start(self, execution: Any) -> None:
        self.ids.append(execution.metadata.id)
        self.executions.append(execution)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Started]]:
    import asyncio

    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=os.urandom(32))

    async def seed() -> None:
        await backend.set_secret(svc.SetSecretRequest(name="HOOK_KEY", value=KEY))
        for loaded in parse_manifest(MANIFESTS, "hooks.yaml"):
            await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]

    asyncio.run(seed())
    started = Started()

    def verify(token: str) -> Principal | None:
        return Principal("tok_1", "alice", "user") if token == "good" else None

    hooks = Hooks(backend, started, verify=verify, max_body=2048)
    with TestClient(Starlette(routes=hooks.routes()), raise_server_exceptions=True) as client:
        yield client, started
    asyncio.run(backend.close())


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()


def test_a_signed_body_starts_one_run(app: tuple[TestClient, Started]) -> None:
    client, started = app
    body = b'{"n": 1}'
    answer = client.post(
        "/hooks/orders",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": _sign(body)},
    )
    assert answer.status_code == 202, answer.text
    assert started.ids == [answer.json()["id"]]


def test_a_failing_input_expression_is_422(app: tuple[TestClient, Started]) -> None:
    client, started = app
    body = b"{}"
    answer = client.post(
        "/hooks/broken",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": _sign(body)},
    )
    assert answer.status_code == 422 and "spec.input failed" in answer.text
    assert started.ids == []


headers = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "x-hub-signature-256",
            "authorization",
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "x",
        ]
    ),
    st.one_of(
        st.sampled_from(
            [
                "application/json",
                "application/cloudevents+json",
                "Bearer good",
                "1.0",
                "sha256=00",
                "text/plain",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/hooks/orders", "/hooks/broken", "/hooks/none", "/events"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.just(b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t"}'),
        st.just(b"x" * 3000),
    ),
    sent=headers,
)
def test_anything_gets_a_clear_answer_and_only_a_signature_starts_a_run(
    app: tuple[TestClient, Started], path: str, body: bytes, sent: dict[str, str]
) -> None:
    client, started = app
    before = len(started.ids)
    answer = client.post(path, content=body, headers=sent)
    assert answer.status_code in (202, 400, 401, 403, 404, 413, 415, 422), (answer.status_code, answer.text)
    assert "Traceback" not in answer.text
    if path.startswith("/hooks/") and answer.status_code == 202:
        assert sent.get("x-hub-signature-256") == _sign(body)
    if path == "/hooks/orders" and sent.get("x-hub-signature-256") != _sign(body):
        assert len(started.ids) == before


def test_an_agent_target_gets_the_body_or_the_mapped_text_as_its_message(
    app: tuple[TestClient, Started],
) -> None:
    client, started = app
    body = b'{"issue": 12}'
    headers = {"content-type": "application/json", "x-hub-signature-256": _sign(body)}
    for path in ("/hooks/to-agent", "/hooks/to-agent-text"):
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code == 202, answer.text
    as_json, as_text = started.executions
    assert as_json.kind == "AgentExecution" and as_json.spec.message == '{"issue": 12}'
    assert as_text.spec.message == "summarize issue 12"
    assert dict(as_text.metadata.labels) == {"stigmer.ai/trigger": "to-agent-text"}


def test_a_trigger_whose_secret_is_not_stored_refuses_with_503(app: tuple[TestClient, Started]) -> None:
    client, started = app
    answer = client.post("/hooks/keyless", content=b"{}", headers={"x-hub-signature-256": _sign(b"{}")})
    assert answer.status_code == 503 and "its secret is not stored" in answer.text
    assert started.ids == []
