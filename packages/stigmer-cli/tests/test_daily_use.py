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


def test_a_failed_run_says_its_error_once(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "failing.yaml").write_text(FAILING)
    assert cli("apply", "-f", str(tmp_path / "failing.yaml")).code == 0
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
    assert cli("apply", "-f", str(tmp_path / "failing.yaml")).code == 0
    run = cli("run", "failing")
    assert run.code == 1
    assert "no Agent 'nobody' exists" not in run.out  # not before the report
    assert "NotFound" not in run.out + run.err
    assert run.err.count("no Agent 'nobody' exists") == 1
