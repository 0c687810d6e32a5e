"""Attacks on webhooks (``POST /hooks/{name}``) against a real ``stigmer server`` with
``--http-listen``: a captured signed request replayed with its body altered, the webhook key
showing up anywhere the server records or answers, and a ``user`` making a Trigger whose key is
a secret nobody granted them (which would let them sign requests as anyone holding it)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from stigmer.core import PermissionDenied, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.testing import free_port, wait_for_port

from .conftest import SharedServer, find_leaks, start_shared_server

KEY = "whsec-attack-9f8e7d6c5b4a3210"
MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: pay}
spec:
  document: {dsl: 1.0.0, namespace: t, name: pay, version: 1.0.0}
  do:
    - keep: {set: {amount: '${ .amount }'}}
---
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: payments}
spec:
  target: {kind: Workflow, name: pay}
  secret: HOOK_KEY
"""

USER_TRIGGER = """\
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {name: mallory-hook}
spec:
  target: {kind: Workflow, name: pay}
  secret: HOOK_KEY
"""


@pytest_asyncio.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[SharedServer, str]]:
    port = free_port()
    server = await start_shared_server(tmp_path / "server-home", "--http-listen", f"127.0.0.1:{port}")
    await asyncio.to_thread(wait_for_port, port)
    admin = server.admin()
    try:
        await admin.set_secret(svc.SetSecretRequest(name="HOOK_KEY", value=KEY))
        for loaded in parse_manifest(MANIFESTS, "hooks.yaml"):
            await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await admin.close()
        await asyncio.to_thread(server.process.stop)


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()


async def _post(url: str, body: bytes, signature: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            url, content=body, headers={"content-type": "application/json", "x-hub-signature-256": signature}
        )


async def _ended(server: SharedServer, execution_id: str) -> execution_pb2.Execution:
    admin = server.admin()
    try:
        for _ in range(600):
            ex = await admin.get_execution(svc.GetExecutionRequest(id=execution_id))
            if ex.status.phase in (execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED):
                return ex
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    raise AssertionError(f"{execution_id} did not end")


async def test_a_replayed_webhook_with_an_altered_body_is_refused(hooked: tuple[SharedServer, str]) -> None:
    server, base = hooked
    body = json.dumps({"amount": 10}).encode()
    signature = _sign(body)  # what an eavesdropper captured
    genuine = await _post(f"{base}/hooks/payments", body, signature)
    assert genuine.status_code == 202, genuine.text
    await _ended(server, genuine.json()["id"])
    admin = server.admin()
    try:
        before = (await admin.list_executions(svc.ListExecutionsRequest())).executions
        for altered in (
            json.dumps({"amount": 10000}).encode(),
            body + b" ",
            body.replace(b"10", b"1"),
            json.dumps({"amount": 10, "to": "mallory"}).encode(),
        ):
            replay = await _post(f"{base}/hooks/payments", altered, signature)
            assert replay.status_code == 401, replay.text
        # the signature of one trigger's body does not open another path either
        other = await _post(f"{base}/hooks/PAYMENTS", body + b"\n", signature)
        assert other.status_code in (401, 404)
        after = (await admin.list_executions(svc.ListExecutionsRequest())).executions
        assert [e.metadata.id for e in after] == [e.metadata.id for e in before]
    finally:
        await admin.close()


