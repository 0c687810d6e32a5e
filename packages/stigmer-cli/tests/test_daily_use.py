"""Issue 16's small defects through the real CLI (in-process): short secrets warn, token list
prints ages, `get all` lists every kind of resource."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_a_short_secret_is_stored_with_a_one_line_warning(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stigmer.core import MIN_SECRET_LENGTH

    value = "4" * (MIN_SECRET_LENGTH - 1)
    _stdin(monkeypatch, value + "\n")
    short = cli("secret", "set", "PIN")
    assert short.code == 0, short.err
    assert short.out.strip() == "secret/PIN set (version 1)"
    lines = short.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: PIN is shorter than") and "will not be masked in output" in lines[0]
    assert value not in short.err
    listed = cli("secret", "list", "-o", "json")
    assert [s["name"] for s in json.loads(listed.out)] == ["PIN"]

    _stdin(monkeypatch, "4" * MIN_SECRET_LENGTH)
    long_enough = cli("secret", "set", "PIN")
    assert long_enough.code == 0 and long_enough.err == ""


def test_token_list_prints_ages_not_raw_timestamps(cli: Callable[..., Any]) -> None:
    assert cli("token", "create", "--role", "user", "--name", "alice").code == 0
    table = cli("token", "list")
    assert table.code == 0, table.err
    header, row = table.out.strip().splitlines()
    assert header.split() == ["ID", "NAME", "ROLE", "AGE", "REVOKED"]
    assert re.search(r"\balice\s+user\s+\d+s$", row), row
    assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d", table.out)
    # -o json is unchanged: the full ISO timestamp
    (token,) = json.loads(cli("token", "list", "-o", "json").out)
    assert set(token) == {"id", "name", "role", "createdAt", "revoked"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", token["createdAt"])


def test_get_all_lists_every_kind(cli: Callable[..., Any]) -> None:
    assert cli("get", "all").out.strip() == "no resources"
    applied = cli("apply", "-f", str(EXAMPLES / "hello.yaml"), "-f", str(EXAMPLES / "assistant.yaml"))
    assert applied.code == 0, applied.err
    table = cli("get", "all")
    assert table.code == 0, table.err
    assert "did you mean" not in table.err
    firsts = [line.split()[0] for line in table.out.splitlines() if line.strip()]
    assert [f for f in firsts if "/" in f] == ["agent/assistant", "workflow/hello"]
    assert firsts.count("NAME") == 2  # one table per kind
    docs = json.loads(cli("get", "all", "-o", "json").out)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("Agent", "assistant"),
        ("Workflow", "hello"),
    ]
    assert cli("get", "all", "hello").code == 2


def test_unknown_kinds_still_suggest(cli: Callable[..., Any]) -> None:
    typo = cli("get", "agnet")
    assert typo.code == 1 and "did you mean 'agent'" in typo.err


FAILING = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: failing}
spec:
  document: {dsl: 1.0.0, namespace: t, name: failing, version: 1.0.0}
  do:
    - guarded:
        try:
          - boom:
              raise:
                error: {type: 'https://example.com/errors/nope', status: 503, title: Nope, detail: the detail 4711}
        catch:
          errors: {with: {status: 503}}
          retry: {delay: {milliseconds: 1}, limit: {attempt: {count: 2}}}
    - ask:
        call: agent
        with: {agent: nobody, message: hi}
"""
# apply refuses a workflow naming a missing agent, so the agent exists at apply and is deleted
# before the run: the run's own error for a missing agent is what these tests look at
NOBODY = "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: nobody}\nspec: {instructions: hi}\n"


def apply_then_lose_the_agent(cli: Callable[..., Any], path: Path) -> None:
    path.write_text(path.read_text() + "---\n" + NOBODY)
    assert cli("apply", "-f", str(path)).code == 0
    assert cli("delete", "agent", "nobody").code == 0


def test_a_failed_run_says_its_error_once(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "failing.yaml").write_text(FAILING)
    apply_then_lose_the_agent(cli, tmp_path / "failing.yaml")
    run = cli("run", "failing")
    assert run.code == 1
    both = run.out + run.err
    assert both.count("the detail 4711") == 1, both
    assert "retry 1/2 in 0.001s (nope)" in run.out and "retry 2/2" in run.out
    assert run.err.strip().splitlines()[-1].startswith("error: WorkflowExecution ")


