"""Ctrl-C and approval prompts in Lite, on a pseudo-terminal (``pexpect``), as a person meets them:
detaching never repeats a started step, a prompt answers to Ctrl-C at once and to a decision made
elsewhere, and a cancelled run leaves no task RUNNING."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pexpect
import pytest
from stigmer.testing import MCP_SERVER, Reply, ScriptedLLM, call, text, wait_for

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
if TYPE_CHECKING:
    Terminal = pexpect.spawn[str]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def spawn(env: dict[str, str], cwd: Path, *args: str) -> Terminal:
    """``stigmer ARGS`` on a pseudo-terminal (stdin, stdout and stderr all on it)."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "stigmer.cli", *args],
        env=env,
        cwd=str(cwd),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )


def matched(child: Terminal) -> str:
    """The first group of what ``expect`` just matched."""
    match = child.match
    assert isinstance(match, re.Match), match
    return str(match.group(1))


def finish(child: Terminal) -> int:
    """Read to the end; the exit status."""
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0))


def apply(stigmer: StigmerCli, tmp_path: Path, manifest: str) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    result = stigmer("apply", "-f", str(path))
    assert result.returncode == 0, result.stderr


def get(stigmer: StigmerCli, execution_id: str) -> dict[str, Any]:
    result = stigmer("execution", "get", execution_id, "-o", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_phase(
    stigmer: StigmerCli, execution_id: str, phases: set[str], timeout: float = 30
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal last
        last = get(stigmer, execution_id)
        return last["phase"] in phases

    wait_for(reached, timeout, f"execution {execution_id} to be one of {sorted(phases)}", every=0.2)
    return last


def events(stigmer: StigmerCli, execution_id: str) -> list[dict[str, Any]]:
    out = stigmer("execution", "logs", execution_id, "-o", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


WAITS = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: waits}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: waits, version: 1.0.0}
  do:
    - before: {set: {a: 1}}
    - nap: {wait: PT8S}
    - after: {set: {b: 2}}
"""


def test_detaching_during_a_wait_keeps_its_deadline(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path
) -> None:
    apply(stigmer, tmp_path, WAITS)
    child = spawn(stigmer_env, tmp_path, "workflow", "run", "waits")
    child.expect(r"(wex_\w+) started")
    execution_id = matched(child)
    child.expect(r"[▶>] nap")
    time.sleep(1.0)
    child.sendintr()
    child.expect("detached")
    assert finish(child) == 130
    done = wait_phase(stigmer, execution_id, {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert done["phase"] == "SUCCEEDED", done
    log = events(stigmer, execution_id)
    naps = [e for e in log if e["subject"] == "/do/1/nap" and e["type"].startswith("task.")]
    assert [e["type"] for e in naps] == ["task.started", "task.completed"], naps
    waited = (at(naps[1]["time"]) - at(naps[0]["time"])).total_seconds()
    # Detached after >= 1 s: a timer restarted by the background process would end at >= 1 + 8 s
    # (plus that process's start-up); a kept deadline ends at 8 s, or once the process is up.
    assert 7.9 <= waited < 9.0, f"the wait took {waited:.2f} s: its timer restarted on detach"


def agent_manifest(llm: ScriptedLLM, approve: bool = False) -> str:
    approvals = ", requireApproval: [delete_item]" if approve else ""
    return (
        "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: items}\n"
        f"spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}\n"
        "---\n"
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.base_url!r}}}\n"
        f"  mcpServers: [{{name: items, tools: [add, delete_item]{approvals}}}]\n"
    )


def test_detaching_during_a_model_request_sends_it_once(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM
) -> None:
    apply(stigmer, tmp_path, agent_manifest(llm))
    slow_call = call("add", a=2, b=3)
    slow_call.delay = 3.0
    llm.add(slow_call, text("2 + 3 = 5."))
    child = spawn(stigmer_env, tmp_path, "agent", "execute", "bot", "add 2 and 3")
    child.expect(r"(aex_\w+) started")
    execution_id = matched(child)
    wait_for(lambda: len(llm.requests) >= 1, 30, "the first model request", every=0.05)
    time.sleep(0.5)
    child.sendintr()
    child.expect("detaching: letting")
    child.expect("Ctrl-C again to stop it now")
    child.expect("detached")
    assert finish(child) == 130
    done = wait_phase(stigmer, execution_id, {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert done["phase"] == "SUCCEEDED", done
    assert done["output"] == "2 + 3 = 5."
    assert len(llm.requests) == 2, [r["messages"][-1] for r in llm.requests]  # each request sent once
    assert llm.requests[0]["messages"][-1]["content"] == "add 2 and 3"
    assert llm.requests[1]["messages"][-1]["role"] == "tool"
    calls = [e for e in events(stigmer, execution_id) if e["type"] == "tool.call"]
    assert len(calls) == 1


def test_detaching_during_the_last_model_request_lets_the_run_end_here(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM
) -> None:
    apply(stigmer, tmp_path, agent_manifest(llm))
    llm.add(Reply(text="Hello.", delay=2.0))
    child = spawn(stigmer_env, tmp_path, "agent", "execute", "bot", "hello")
    child.expect(r"(aex_\w+) started")
    execution_id = matched(child)
    wait_for(lambda: len(llm.requests) >= 1, 30, "the model request", every=0.05)
    child.sendintr()
    child.expect("detaching: letting the model request in flight")
    child.expect("the run ended before it was handed over")
    assert finish(child) == 0
    assert get(stigmer, execution_id)["phase"] == "SUCCEEDED"
    assert len(llm.requests) == 1  # sent once


def test_a_second_ctrl_c_stops_the_run_resumable(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM
) -> None:
    apply(stigmer, tmp_path, agent_manifest(llm))
    slow = Reply(text="late", delay=3.0)
    llm.add(slow)
    child = spawn(stigmer_env, tmp_path, "agent", "execute", "bot", "hello")
    child.expect(r"(aex_\w+) started")
    execution_id = matched(child)
    wait_for(lambda: len(llm.requests) >= 1, 30, "the first model request", every=0.05)
    child.sendintr()
    child.expect("Ctrl-C again to stop it now")
    child.sendintr()
    child.expect("stopped")
    child.expect(f"stigmer execution resume {execution_id}")
    assert finish(child) == 130
    assert get(stigmer, execution_id)["phase"] == "RUNNING"


# -- approvals ------------------------------------------------------------------------------------
def start_approval(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM
) -> tuple[Terminal, str]:
    apply(stigmer, tmp_path, agent_manifest(llm, approve=True))
    llm.add(call("delete_item", item="42"), text("Item 42 is gone."))
    child = spawn(stigmer_env, tmp_path, "agent", "execute", "bot", "delete item 42")
    child.expect(r"(aex_\w+) started")
    execution_id = matched(child)
    child.expect_exact("delete_item(")  # the call ...
    child.expect_exact("WAITING_APPROVAL")  # ... the phase ...
    child.expect_exact("approve? [y/N]")  # ... then the prompt
    return child, execution_id


def test_ctrl_c_at_the_approval_prompt_detaches_at_once(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM
) -> None:
    child, execution_id = start_approval(stigmer, stigmer_env, tmp_path, llm)
    child.sendintr()
    child.expect_exact(f"stigmer execution approve {execution_id}", timeout=10)
    assert finish(child) == 130
    assert "reason" not in (child.before or "")
    waiting = get(stigmer, execution_id)
    assert waiting["phase"] == "WAITING_APPROVAL"
    assert not [e for e in events(stigmer, execution_id) if e["type"] == "approval.resolved"]


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_a_decision_made_elsewhere_ends_the_prompt(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path, llm: ScriptedLLM, verdict: str
) -> None:
    child, execution_id = start_approval(stigmer, stigmer_env, tmp_path, llm)
    if verdict == "reject":
        llm.replies[-1] = text("Kept item 42.")
    elsewhere = stigmer("execution", verdict, execution_id)
    assert elsewhere.returncode == 0, elsewhere.stderr
    child.expect_exact(f"{verdict.rstrip('e')}ed elsewhere", timeout=20)
    assert finish(child) == 0
    done = get(stigmer, execution_id)
    assert done["phase"] == "SUCCEEDED"
    assert done["output"] == ("Item 42 is gone." if verdict == "approve" else "Kept item 42.")
    resolved = [e for e in events(stigmer, execution_id) if e["type"] == "approval.resolved"]
    assert len(resolved) == 1


# -- cancel ---------------------------------------------------------------------------------------
def test_a_cancelled_run_leaves_no_task_running(
    stigmer: StigmerCli, stigmer_env: dict[str, str], tmp_path: Path
) -> None:
    apply(stigmer, tmp_path, WAITS.replace("PT8S", "PT60S"))
    child = spawn(stigmer_env, tmp_path, "workflow", "run", "waits")
    child.expect(r"(wex_\w+) started")
    execution_id = matched(child)
    child.expect(r"[▶>] nap")
    cancelled = stigmer("execution", "cancel", execution_id)
    assert cancelled.returncode == 0, cancelled.stderr
    child.expect("cancelled")
    assert finish(child) == 1
    ended = get(stigmer, execution_id)
    assert ended["phase"] == "CANCELLED"
    tasks = {t["name"]: t["phase"] for t in ended["tasks"]}
    assert tasks == {"before": "SUCCEEDED", "nap": "CANCELLED"}, ended["tasks"]
