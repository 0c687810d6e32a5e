"""Webhooks (``POST /hooks/{name}``, a ``Trigger``) and events (``POST /events``, CloudEvents,
``listen`` and ``schedule.on``) on a real ``stigmer server`` with ``--http-listen``, over real
HTTP requests (httpx). The server runs the executions (one child process each)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from stigmer.backend.cloud import CloudBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server import ServerProcess, TokenStore, admin_token_path
from stigmer.testing import free_port, wait_for_port

KEY = "whsec-test-0123456789abcdef"
MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: echo}
spec:
  document: {dsl: 1.0.0, namespace: t, name: echo, version: 1.0.0}
  do:
    - keep: {set: {got: '${ .order }', who: '${ .who }'}}
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
metadata: {name: mapped}
spec:
  target: {kind: Workflow, name: echo}
  secret: HOOK_KEY
  input: '{order: .body.pull.number, who: .headers["x-github-event"]}'
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: off}
spec:
  target: {kind: Workflow, name: echo}
  secret: HOOK_KEY
  enabled: false
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waiter}
spec:
  document: {dsl: 1.0.0, namespace: t, name: waiter, version: 1.0.0}
  do:
    - wait:
        listen:
          to:
            one:
              with: {type: com.acme.approved}
    - done: {set: {who: '${ .[0].who }'}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: on-paid}
spec:
  document: {dsl: 1.0.0, namespace: t, name: on-paid, version: 1.0.0}
  schedule:
    on:
      one:
        with: {type: com.acme.order.paid, source: "https://shop.example"}
  do:
    - keep: {set: {order: '${ .data.order }', id: '${ .id }'}}
"""


@dataclass
class Served:
    process: ServerProcess
    http: str
    admin: CloudBackend
    user_token: str
    runner_token: str


@pytest_asyncio.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setenv("STIGMER_HTTP_MAX_BODY", "4096")
    home = tmp_path / "server-home"
    port = free_port()
    process = ServerProcess(
        home=home,
        database_url=f"sqlite:///{home / 'stigmer.db'}",
        args=["--http-listen", f"127.0.0.1:{port}"],
    )
    await asyncio.to_thread(process.start)
    await asyncio.to_thread(wait_for_port, port)
    store = TokenStore(database_url=process.database_url)
    try:
        user = store.create("user", "alice").token
        runner = store.create("runner", "worker").token
    finally:
        store.close()
    admin = CloudBackend(process.endpoint, token=admin_token_path(home).read_text().strip())
    await admin.set_secret(svc.SetSecretRequest(name="HOOK_KEY", value=KEY))
    for loaded in parse_manifest(MANIFESTS, "hooks.yaml"):
        await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    try:
        yield Served(process, f"http://127.0.0.1:{port}", admin, user, runner)
    finally:
        await admin.close()
        await asyncio.to_thread(process.stop)


def sign(body: bytes, key: str = KEY) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=headers)


async def ended(admin: CloudBackend, execution_id: str) -> execution_pb2.Execution:
    for _ in range(600):
        ex = await admin.get_execution(svc.GetExecutionRequest(id=execution_id))
        if ex.status.phase in (
            execution_pb2.PHASE_SUCCEEDED,
            execution_pb2.PHASE_FAILED,
            execution_pb2.PHASE_CANCELLED,
        ):
            return ex
        await asyncio.sleep(0.1)
    raise AssertionError(f"{execution_id} did not end: {ex.status.phase}")


async def executions(admin: CloudBackend) -> list[str]:
    listed = await admin.list_executions(svc.ListExecutionsRequest(page_size=500))
    return [e.metadata.id for e in listed.executions]


def output(ex: execution_pb2.Execution) -> Any:
    from google.protobuf import json_format

    return json_format.MessageToDict(ex.status.output)