async def test_the_webhook_key_is_never_recorded_or_answered(hooked: tuple[SharedServer, str]) -> None:
    server, base = hooked
    texts: list[str | bytes] = []
    marker = "card-4111111111111111-body-marker"
    body = json.dumps({"amount": 3, "card": marker}).encode()
    started = await _post(f"{base}/hooks/payments", body, _sign(body))
    texts.append(started.text)
    run = await _ended(server, started.json()["id"])
    assert run.status.phase == execution_pb2.PHASE_SUCCEEDED, run.status.error
    texts.append(json_format.MessageToJson(run))
    for wrong in ("", "sha256=" + "f" * 64):
        texts.append((await _post(f"{base}/hooks/payments", body, wrong)).text)
    admin = server.admin()
    try:
        got = await admin.get(svc.GetRequest(ref=run.spec.target))
        texts.append(json_format.MessageToJson(got))
        trigger = await admin.list(svc.ListRequest(kind="Trigger"))
        texts.append(json_format.MessageToJson(trigger))
        async for event in admin.watch_execution(svc.WatchExecutionRequest(execution_id=run.metadata.id)):
            texts.append(json_format.MessageToJson(event))
    finally:
        await admin.close()
    await asyncio.to_thread(server.process.stop)  # flush the log and the WAL
    assert find_leaks(KEY, paths=server.recorded(), texts=texts) == []
    # nothing of a body is logged (it is the run's input, so it is in the database)
    assert find_leaks(marker, paths=[server.process.log_path]) == []


async def test_a_user_cannot_make_a_trigger_with_a_secret_not_granted_to_them(
    hooked: tuple[SharedServer, str],
) -> None:
    server, base = hooked
    user = server.user()
    admin = server.admin()
    try:
        [loaded] = parse_manifest(USER_TRIGGER, "mallory.yaml")
        with pytest.raises(PermissionDenied, match="HOOK_KEY"):
            await user.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        # nor by taking over the admin's trigger to point it elsewhere
        [theirs] = parse_manifest(MANIFESTS.split("---\n")[1], "takeover.yaml")
        with pytest.raises(PermissionDenied, match="HOOK_KEY"):
            await user.apply(svc.ApplyRequest(resource=theirs.resource))  # type: ignore[arg-type]
        assert [
            r.trigger.metadata.name for r in (await admin.list(svc.ListRequest(kind="Trigger"))).resources
        ] == ["payments"]
        body = b"{}"
        missing = await _post(f"{base}/hooks/mallory-hook", body, _sign(body))
        assert missing.status_code == 404
        # once granted, the same apply works (the documented boundary)
        await admin.grant_secret(
            svc.GrantSecretRequest(name="HOOK_KEY", grant={"token_name": "mallory"})  # type: ignore[arg-type]
        )
        applied = await user.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        assert applied.resource.trigger.metadata.author == "mallory"
    finally:
        await user.close()
        await admin.close()


RUNAWAY = """\
apiVersion: stigmer.ai/v1
kind: Trigger
metadata: {{name: {name}}}
spec:
  target: {{kind: Workflow, name: pay}}
  secret: HOOK_KEY
  input: '{expression}'
"""


async def test_a_runaway_input_expression_cannot_stall_the_server(hooked: tuple[SharedServer, str]) -> None:
    """A trigger author's jq loops or grows without end: the request gets 422 after a bounded time
    (the expression runs in a child process that is killed), and the server keeps serving."""
    import time

    server, base = hooked
    admin = server.admin()
    try:
        for name, expression in (("spin", "def f: f; f"), ("grow", "[repeat(.)]")):
            [loaded] = parse_manifest(RUNAWAY.format(name=name, expression=expression), "runaway.yaml")
            await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    finally:
        await admin.close()
    body = b'{"amount": 1}'
    began = time.monotonic()
    answers = await asyncio.gather(
        _post(f"{base}/hooks/spin", body, _sign(body)),
        _post(f"{base}/hooks/grow", body, _sign(body)),
        _post(f"{base}/hooks/payments", body, _sign(body)),  # served meanwhile
    )
    spin, grow, fine = answers
    assert spin.status_code == 422 and "did not finish within 5 s" in spin.text, spin.text
    assert grow.status_code == 422, grow.text
    assert fine.status_code == 202, fine.text
    assert time.monotonic() - began < 30
    run = await _ended(server, fine.json()["id"])
    assert run.status.phase == execution_pb2.PHASE_SUCCEEDED
