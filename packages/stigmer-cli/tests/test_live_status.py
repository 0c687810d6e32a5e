"""The live status line of `stigmer run` on a pseudo-terminal: a step running longer than a second
shows what is awaited and for how long; nothing of it in a pipe or with ``-o json``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from stigmer.testing import Reply, ScriptedLLM

SLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: slow}
spec:
  document: {dsl: 1.0.0, namespace: t, name: slow, version: 1.0.0}
  do:
    - nap: {wait: {milliseconds: 2600}}
    - done: {set: {ok: true}}
"""


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def _seconds(child: pexpect.spawn[str]) -> int:
    """The number the last ``expect`` pattern captured."""
    match = child.match
    assert isinstance(match, re.Match), match
    return int(match.group(1))


def _spawn(*args: str) -> pexpect.spawn[str]:
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    return pexpect.spawn(
        sys.executable,
        ["-m", "stigmer.cli", *args],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )


def _apply(cli: Callable[..., Any], tmp_path: Path, text: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    applied = cli("apply", "-f", str(tmp_path / "m.yaml"))
    assert applied.code == 0, applied.err


def test_a_long_task_shows_its_name_and_elapsed_time(cli: Callable[..., Any], tmp_path: Path) -> None:
    _apply(cli, tmp_path, SLOW)
    child = _spawn("run", "slow")
    child.expect(r"nap running… (\d+)s")
    first = _seconds(child)
    child.expect(r"nap running… (\d+)s")
    assert first >= 1 and _seconds(child) >= first
    child.expect(r"\r\x1b\[K(\x1b\[[0-9;]*m)*✓ nap")  # the status line is wiped before the next line
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "✓ done" in (child.before or "")


def test_an_agent_run_says_it_waits_for_the_model(
    cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM
) -> None:
    _apply(
        cli,
        tmp_path,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.base_url!r}}}\n",
    )
    llm.add(Reply(text="Done thinking.", delay=2.5))
    child = _spawn("agent", "execute", "bot", "think hard")
    child.expect(r"waiting for the model… (\d+)s")
    assert _seconds(child) >= 1
    child.expect("Done thinking.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_no_status_line_in_a_pipe_or_with_json(cli: Callable[..., Any], tmp_path: Path) -> None:
    _apply(cli, tmp_path, SLOW)
    piped = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "run", "slow"], capture_output=True, text=True, timeout=60
    )
    assert piped.returncode == 0, piped.stderr
    assert "running" not in piped.stdout + piped.stderr and "\x1b" not in piped.stdout
    child = _spawn("run", "slow", "-o", "json")
    child.expect(pexpect.EOF)
    child.close()
    text = child.before or ""
    assert child.exitstatus == 0
    assert "running" not in text and "\x1b[K" not in text
    assert json.loads(text[text.index("{") :])["phase"] == "SUCCEEDED"
    assert not re.search(r"\d+s\r", text)