async def test_a_signed_webhook_starts_a_run_with_the_body_as_input(served: Served) -> None:
    body = json.dumps({"order": 42, "who": "ada"}).encode()
    answer = await post(
        f"{served.http}/hooks/orders",
        body,
        {"content-type": "application/json", "x-hub-signature-256": sign(body)},
    )
    assert answer.status_code == 202, answer.text
    run = await ended(served.admin, answer.json()["id"])
    assert run.status.phase == execution_pb2.PHASE_SUCCEEDED, run.status.error
    assert output(run) == {"got": 42, "who": "ada"}
    assert dict(run.metadata.labels)["stigmer.ai/trigger"] == "orders"


async def test_a_trigger_maps_body_and_headers_with_jq(served: Served) -> None:
    body = json.dumps({"pull": {"number": 7}}).encode()
    answer = await post(
        f"{served.http}/hooks/mapped",
        body,
        {
            "content-type": "application/json",
            "x-github-event": "pull_request",
            "x-hub-signature-256": sign(body),
        },
    )
    assert answer.status_code == 202, answer.text
    run = await ended(served.admin, answer.json()["id"])
    assert output(run) == {"got": 7, "who": "pull_request"}


async def test_a_wrong_or_missing_signature_is_401_and_starts_nothing(served: Served) -> None:
    body = b'{"order": 1}'
    before = await executions(served.admin)
    for signature in (None, "", "sha256=" + "0" * 64, sign(body, "another-key"), "sha1=abc", sign(body)[:-2]):
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["x-hub-signature-256"] = signature
        answer = await post(f"{served.http}/hooks/orders", body, headers)
        assert answer.status_code == 401, (signature, answer.text)
        assert "signature" in answer.text
    assert await executions(served.admin) == before


async def test_webhook_bad_input_gets_clear_4xx(served: Served) -> None:
    body = b'{"order": 1}'
    unknown = await post(f"{served.http}/hooks/nope", body, {"x-hub-signature-256": sign(body)})
    assert unknown.status_code == 404 and "no trigger named 'nope'" in unknown.text
    disabled = await post(f"{served.http}/hooks/off", body, {"x-hub-signature-256": sign(body)})
    assert disabled.status_code == 404 and "disabled" in disabled.text
    text = b"order=1"
    not_json = await post(
        f"{served.http}/hooks/orders", text, {"content-type": "text/plain", "x-hub-signature-256": sign(text)}
    )
    assert not_json.status_code == 415, not_json.text
    broken = b'{"order": '
    bad = await post(
        f"{served.http}/hooks/orders",
        broken,
        {"content-type": "application/json", "x-hub-signature-256": sign(broken)},
    )
    assert bad.status_code == 400 and "not JSON" in bad.text
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    too_big = await post(
        f"{served.http}/hooks/orders",
        big,
        {"content-type": "application/json", "x-hub-signature-256": sign(big)},
    )
    assert too_big.status_code == 413 and "4096 bytes" in too_big.text
    get = await post(f"{served.http}/healthz", b"", {})
    assert get.status_code == 405


async def _waiting(served: Served) -> str:
    created = await served.admin.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="waiter"))
        )
    )
    return created.metadata.id