def test_a_stigmer_error_in_a_task_has_no_status_class_prefix(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    ask_only = FAILING.split("    - guarded:")[0] + "    - ask:" + FAILING.split("    - ask:")[1]
    (tmp_path / "failing.yaml").write_text(ask_only)
    apply_then_lose_the_agent(cli, tmp_path / "failing.yaml")
    run = cli("run", "failing")
    assert run.code == 1
    assert "no Agent 'nobody' exists" not in run.out  # not before the report
    assert "NotFound" not in run.out + run.err
    assert run.err.count("no Agent 'nobody' exists") == 1


TWO = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: fine}
spec:
  document: {dsl: 1.0.0, namespace: t, name: fine, version: 1.0.0}
  do:
    - greet: {set: {ok: true}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: broken}
spec:
  document: {dsl: 1.0.0, namespace: t, name: broken, version: 1.0.0}
  do:
    - boom:
        raise:
          error: {type: 'https://example.com/errors/nope', status: 409, title: A rather long error title that goes on and on, detail: d}
"""


def _two_runs(cli: Callable[..., Any], tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "two.yaml").write_text(TWO)
    assert cli("apply", "-f", str(tmp_path / "two.yaml")).code == 0
    fine = json.loads(cli("run", "fine", "-o", "json").out)["id"]
    broken = json.loads(cli("run", "broken", "-o", "json").out)["id"]
    return fine, broken


def test_execution_list_shows_duration_and_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    fine, broken = _two_runs(cli, tmp_path)
    table = cli("execution", "list")
    assert table.code == 0, table.err
    header, first, second = table.out.strip().splitlines()
    assert header.split() == ["ID", "KIND", "TARGET", "PHASE", "AGE", "DURATION", "ERROR"]
    assert first.startswith(broken) and second.startswith(fine)
    assert re.search(r"FAILED\s+\d+s\s+\d+\.\ds\s+A rather long error title that goes on…$", first), first
    assert re.search(r"SUCCEEDED\s+\d+s\s+\d+\.\ds\s+-$", second), second
    # -o json keeps its shape
    assert [e["id"] for e in json.loads(cli("execution", "list", "-o", "json").out)] == [broken, fine]


def test_execution_list_filters(cli: Callable[..., Any], tmp_path: Path) -> None:
    fine, broken = _two_runs(cli, tmp_path)

    def ids(*args: str) -> list[str]:
        result = cli("execution", "list", "-o", "json", *args)
        assert result.code == 0, result.err
        return [e["id"] for e in json.loads(result.out)]

    assert ids("--phase", "failed") == [broken]
    assert ids("--phase", "failed", "--phase", "SUCCEEDED") == [broken, fine]
    assert ids("--target", "workflow/fine") == [fine]
    assert ids("--limit", "1") == [broken]
    assert ids("--since", "1h") == [broken, fine]
    assert ids("--until", "1h") == []
    assert ids("--since", "2000-01-01", "--until", "2999-01-01T00:00:00Z") == [broken, fine]
    assert ids("--label", "team=red") == []
    described = cli("describe", "workflow", "fine")  # its recent executions: a list without filters
    assert described.code == 0 and fine in described.out, described.err
    bad = cli("execution", "list", "--since", "yesterday")
    assert bad.code == 2 and "--since" in bad.err and "neither a duration" in bad.err
    assert cli("execution", "list", "--phase", "sleeping").code == 1


def test_execution_list_label_filter(cli: Callable[..., Any], tmp_path: Path) -> None:
    """Executions created with labels (through the API) are selected by them."""
    import asyncio

    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2
    from stigmer.sdk import AsyncStigmer

    (tmp_path / "two.yaml").write_text(TWO)
    assert cli("apply", "-f", str(tmp_path / "two.yaml")).code == 0

    async def create() -> list[str]:
        async with AsyncStigmer() as client:
            out = []
            for team in ("red", "blue"):
                spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="fine"))
                made = await client.backend.create_execution(
                    svc.CreateExecutionRequest(spec=spec, labels={"team": team})
                )
                out.append(made.metadata.id)
            return out

    red, blue = asyncio.run(create())
    listed = cli("execution", "list", "-o", "json", "--label", "team=red")
    assert [e["id"] for e in json.loads(listed.out)] == [red]
    listed = cli("execution", "list", "-o", "json", "-l", "team", "-l", "team!=red")
    assert [e["id"] for e in json.loads(listed.out)] == [blue]
    pending = cli("execution", "list", "--label", "team=blue")
    assert re.search(r"PENDING\s+\d+s\s+-\s+-$", pending.out.strip().splitlines()[1])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("1h30m", 5400)],
)
def test_since_durations(text: str, seconds: int) -> None:
    from datetime import UTC, datetime, timedelta

    from stigmer.cli.commands._executions import parse_when

    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert parse_when(text, now) == now - timedelta(seconds=seconds)
    assert parse_when("2026-12-05T10:00:00+02:00", now) == datetime(2026, 12, 5, 8, tzinfo=UTC)
    assert parse_when("2026-12-05", now) == datetime(2026, 12, 5, tzinfo=UTC)


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_since_never_raises_anything_but_a_clear_value_error(text: str) -> None:
    from datetime import datetime

    from stigmer.cli.commands._executions import parse_when

    try:
        assert isinstance(parse_when(text), datetime)
    except ValueError as exc:
        assert repr(text) in str(exc) or "too far" in str(exc)


class _Lines:
    """The lines of a pipe, read in a thread, taken until one is wanted."""

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self.lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in iter(stream.readline, ""):
                self.lines.put(line)

        threading.Thread(target=read, daemon=True).start()

    def until(self, wanted: Callable[[str], bool], timeout: float = 30) -> list[str]:
        seen: list[str] = []
        while True:
            line = self.lines.get(timeout=timeout)
            seen.append(line)
            if wanted(line):
                return seen


def test_execution_list_watch_prints_new_and_changed_rows_in_a_pipe(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    (tmp_path / "two.yaml").write_text(TWO)
    assert cli("apply", "-f", str(tmp_path / "two.yaml")).code == 0
    before = json.loads(cli("run", "fine", "-o", "json").out)["id"]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "execution", "list", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        lines = _Lines(watcher.stdout)
        first = lines.until(lambda line: line.startswith(before))
        assert first[0].split() == ["ID", "KIND", "TARGET", "PHASE", "AGE", "DURATION", "ERROR"]
        after = json.loads(cli("run", "broken", "-o", "json").out)["id"]
        seen = lines.until(lambda line: line.startswith(after) and "FAILED" in line)
        assert not any(line.startswith(before) for line in seen), "an unchanged row is not printed again"
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=20) == 0
        assert watcher.stderr is not None and watcher.stderr.read() == ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait(timeout=20)
        for pipe in (watcher.stdout, watcher.stderr):
            if pipe is not None:
                pipe.close()


def test_execution_list_watch_redraws_on_a_terminal_and_ctrl_c_exits_0(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    import os
    import sys

    import pexpect

    (tmp_path / "two.yaml").write_text(TWO)
    assert cli("apply", "-f", str(tmp_path / "two.yaml")).code == 0
    run_id = json.loads(cli("run", "fine", "-o", "json").out)["id"]
    env = {**os.environ, "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "stigmer.cli", "execution", "list", "-w"],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(30, 160),
    )
    child.expect_exact("\x1b[H\x1b[2J")
    child.expect(run_id)
    child.expect_exact("\x1b[H\x1b[2J")  # drawn again
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")


def test_execution_logs_timestamps(cli: Callable[..., Any], tmp_path: Path) -> None:
    fine, _ = _two_runs(cli, tmp_path)
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
    plain = cli("execution", "logs", fine).out.splitlines()
    for args in ((), ("--follow",)):
        shown = cli("execution", "logs", fine, "--timestamps", *args)
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        assert len(lines) == len(plain) >= 3
        assert all(stamp.match(line) for line in lines), lines
        assert [stamp.sub("", line, count=1) for line in lines] == plain
    events = [json.loads(x) for x in cli("execution", "logs", fine, "-o", "json").out.splitlines()]
    first = cli("execution", "logs", fine, "--timestamps").out.splitlines()[0]
    assert first.startswith(events[0]["time"][:23])  # the event's own time, to the millisecond


def test_each_for_iteration_has_its_own_row_in_execution_get(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: loop}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: loop, version: 1.0.0}\n"
        "  do:\n    - each:\n        for: {each: x, in: '${ [1, 2, 3] }'}\n"
        "        do:\n          - s: {set: {v: '${ $x }'}}\n"
    )
    assert cli("apply", "-f", str(tmp_path / "loop.yaml")).code == 0
    run = cli("run", "loop")
    assert run.code == 0, run.err
    assert [line for line in run.out.splitlines() if "each[" in line] == [
        f"{mark} each[{i}]" for i in range(3) for mark in ("▶", "✓")
    ]
    run_id = json.loads(cli("execution", "list", "-o", "json").out)[0]["id"]
    table = cli("execution", "get", run_id).out
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.startswith("each")}
    assert rows["each[0]"] == ["/do/0/each/for/0", "SUCCEEDED", "1"]
    assert rows["each[2]"] == ["/do/0/each/for/2", "SUCCEEDED", "1"]
