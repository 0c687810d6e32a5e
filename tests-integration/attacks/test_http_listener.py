"""Attacks on the server's HTTP listener (``--http-listen``): reading ``/metrics`` without a
token, with a made-up or forged one; listening in clear text on a non-loopback address; and a
secret a run used showing up in the metrics. Each against a real ``stigmer server`` process."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from stigmer.server import server_script
from stigmer.testing import free_port, wait_for_port

from .conftest import SharedServer, find_leaks, start_shared_server

SECRET = "sk-attack-metrics-4f3e2d1c0b"


@pytest_asyncio.fixture
async def metered(tmp_path: Path) -> AsyncIterator[tuple[SharedServer, str]]:
    port = free_port()
    server = await start_shared_server(tmp_path / "server-home", "--http-listen", f"127.0.0.1:{port}")
    await asyncio.to_thread(wait_for_port, port)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(server.process.stop)


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.read().decode()


async def test_metrics_refuse_a_missing_made_up_or_forged_token(metered: tuple[SharedServer, str]) -> None:
    server, base = metered
    assert await asyncio.to_thread(_get, f"{base}/healthz") == (200, "ok\n")  # probes need no token
    for token in (None, "", "tok_made_up.0000", server.user_token + "x"):
        code, body = await asyncio.to_thread(_get, f"{base}/metrics", token)
        assert code == 401, (token, body)
        assert "stigmer_" not in body
    allowed = await asyncio.to_thread(_get, f"{base}/metrics", server.user_token)  # any role may read
    assert allowed[0] == 200, allowed
    assert "stigmer_executions_created_total" in allowed[1] or "# HELP stigmer_" in allowed[1]


async def test_a_secret_a_run_used_is_not_in_the_metrics(
    metered: tuple[SharedServer, str], tmp_path: Path
) -> None:
    from google.protobuf import json_format
    from stigmer.core import parse_manifest
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2

    server, base = metered
    admin = server.admin()
    try:
        text = (
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: uses-key}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: uses-key, version: 1.0.0}\n"
            "  use: {secrets: [API_KEY]}\n"
            "  do:\n    - note: {set: {n: '${ $secrets.API_KEY | length }'}}\n"
        )
        for loaded in parse_manifest(text, "attack.yaml"):
            await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="uses-key"))
        json_format.ParseDict({}, spec.input)
        created = await admin.create_execution(
            svc.CreateExecutionRequest(spec=spec, runtime_secrets={"API_KEY": SECRET})
        )
        for _ in range(300):
            done = await admin.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
            if done.status.phase == execution_pb2.PHASE_SUCCEEDED:
                break
            await asyncio.sleep(0.1)
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    finally:
        await admin.close()
    code, metrics = await asyncio.to_thread(_get, f"{base}/metrics", server.admin_token)
    assert code == 200
    assert 'target="uses-key"' in metrics
    assert find_leaks(SECRET, texts=[metrics]) == []


@pytest.mark.parametrize("listen", ["0.0.0.0"])
def test_http_in_clear_text_on_a_non_loopback_address_is_refused(tmp_path: Path, listen: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [
            server_script(),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--http-listen",
            f"{listen}:{free_port()}",
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "without TLS" in done.stderr
    assert "Traceback" not in done.stderr