async def test_a_structured_cloud_event_wakes_a_waiting_listen(served: Served) -> None:
    waiting = await _waiting(served)
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "crm",
        "type": "com.acme.approved",
        "data": {"who": "bo"},
    }
    answer = await post(
        f"{served.http}/events",
        json.dumps(event).encode(),
        {"content-type": "application/cloudevents+json", "authorization": f"Bearer {served.user_token}"},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": "e-1", "delivered": [waiting], "started": []}
    run = await ended(served.admin, waiting)
    assert run.status.phase == execution_pb2.PHASE_SUCCEEDED, run.status.error
    assert output(run) == {"who": "bo"}


async def test_a_binary_cloud_event_wakes_a_waiting_listen(served: Served) -> None:
    waiting = await _waiting(served)
    other = await post(  # another type: delivered nowhere, the run keeps waiting
        f"{served.http}/events",
        b"{}",
        {
            "ce-specversion": "1.0",
            "ce-id": "e-0",
            "ce-source": "crm",
            "ce-type": "com.acme.rejected",
            "content-type": "application/json",
            "authorization": f"Bearer {served.user_token}",
        },
    )
    assert other.status_code == 202 and other.json()["delivered"] == []
    answer = await post(
        f"{served.http}/events",
        json.dumps({"who": "cy"}).encode(),
        {
            "ce-specversion": "1.0",
            "ce-id": "e-2",
            "ce-source": "crm",
            "ce-type": "com.acme.approved",
            "content-type": "application/json",
            "authorization": f"Bearer {served.user_token}",
        },
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["delivered"] == [waiting]
    run = await ended(served.admin, waiting)
    assert output(run) == {"who": "cy"}


async def test_schedule_on_starts_a_run_per_matching_event_and_none_otherwise(served: Served) -> None:
    auth = {"content-type": "application/cloudevents+json", "authorization": f"Bearer {served.user_token}"}
    started = []
    for n in (1, 2):
        event = {
            "specversion": "1.0",
            "id": f"paid-{n}",
            "source": "https://shop.example",
            "type": "com.acme.order.paid",
            "data": {"order": n},
        }
        answer = await post(f"{served.http}/events", json.dumps(event).encode(), auth)
        assert answer.status_code == 202, answer.text
        [run_id] = answer.json()["started"]
        started.append(run_id)
    for n, run_id in enumerate(started, 1):
        run = await ended(served.admin, run_id)
        assert run.status.phase == execution_pb2.PHASE_SUCCEEDED, run.status.error
        assert output(run) == {"order": n, "id": f"paid-{n}"}
        assert dict(run.metadata.labels)["stigmer.ai/event-type"] == "com.acme.order.paid"
    before = await executions(served.admin)
    unmatched: list[dict[str, Any]] = [
        {"specversion": "1.0", "id": "x", "source": "elsewhere", "type": "com.acme.order.paid"},
        {
            "specversion": "1.0",
            "id": "y",
            "source": "https://shop.example",
            "type": "com.acme.order.refunded",
        },
    ]
    for event in unmatched:
        answer = await post(f"{served.http}/events", json.dumps(event).encode(), auth)
        assert answer.status_code == 202 and answer.json()["started"] == []
    assert await executions(served.admin) == before


async def test_events_bad_input_and_credentials_get_clear_4xx(served: Served) -> None:
    event = json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t"}).encode()
    ce = {"content-type": "application/cloudevents+json"}
    missing = await post(f"{served.http}/events", event, ce)
    assert missing.status_code == 401 and "Bearer" in missing.text
    forged = await post(f"{served.http}/events", event, {**ce, "authorization": "Bearer tok_made_up.0"})
    assert forged.status_code == 401
    runner = await post(
        f"{served.http}/events", event, {**ce, "authorization": f"Bearer {served.runner_token}"}
    )
    assert runner.status_code == 403 and "PublishEvent" in runner.text
    user = {**ce, "authorization": f"Bearer {served.user_token}"}
    no_type = await post(f"{served.http}/events", b'{"specversion": "1.0", "id": "1", "source": "s"}', user)
    assert no_type.status_code == 400 and "'type'" in no_type.text
    bad_json = await post(f"{served.http}/events", b"{", user)
    assert bad_json.status_code == 400 and "not JSON" in bad_json.text
    plain = await post(
        f"{served.http}/events",
        event,
        {"content-type": "application/json", "authorization": user["authorization"]},
    )
    assert plain.status_code == 400 and "not a CloudEvent" in plain.text
    binary_no_id = await post(
        f"{served.http}/events",
        b"",
        {"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t", "authorization": user["authorization"]},
    )
    assert binary_no_id.status_code == 400 and "'id'" in binary_no_id.text
    big = await post(f"{served.http}/events", b"{" + b" " * 5000 + b"}", user)
    assert big.status_code == 413
