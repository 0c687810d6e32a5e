"""``stigmer event send`` in Lite: the event starts the `schedule.on` runs of the embedded store and
runs them here (like `stigmer run`), wakes a `listen` task of a run waiting in another process, and
bad input gets one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

WORKFLOWS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: on-paid}
spec:
  document: {dsl: 1.0.0, namespace: t, name: on-paid, version: 1.0.0}
  schedule:
    on:
      any:
        - with: {type: com.acme.order.paid}
  do:
    - keep: {set: {order: '${ .data.order }', subject: '${ .subject }'}}
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
"""


def _apply(stigmer: StigmerCli, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOWS)
    applied = stigmer("apply", "-f", str(tmp_path / "wf.yaml"))
    assert applied.returncode == 0, applied.stderr


def test_event_send_starts_schedule_on_runs_here(stigmer: StigmerCli, tmp_path: Path) -> None:
    _apply(stigmer, tmp_path)
    (tmp_path / "data.json").write_text('{"order": 7}')
    sent = stigmer(
        "event", "send", "--type", "com.acme.order.paid", "--source", "cli", "--data", "@data.json",
        "--subject", "order-7", "-o", "json",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    assert result["delivered"] == []
    [run] = result["started"]
    assert run["phase"] == "SUCCEEDED" and run["output"] == {"order": 7, "subject": "order-7"}
    assert run["labels"] == {"stigmer.ai/event-type": "com.acme.order.paid"}

    other = stigmer("event", "send", "--type", "com.acme.order.refunded", "--source", "cli")
    assert other.returncode == 0, other.stderr
    assert "delivered to 0 execution(s), started 0 run(s)" in other.stdout
    listed = json.loads(stigmer("execution", "list", "-o", "json").stdout)
    assert [e["id"] for e in listed] == [run["id"]]


def test_event_send_wakes_a_listen_in_another_process(
    stigmer: StigmerCli, tmp_path: Path, stigmer_env: dict[str, str]
) -> None:
    _apply(stigmer, tmp_path)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "run", "waiter", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=stigmer_env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until its execution exists
            listed = json.loads(stigmer("execution", "list", "-o", "json").stdout or "[]")
            if listed:
                break
            time.sleep(0.2)
        [execution] = listed
        sent = stigmer(
            "event", "send", "--type", "com.acme.approved", "--source", "cli", "--data", '{"who": "ada"}'
        )
        assert sent.returncode == 0, sent.stderr
        assert f"delivered to {execution['id']}" in sent.stdout
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert json.loads(out)["output"] == {"who": "ada"}


def test_event_send_bad_input_is_one_clear_line(stigmer: StigmerCli, tmp_path: Path) -> None:
    bad_json = stigmer("event", "send", "--type", "t", "--source", "s", "--data", "{")
    assert bad_json.returncode == 1
    assert bad_json.stderr.startswith("error: --data: invalid JSON") and "Traceback" not in bad_json.stderr
    missing = stigmer("event", "send", "--type", "t")
    assert missing.returncode == 2 and "--source" in missing.stderr
    empty = stigmer("event", "send", "--type", " ", "--source", "s")
    assert empty.returncode == 2 and "--type and --source" in empty.stderr
    long_type = stigmer("event", "send", "--type", "t" * 65, "--source", "s")
    assert long_type.returncode == 1 and "longer than 64" in long_type.stderr


def test_get_triggers_shows_the_webhook_path_target_and_key_name(stigmer: StigmerCli, tmp_path: Path) -> None:
    _apply(stigmer, tmp_path)
    (tmp_path / "trigger.yaml").write_text(
        "apiVersion: stigmer.ai/v1\nkind: Trigger\nmetadata: {name: paid-hook}\n"
        "spec: {target: {kind: Workflow, name: on-paid}, secret: HOOK_KEY, enabled: false}\n"
    )
    applied = stigmer("apply", "-f", str(tmp_path / "trigger.yaml"))
    assert applied.returncode == 0 and "trigger/paid-hook created" in applied.stdout, applied.stderr
    listed = stigmer("get", "triggers")
    assert "/hooks/paid-hook -> workflow/on-paid, key HOOK_KEY, disabled" in listed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Trigger\nmetadata: {name: x}\nspec: {target: {kind: Workflow, name: on-paid}}\n"
    )
    refused = stigmer("apply", "-f", str(bad))
    assert refused.returncode == 1 and "spec.secret" in refused.stderr and "Traceback" not in refused.stderr


def test_event_send_exits_1_when_a_run_it_started_failed(stigmer: StigmerCli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: on-bad}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: on-bad, version: 1.0.0}\n"
        "  schedule: {on: {one: {with: {type: com.acme.bad}}}}\n"
        "  do:\n    - fail:\n        raise:\n          error: {type: https://acme.example/bad, status: 400, title: Bad order}\n"
    )
    assert stigmer("apply", "-f", str(tmp_path / "bad.yaml")).returncode == 0
    sent = stigmer("event", "send", "--type", "com.acme.bad", "--source", "cli")
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "started 1 run(s)" in sent.stdout and " FAILED" in sent.stdout
