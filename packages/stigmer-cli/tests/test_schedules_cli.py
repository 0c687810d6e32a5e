"""``stigmer schedule ...`` and ``get schedule`` in a local context (issue 21); the clock is
given with ``run-due --now``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Cli = Callable[..., Any]

MANIFESTS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: tick}
spec:
  document: {dsl: 1.0.0, namespace: t, name: tick, version: 1.0.0}
  do:
    - hi: {set: {hi: '${ .who }'}}
---
apiVersion: stigmer.ai/v1
kind: Schedule
metadata: {name: nightly}
spec:
  every: 1m
  target: {kind: Workflow, name: tick}
  input: {who: cron}
"""


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_schedule_commands_fire_each_slot_once_and_label_the_runs(cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "s.yaml"
    manifest.write_text(MANIFESTS)
    assert cli("apply", "-f", str(manifest)).code == 0
    listed = cli("schedule", "list")
    assert listed.code == 0 and "nightly" in listed.out and "every 1m -> workflow/tick, next " in listed.out
    got = cli("get", "schedule")
    assert "SCHEDULE" in got.out and "every 1m -> workflow/tick" in got.out

    slot = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    now = stamp(slot + timedelta(seconds=5))
    fired = cli("schedule", "run-due", "--now", now, "-o", "json")
    assert fired.code == 0, fired.err
    [one] = json.loads(fired.out)
    assert (one["schedule"], one["slot"], one["outcome"]) == ("nightly", stamp(slot), "fired")
    run = json.loads(cli("execution", "get", one["executionId"], "-o", "json").out)
    assert run["phase"] == "SUCCEEDED" and run["output"] == {"hi": "cron"}
    again = cli("schedule", "run-due", "--now", now, "-o", "json")
    assert json.loads(again.out) == []  # the slot fired already

    described = json.loads(cli("schedule", "describe", "nightly", "-o", "json").out)
    assert described["enabled"] is True and len(described["nextFires"]) == 3
    assert described["lastRuns"][0]["executionId"] == one["executionId"]
    assert described["lastRuns"][0]["phase"] == "SUCCEEDED"
    listed_runs = cli("execution", "list", "-l", "stigmer.ai/schedule=nightly", "-o", "json")
    assert [r["id"] for r in json.loads(listed_runs.out)] == [one["executionId"]]

    assert cli("schedule", "pause", "nightly").out.strip() == "schedule/nightly paused"
    later = stamp(slot + timedelta(minutes=1, seconds=5))
    assert json.loads(cli("schedule", "run-due", "--now", later, "-o", "json").out) == []
    assert json.loads(cli("schedule", "describe", "nightly", "-o", "json").out)["nextFires"] == []
    triggered = cli("schedule", "trigger", "nightly", "-o", "json")
    assert triggered.code == 0 and json.loads(triggered.out)["phase"] == "SUCCEEDED"
    assert cli("schedule", "resume", "nightly").code == 0

    back = cli(
        "schedule",
        "backfill",
        "nightly",
        "--from",
        stamp(slot + timedelta(minutes=5)),
        "--to",
        stamp(slot + timedelta(minutes=8)),
        "-o",
        "json",
    )
    assert back.code == 0, back.err
    assert [f["outcome"] for f in json.loads(back.out)] == ["fired"] * 3

    missing = cli("schedule", "describe", "nope")
    assert missing.code == 1 and "no schedule 'nope'" in missing.err
    bad = cli("schedule", "backfill", "nightly", "--from", "yesterday")
    assert bad.code == 2 and "--from: 'yesterday' is not a time" in bad.err
    assert cli("schedule", "delete", "nightly").code == 0
    assert "no schedules" in cli("schedule", "list").err


def test_a_bad_cron_is_refused_at_apply_with_one_line(cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(MANIFESTS.replace("every: 1m", "cron: '61 * * * *'"))
    result = cli("apply", "-f", str(manifest))
    assert result.code == 1
    assert "spec.cron" in result.err and "not a cron expression" in result.err
