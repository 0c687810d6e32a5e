"""Executions through the CLI: failures, secrets for one run, detach, resume, cancel, events."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: hello}
spec:
  document: {dsl: 1.0.0, namespace: t, name: hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + (.name // "world") + "!" }'}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: uses-secret}
spec:
  document: {dsl: 1.0.0, namespace: t, name: uses-secret, version: 1.0.0}
  use: {secrets: [API_KEY]}
  do:
    - measure:
        set: {length: '${ $secrets.API_KEY | length }'}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: fails}
spec:
  document: {dsl: 1.0.0, namespace: t, name: fails, version: 1.0.0}
  do:
    - boom:
        raise:
          error: {type: 'https://example.com/errors/bad', status: 400, title: Bad input, detail: the input was bad}
"""
SECRET = "s3cr3t-value-for-one-run"


def _apply(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text(MANIFESTS)
    result = stigmer("apply", "-f", str(path))
    assert result.returncode == 0, result.stderr


def _create_pending(home: Path, name: str = "hello") -> str:
    async def go() -> str:
        backend = LocalBackend(home=home)
        try:
            ex = await backend.create_execution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
                )
            )
            return ex.metadata.id
        finally:
            await backend.close()

    return asyncio.run(go())


def test_failed_run_exits_1_with_the_error(stigmer: StigmerCli, tmp_path: Path) -> None:
    _apply(stigmer, tmp_path)
    live = stigmer("run", "fails")
    assert live.returncode == 1
    assert "boom" in live.stdout
    assert live.stderr.splitlines()[-1].endswith("failed at /do/0/boom: Bad input: the input was bad")
    result = stigmer("run", "fails", "-o", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["phase"] == "FAILED"
    assert data["output"] is None
    assert data["error"]["title"] == "Bad input" and data["error"]["status"] == 400


def test_run_time_secrets_and_env_never_show_the_value(
    stigmer: StigmerCli, tmp_path: Path, stigmer_home: Path
) -> None:
    _apply(stigmer, tmp_path)
    # --secret reads the value from stdin when there is no terminal
    result = stigmer(
        "run", "uses-secret", "--secret", "API_KEY", "--env", "REGION=eu", "-o", "json", input=SECRET + "\n"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output"] == {"length": len(SECRET)}
    assert data["env"] == {"REGION": "eu"}
    secret_file = tmp_path / "run.env"
    secret_file.write_text(f"# for this run\nAPI_KEY={SECRET}x\n")
    from_file = stigmer("run", "uses-secret", "--secret-file", str(secret_file), "-o", "json")
    assert json.loads(from_file.stdout)["output"] == {"length": len(SECRET) + 1}
    # without a value the run fails and says which secret is missing
    missing = stigmer("run", "uses-secret")
    assert missing.returncode == 1 and "API_KEY" in missing.stderr
    logs = stigmer("execution", "logs", data["id"], "-o", "json")
    for output in (
        result.stdout + result.stderr,
        logs.stdout,
        stigmer("execution", "get", data["id"]).stdout,
    ):
        assert SECRET not in output


def test_secret_commands(stigmer: StigmerCli, stigmer_home: Path) -> None:
    created = stigmer("secret", "set", "GH_TOKEN", "--description", "GitHub", input=SECRET)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "secret/GH_TOKEN set (version 1)"
    assert (
        stigmer("secret", "set", "GH_TOKEN", input=SECRET + "2\n").stdout.strip()
        == "secret/GH_TOKEN set (version 2)"
    )
    listed = stigmer("secret", "list")
    assert listed.stdout.splitlines()[0].split() == [
        "NAME", "VERSION", "UPDATED", "OWNER", "GRANTED", "TO", "DESCRIPTION",
    ]  # fmt: skip
    assert "(admins)" in listed.stdout.splitlines()[1]  # Lite: one person, the secret is the admins'

    assert "GH_TOKEN" in listed.stdout
    data = json.loads(stigmer("secret", "list", "-o", "json").stdout)
    assert [(s["name"], s["version"], s["description"]) for s in data] == [("GH_TOKEN", 2, "GitHub")]
    assert (data[0]["owner"], data[0]["grants"]) == ("", [])
    rotated = stigmer("secret", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted" in rotated.stdout
    bad = stigmer("secret", "set", "1BAD", input="x")
    assert bad.returncode == 1 and "secret name '1BAD'" in bad.stderr
    empty = stigmer("secret", "set", "EMPTY", input="")
    assert empty.returncode == 1 and "no value given for EMPTY" in empty.stderr
    for out in (created, listed, rotated):
        assert SECRET not in out.stdout + out.stderr
    assert SECRET.encode() not in (stigmer_home / "stigmer.db").read_bytes()
    assert stigmer("secret", "delete", "GH_TOKEN").stdout.strip() == "secret/GH_TOKEN deleted"
    assert json.loads(stigmer("secret", "list", "-o", "json").stdout) == []


def test_detach_then_follow_the_logs(stigmer: StigmerCli, tmp_path: Path, stigmer_home: Path) -> None:
    _apply(stigmer, tmp_path)
    detached = stigmer("run", "hello", "--detach", "--input", '{"name": "bg"}')
    assert detached.returncode == 0, detached.stderr
    ex_id = detached.stdout.strip()
    assert ex_id.startswith("wex_") and "\n" not in ex_id  # only the id
    followed = stigmer("execution", "logs", "-f", ex_id, timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert "phase SUCCEEDED" in followed.stdout
    data = json.loads(stigmer("execution", "get", ex_id, "-o", "json").stdout)
    assert data["phase"] == "SUCCEEDED" and data["output"] == {"greeting": "Hello, bg!"}
    assert (stigmer_home / "logs" / f"{ex_id}.log").exists()


def test_resume_cancel_and_send_event(stigmer: StigmerCli, tmp_path: Path, stigmer_home: Path) -> None:
    _apply(stigmer, tmp_path)
    pending = _create_pending(stigmer_home)
    assert json.loads(stigmer("execution", "get", pending, "-o", "json").stdout)["phase"] == "PENDING"
    sent = stigmer("execution", "send-event", pending, "com.example.ping", "--data", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"event com.example.ping sent to {pending}")
    events = [
        json.loads(line) for line in stigmer("execution", "logs", pending, "-o", "json").stdout.splitlines()
    ]
    assert events[-1]["type"] == "com.example.ping" and events[-1]["data"] == {"n": 1}

    resumed = stigmer("execution", "resume", pending, "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["phase"] == "SUCCEEDED"
    again = stigmer("execution", "resume", pending)
    assert again.returncode == 1
    assert "already finished (SUCCEEDED)" in again.stderr

    other = _create_pending(stigmer_home)
    cancelled = stigmer("execution", "cancel", other, "--reason", "not needed")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{other} cancelled"
    assert json.loads(stigmer("execution", "get", other, "-o", "json").stdout)["phase"] == "CANCELLED"
    refused = stigmer("execution", "approve", other)
    assert refused.returncode == 1 and "already finished" in refused.stderr
    listed = json.loads(stigmer("execution", "list", "--phase", "cancelled", "-o", "json").stdout)
    assert [e["id"] for e in listed] == [other]
    by_target = json.loads(stigmer("execution", "list", "--target", "workflow/hello", "-o", "json").stdout)
    assert {e["id"] for e in by_target} == {pending, other}


def test_approve_needs_a_waiting_execution(stigmer: StigmerCli, tmp_path: Path, stigmer_home: Path) -> None:
    _apply(stigmer, tmp_path)
    pending = _create_pending(stigmer_home)
    result = stigmer("execution", "approve", pending)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: execution {pending} is PENDING, not waiting for an approval"


SLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: slow}
spec:
  document: {dsl: 1.0.0, namespace: t, name: slow, version: 1.0.0}
  do:
    - first:
        set: {step: 1}
    - pause:
        wait: {seconds: 8}  # long enough that Ctrl-C lands mid-wait on a loaded machine
    - last:
        set: {step: 3, done: true}
"""


def _start_slow(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start `stigmer run slow` and wait until its second task has started."""
    import signal
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "run", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell without job control starts background jobs with SIGINT ignored, and children
        # inherit that; give the CLI the disposition a terminal would, so Ctrl-C reaches it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 60
    while "pause" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    return proc, seen


def test_ctrl_c_detaches_and_the_run_goes_on(
    stigmer: StigmerCli, tmp_path: Path, stigmer_env: dict[str, str]
) -> None:
    import signal

    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    assert stigmer("apply", "-f", str(path)).returncode == 0
    proc, _ = _start_slow(stigmer_env)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    hint = err.strip().splitlines()[-1]
    assert (
        hint.startswith("detached; execution wex_")
        and "re-attach with `stigmer execution logs -f wex_" in hint
    )
    ex_id = hint.split("stigmer execution logs -f ")[1].split("`")[0]
    # a background process took over: re-attaching follows the run to its end
    followed = stigmer("execution", "logs", "-f", ex_id, timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert "phase SUCCEEDED" in followed.stdout
    done = json.loads(stigmer("execution", "get", ex_id, "-o", "json").stdout)
    assert done["output"] == {"step": 3, "done": True}


def test_resume_a_killed_lite_run(stigmer: StigmerCli, tmp_path: Path, stigmer_env: dict[str, str]) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    assert stigmer("apply", "-f", str(path)).returncode == 0
    proc, _ = _start_slow(stigmer_env)
    proc.kill()  # no chance to hand over: the execution stays RUNNING
    proc.communicate(timeout=30)
    [listed] = json.loads(stigmer("execution", "list", "-o", "json").stdout)
    assert listed["phase"] == "RUNNING"
    assert [t["name"] for t in listed["tasks"] if t["phase"] == "SUCCEEDED"] == ["first"]

    resumed = stigmer("execution", "resume", listed["id"])
    assert resumed.returncode == 0, resumed.stderr
    assert "first" not in resumed.stdout  # continued after the last completed task
    assert '"done": true' in resumed.stdout
    again = stigmer("execution", "resume", listed["id"])
    assert again.returncode == 1 and "already finished (SUCCEEDED)" in again.stderr


def test_rotate_key_given_by_environment(stigmer: StigmerCli, tmp_path: Path) -> None:
    import base64
    import os
    import stat

    _apply(stigmer, tmp_path)
    old = base64.b64encode(os.urandom(32)).decode()
    env = {"STIGMER_MASTER_KEY": old}
    assert stigmer("secret", "set", "API_KEY", input=SECRET, env=env).returncode == 0
    refused = stigmer("secret", "rotate-key", env=env)
    assert refused.returncode == 1
    assert "--new-key-file" in refused.stderr
    key_file = tmp_path / "new.key"
    rotated = stigmer("secret", "rotate-key", "--new-key-file", str(key_file), env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    new = key_file.read_text().strip()
    assert new != old and new not in rotated.stdout + rotated.stderr
    ok = stigmer("run", "uses-secret", "-o", "json", env={"STIGMER_MASTER_KEY": new})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["output"] == {"length": len(SECRET)}
    stale = stigmer("run", "uses-secret", "-o", "json", env=env)
    assert stale.returncode == 1
