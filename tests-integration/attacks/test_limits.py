"""Attacks on the limits and on jq's view of the process environment (issue 14, items 2 and 6).

As a ``user`` on a real shared ``stigmer server`` and in Lite through the real ``stigmer`` command:

- ``$ENV``/``env`` exfiltration of ``STIGMER_MASTER_KEY`` returns nothing, and nothing recorded
  holds the key in any encoding;
- a task whose ``then`` names itself, and ``[repeat(1)]``, end FAILED with the limit error within
  seconds, under the default limits;
- while one user's heavy expression computes on the server, an admin's ``List`` still answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

from .conftest import SharedServer, StigmerCli, find_leaks, start_shared_server

LIMIT_TYPE = "https://stigmer.ai/errors/limit"
TERMINAL = {execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED, execution_pb2.PHASE_CANCELLED}

MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: leak}
spec:
  document: {dsl: 1.0.0, namespace: attack, name: leak, version: 1.0.0}
  do:
    - leak:
        set:
          stigmer: '${ $ENV | with_entries(select(.key|startswith("STIGMER"))) }'
          key: '${ env.STIGMER_MASTER_KEY }'
          all: '${ [env[]] + [$ENV[]] | join(",") }'
          deep: '${ def f: $ENV; [range(1)] | f | tostring }'
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: spin}
spec:
  document: {dsl: 1.0.0, namespace: attack, name: spin, version: 1.0.0}
  do:
    - again: {set: {n: 1}, then: again}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: grow}
spec:
  document: {dsl: 1.0.0, namespace: attack, name: grow, version: 1.0.0}
  do:
    - grow: {set: {all: '${ [repeat(1)] }'}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: burn}
spec:
  document: {dsl: 1.0.0, namespace: attack, name: burn, version: 1.0.0}
  do:
    - burn: {set: {n: '${ last(range(1e12)) }'}}
"""


async def apply_as_user(server: SharedServer) -> None:
    user = server.user()
    for loaded in parse_manifest(MANIFESTS, "attack.yaml"):
        await user.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def start_as_user(server: SharedServer, name: str) -> str:
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
    created = await server.user().create_execution(svc.CreateExecutionRequest(spec=spec))
    return created.metadata.id


async def wait_end(server: SharedServer, execution_id: str, timeout: float = 60) -> execution_pb2.Execution:
    client = server.user()
    deadline = time.monotonic() + timeout
    while True:
        current = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.phase in TERMINAL:
            return current
        assert time.monotonic() < deadline, f"{execution_id} still {current.status.phase} after {timeout} s"
        await asyncio.sleep(0.1)


def assert_limit_error(error: Any, title: str) -> None:
    assert error.type == LIMIT_TYPE, error
    assert error.title == title
    assert error.status == 429
    assert "STIGMER_LIMIT_" in error.detail and "\n" not in error.detail


# ------------------------------------------------------------------------------------- server
async def test_env_exfiltration_on_the_server_returns_nothing(keyed_server: tuple[SharedServer, str]) -> None:
    server, key = keyed_server
    await apply_as_user(server)
    done = await wait_end(server, await start_as_user(server, "leak"))
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_SUCCEEDED", done.status.error
    output = json_format.MessageToDict(done.status.output)
    assert output == {"stigmer": {}, "key": None, "all": "", "deep": "{}"}
    assert find_leaks(key, paths=server.recorded(), texts=[json.dumps(output), str(done)]) == []


async def test_a_self_loop_on_the_server_ends_with_the_task_limit(shared_server: SharedServer) -> None:
    await apply_as_user(shared_server)
    started = time.monotonic()
    done = await wait_end(shared_server, await start_as_user(shared_server, "spin"), timeout=90)
    elapsed = time.monotonic() - started
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_FAILED"
    assert_limit_error(done.status.error, "Task limit exceeded")
    assert done.status.error.instance == "/do/0/again"
    assert done.status.last_sequence <= 100_010  # 2 events a task up to the default 50,000 tasks
    assert elapsed < 60, f"took {elapsed:.1f} s"


async def test_repeat_on_the_server_ends_with_a_jq_limit(shared_server: SharedServer) -> None:
    await apply_as_user(shared_server)
    started = time.monotonic()
    done = await wait_end(shared_server, await start_as_user(shared_server, "grow"))
    assert time.monotonic() - started < 15
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_FAILED"
    assert done.status.error.title in ("jq time limit exceeded", "jq memory limit exceeded")
    assert_limit_error(done.status.error, done.status.error.title)


@pytest.mark.parametrize(
    ("name", "title"), [("burn", "jq time limit exceeded"), ("spin", "Task limit exceeded")]
)
async def test_the_server_answers_an_admin_while_a_heavy_run_computes(
    shared_server: SharedServer, name: str, title: str
) -> None:
    await apply_as_user(shared_server)
    admin = shared_server.admin()
    await admin.list(svc.ListRequest(kind="Workflow"))  # connected and warm
    execution_id = await start_as_user(shared_server, name)
    latencies: list[float] = []
    while True:
        began = time.monotonic()
        current = await admin.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.phase in TERMINAL:
            break
        listed = await admin.list(svc.ListRequest(kind="Workflow"))
        latencies.append(time.monotonic() - began)
        assert {r.workflow.metadata.name for r in listed.resources} >= {"burn", "spin"}
        await asyncio.sleep(0.05)
    assert_limit_error(current.status.error, title)
    assert len(latencies) >= 10  # the calls ran while it computed (seconds, under the defaults)
    assert max(latencies) < 1.0, f"slowest admin Get + List took {max(latencies):.2f} s"


async def test_the_admin_sets_the_limits_of_a_shared_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_LIMIT_TASKS", "500")  # the admin's setting when starting the server
    server = await start_shared_server(tmp_path / "server-home")
    try:
        await apply_as_user(server)
        done = await wait_end(server, await start_as_user(server, "spin"))
    finally:
        await asyncio.to_thread(server.process.stop)
    assert_limit_error(done.status.error, "Task limit exceeded")
    assert "more than 500 tasks" in done.status.error.detail
    assert done.status.last_sequence < 1_100


def test_env_exfiltration_in_lite_returns_nothing(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"STIGMER_MASTER_KEY": key}
    (tmp_path / "attack.yaml").write_text(MANIFESTS)
    assert stigmer("apply", "-f", str(tmp_path / "attack.yaml"), env=env).returncode == 0
    result = stigmer("run", "leak", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["phase"] == "SUCCEEDED"
    assert shown["output"] == {"stigmer": {}, "key": None, "all": "", "deep": "{}"}
    assert find_leaks(key, paths=[stigmer_home], texts=[result.stdout, result.stderr]) == []


def test_a_self_loop_and_repeat_in_lite_end_with_limit_errors(stigmer: StigmerCli, tmp_path: Path) -> None:
    (tmp_path / "attack.yaml").write_text(MANIFESTS)
    assert stigmer("apply", "-f", str(tmp_path / "attack.yaml")).returncode == 0
    for name, titles, bound in [
        ("spin", ("Task limit exceeded",), 60.0),
        ("grow", ("jq time limit exceeded", "jq memory limit exceeded"), 20.0),
    ]:
        started = time.monotonic()
        result = stigmer("run", name, "-o", "json", timeout=120)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        shown = json.loads(result.stdout)
        assert shown["phase"] == "FAILED"
        assert shown["error"]["type"] == LIMIT_TYPE and shown["error"]["title"] in titles
        assert "STIGMER_LIMIT_" in shown["error"]["detail"]
        assert elapsed < bound, f"{name} took {elapsed:.1f} s"
