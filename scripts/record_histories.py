"""Record the Temporal histories that the runners' replay tests replay.

    uv run python scripts/record_histories.py            # every history
    uv run python scripts/record_histories.py NAME ...   # some (names as in RECORDINGS)

Each history is one run of a scenario (an agent that asks for an approval; a workflow that calls
an agent and runs a sub-workflow; a workflow run started as the server starts it) on a real
Temporal dev server, with the runners' real workers and activities, a real LocalBackend and the
stand-in model of ``stigmer.testing``. It is written
as ``WorkflowHistory.to_json()`` to ``packages/<runner>/tests/histories/<name>.json``, where
``test_replay_histories.py`` replays it against the current workflow code.

A history is recorded by the code of one commit: the working tree for the current branch of each
``workflow.patched(...)`` call, and the last commit before the patch for its legacy branch (the
branch that workflows started by earlier releases take). For a commit, the tree is exported with
``git archive`` to a temporary folder, synced with ``uv sync --all-packages --frozen``, and the
scenario runs in that environment (this file, with ``stigmer.testing`` from the working tree).

Re-record when a workflow's code changes on purpose in a way that old histories cannot replay —
then that change also needs a ``workflow.patched`` branch and a legacy history of its own — and
add a recording here for every new ``workflow.patched`` call. A workflow whose path depends on its
start arguments (``stigmer.workflow``: what the server sends) has a recording per kind of start,
each by the last commit whose server sent it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTING_SRC = ROOT / "packages" / "stigmer-testing" / "src"


@dataclass(frozen=True)
class Recording:
    package: str  # the runner whose tests replay it
    scenario: str  # a key of SCENARIOS
    commit: str | None  # None: the working tree
    why: str


#: Before the ``stigmer.agent.per-activity`` patch (8cc68c3): the whole agent ran in one activity.
BEFORE_PER_ACTIVITY = "05bf45b3dbedff6549ccdbb0504db29a01e5a372"
#: Before the ``stigmer.workflow.child-workflows`` patch (2732931): ``call: agent`` children were
#: started by the server and awaited; ``run: workflow`` children were already child workflows.
BEFORE_CHILD_WORKFLOWS = "c56a5cf985dd8862814e0b6ee03261bfaf8c6ce1"

#: Before the server sent a workflow run's ``limits`` with its start (eaafd39): a start carrying
#: the ``document`` (and no ``limits``) ran the ``stigmer.workflow.start`` local activity first.
BEFORE_START_LIMITS = "a0098f8a1c839733a1205432ae048fd51121637e"

#: Before the ``stigmer.schedule.fire-waits`` patch: a fire workflow fired the slot (the store
#: judging overlap), had the server start the run, and ended at once.
BEFORE_FIRE_WAITS = "bc72dad6ee37fdd4cb409148f1a1405e48dbe080"

RECORDINGS: dict[str, Recording] = {
    "agent-approval": Recording(
        "stigmer-runner-agent",
        "agent_approval",
        None,
        "current code: the per-activity agent loop (patched stigmer.agent.per-activity)",
    ),
    "agent-approval-before-per-activity": Recording(
        "stigmer-runner-agent",
        "agent_approval",
        BEFORE_PER_ACTIVITY,
        "legacy branch of stigmer.agent.per-activity: one stigmer.agent.run activity per step",
    ),
    "schedule-fire": Recording(
        "stigmer-temporal",
        "schedule_fire",
        None,
        "current code: the fire workflow starts its run as a child and waits (patched fire-waits)",
    ),
    "schedule-fire-before-fire-waits": Recording(
        "stigmer-temporal",
        "schedule_fire",
        BEFORE_FIRE_WAITS,
        "legacy branch of stigmer.schedule.fire-waits: the fire ends once the server started the run",
    ),
    "workflow-children": Recording(
        "stigmer-runner-workflow",
        "workflow_children",
        None,
        "current code: call: agent and run: workflow as child workflows (patched child-workflows)",
    ),
    "workflow-call-agent-before-child-workflows": Recording(
        "stigmer-runner-workflow",
        "workflow_call_agent",
        BEFORE_CHILD_WORKFLOWS,
        "legacy branch of stigmer.workflow.child-workflows: a server-started agent child, awaited",
    ),
    "workflow-children-before-child-workflows": Recording(
        "stigmer-runner-workflow",
        "workflow_children",
        BEFORE_CHILD_WORKFLOWS,
        "legacy branch of stigmer.workflow.child-workflows with run: workflow (then a child workflow)",
    ),
    "workflow-server-start": Recording(
        "stigmer-runner-workflow",
        "workflow_server_start",
        None,
        "current code: the server's start carries document and limits; no activity before the "
        "interpreter, progress goes with the call: http effect's activity",
    ),
    "workflow-server-start-before-start-args": Recording(
        "stigmer-runner-workflow",
        "workflow_server_start",
        BEFORE_START_LIMITS,
        "the previous release's server start (document, no limits): the stigmer.workflow.start "
        "local activity runs before the interpreter",
    ),
}


def history_path(name: str) -> Path:
    return ROOT / "packages" / RECORDINGS[name].package / "tests" / "histories" / f"{name}.json"


# -- scenarios (run inside the environment of the recording's code) -------------------------------

AGENT_WORKFLOW = "stigmer.agent"
WORKFLOW_WORKFLOW = "stigmer.workflow"
APPROVAL_SIGNAL = "stigmer.approval"
KEY = b"r" * 32


def _first(*modules: str) -> Any:
    """The first of ``modules`` that imports (runner modules moved between releases)."""
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {modules} imports")


def _agent_worker() -> Any:
    import pydantic_ai  # noqa: F401  # imported before the first workflow task, as a worker process does

    return _first(
        "stigmer.runner.agent.temporal._worker", "stigmer.runner.agent._temporal_worker"
    ).agent_worker


def _workflow_worker() -> Any:
    module = _first("stigmer.runner.workflow.temporal._worker", "stigmer.runner.workflow._temporal_worker")
    return module.workflow_worker


async def _apply(backend: Any, text: str) -> None:
    from stigmer.core import parse_manifest
    from stigmer.proto.v1 import backend_service_pb2 as svc

    for loaded in parse_manifest(text, "recording.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))


async def _create(backend: Any, kind: str, name: str, message: str = "") -> str:
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2

    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind=kind, name=name), message=message)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    return str(created.metadata.id)


async def _wait_phase(backend: Any, execution_id: str, phase: int, timeout: float = 60) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    deadline = time.monotonic() + timeout
    while True:
        current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if current.status.phase == phase:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} did not reach phase {phase}")
        await asyncio.sleep(0.1)


async def _server_starts_agents(backend: Any, client: Any, queue: str, started: set[str]) -> None:
    """What ``stigmer server`` did for a ``call: agent`` child before child workflows: start the
    agent execution's workflow on the agents' queue."""
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2

    while True:
        found = await backend.list_executions(svc.ListExecutionsRequest(kind="AgentExecution"))
        for execution in found.executions:
            eid = execution.metadata.id
            if eid not in started and execution.status.phase == execution_pb2.PHASE_PENDING:
                started.add(eid)
                await client.start_workflow(AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue)
        await asyncio.sleep(0.1)


async def agent_approval(address: str, folder: Path) -> Any:
    """An agent calls an MCP tool that needs approval; the approval arrives as a signal."""
    from stigmer.backend.local import LocalBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2
    from stigmer.testing import MCP_SERVER, ScriptedLLM, call, text
    from temporalio.client import Client

    backend = LocalBackend(f"sqlite:///{folder / 'stigmer.db'}", home=folder, master_key=KEY)
    with ScriptedLLM([call("delete_item", item="42"), text("Item 42 is gone.")]) as llm:
        await _apply(
            backend,
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: items}\n"
            f"spec:\n  stdio:\n    command: {sys.executable!r}\n    args: [{MCP_SERVER!r}]\n",
        )
        await _apply(
            backend,
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\nspec:\n"
            "  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
            "  mcpServers: [{name: items, tools: [delete_item], requireApproval: [delete_item]}]\n",
        )
        eid = await _create(backend, "Agent", "bot", "delete item 42")
        client = await Client.connect(address, identity="history-recorder")
        queue = f"agents-{uuid.uuid4().hex[:8]}"
        async with _agent_worker()(client, queue, backend):
            handle = await client.start_workflow(
                AGENT_WORKFLOW, {"executionId": eid}, id=eid, task_queue=queue
            )
            waiting = await _wait_phase(backend, eid, execution_pb2.PHASE_WAITING_APPROVAL)
            await backend.submit_approval(
                svc.SubmitApprovalRequest(
                    execution_id=eid, approval_id=waiting.status.pending_approval.id, approved=True
                )
            )
            await handle.signal(APPROVAL_SIGNAL, {"phase": int(execution_pb2.PHASE_RUNNING)})
            result = await asyncio.wait_for(handle.result(), 90)
        assert result == {"phase": "PHASE_SUCCEEDED"}, result
        assert len(llm.requests) == 2, llm.requests
        history = await handle.fetch_history()
    await backend.close()
    return history


HELPER_AGENT = """\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: helper}}
spec:
  instructions: Help.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: {url!r}}}
"""
SHOUT = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: shout}
spec:
  document: {dsl: 1.0.0, namespace: demo, name: shout, version: 1.0.0}
  do:
    - up:
        set: {loud: '${ .text | ascii_upcase }'}
"""
ASK = """\
    - ask:
        call: agent
        with: {agent: helper, message: say hello}
"""
LOUDER = """\
    - louder:
        run:
          workflow: {namespace: demo, name: shout, version: 1.0.0, input: {text: '${ . }'}}
"""


async def _delegate(address: str, folder: Path, tasks: str) -> Any:
    from stigmer.backend.local import LocalBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2
    from stigmer.testing import ScriptedLLM
    from temporalio.client import Client

    backend = LocalBackend(f"sqlite:///{folder / 'stigmer.db'}", home=folder, master_key=KEY)
    with ScriptedLLM(default="hello there") as llm:
        await _apply(backend, HELPER_AGENT.format(url=llm.openai_base_url) + "---\n" + SHOUT)
        await _apply(
            backend,
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: delegate}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: demo, name: delegate, version: 1.0.0}\n"
            "  do:\n" + tasks,
        )
        eid = await _create(backend, "Workflow", "delegate")
        client = await Client.connect(address, identity="history-recorder")
        tag = uuid.uuid4().hex[:8]
        workflows, agents = f"workflows-{tag}", f"agents-{tag}"
        started: set[str] = set()
        server = asyncio.create_task(_server_starts_agents(backend, client, agents, started))
        try:
            async with (
                _workflow_worker()(client, workflows, backend),
                _agent_worker()(client, agents, backend),
            ):
                handle = await client.start_workflow(
                    WORKFLOW_WORKFLOW,
                    {"executionId": eid, "agentQueue": agents},
                    id=eid,
                    task_queue=workflows,
                )
                await asyncio.wait_for(handle.result(), 90)
        finally:
            server.cancel()
        done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status
        history = await handle.fetch_history()
    await backend.close()
    return history


async def workflow_children(address: str, folder: Path) -> Any:
    """A workflow calls an agent (``call: agent``), then runs a sub-workflow (``run: workflow``)."""
    return await _delegate(address, folder, ASK + LOUDER)


async def workflow_call_agent(address: str, folder: Path) -> Any:
    """A workflow calls an agent (``call: agent``)."""
    return await _delegate(address, folder, ASK)


async def schedule_fire(address: str, folder: Path) -> Any:
    """A Temporal Schedule (of a Stigmer Schedule) is triggered once; its ``stigmer.schedule.fire``
    workflow fires the slot and its run (a one-task workflow) runs to its end."""
    from stigmer.backend.local import LocalBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2
    from stigmer.temporal import TemporalSchedules, temporal_dispatch

    backend = LocalBackend(f"sqlite:///{folder / 'stigmer.db'}", home=folder, master_key=KEY)
    await _apply(
        backend,
        SHOUT.replace("'${ .text | ascii_upcase }'", "yes")
        + "---\napiVersion: stigmer.ai/v1\nkind: Schedule\nmetadata: {name: yearly}\nspec:\n"
        '  cron: "0 0 1 1 *"\n  target: {kind: Workflow, name: shout}\n',
    )
    _served, dispatcher = temporal_dispatch(backend, address)
    tag = uuid.uuid4().hex[:8]
    dispatcher.queues["WorkflowExecution"] = f"workflows-{tag}"
    schedules = TemporalSchedules(backend, dispatcher, queue=f"schedules-{tag}")
    stop = asyncio.Event()
    firing = asyncio.create_task(schedules.run(stop))
    client = await dispatcher.client()
    schedule = (await backend.list(svc.ListRequest(kind="Schedule"))).resources[0].schedule
    handle = client.get_schedule_handle(f"stigmer-schedule-{schedule.metadata.id}")
    try:
        async with _workflow_worker()(client, f"workflows-{tag}", backend):
            for _ in range(100):  # the worker syncs the schedules first
                if [s async for s in await client.list_schedules() if s.id == handle.id]:
                    break
                await asyncio.sleep(0.1)
            await handle.trigger()
            for _ in range(300):
                actions = (await handle.describe()).info.recent_actions
                if actions:
                    break
                await asyncio.sleep(0.1)
            fire = client.get_workflow_handle(actions[0].action.workflow_id)
            await asyncio.wait_for(fire.result(), 60)
            run = (await backend.list_executions(svc.ListExecutionsRequest())).executions[0]
            await _wait_phase(backend, run.metadata.id, execution_pb2.PHASE_SUCCEEDED)
            history = await fire.fetch_history()
    finally:
        await handle.delete()
        stop.set()
        await firing
        await backend.close()
    return history


class _Greeting:
    """A stdlib HTTP server on 127.0.0.1 (in a thread) answering every GET with a JSON greeting."""

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"message": "hello"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


GREET = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: greet}}
spec:
  document: {{dsl: 1.0.0, namespace: demo, name: greet, version: 1.0.0}}
  do:
    - fetch:
        call: http
        with: {{method: get, endpoint: {url!r}}}
    - loud:
        set: {{greeting: '${{ .message | ascii_upcase }}'}}
"""


async def workflow_server_start(address: str, folder: Path) -> Any:
    """A workflow run started as ``stigmer server`` starts it (``TemporalDispatcher.run_workflow``
    of the recording's code): a ``call: http`` effect to a local server, then a ``set`` task."""
    from stigmer.backend.local import LocalBackend
    from stigmer.core import from_value
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2
    from stigmer.temporal import temporal_dispatch

    backend = LocalBackend(f"sqlite:///{folder / 'stigmer.db'}", home=folder, master_key=KEY)
    with _Greeting() as url:
        await _apply(backend, GREET.format(url=f"{url}/greeting"))
        _served, dispatcher = temporal_dispatch(backend, address)
        tag = uuid.uuid4().hex[:8]
        workflows, agents = f"workflows-{tag}", f"agents-{tag}"
        dispatcher.queues["WorkflowExecution"] = workflows
        dispatcher.queues["AgentExecution"] = agents
        spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="greet"))
        execution = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        eid = str(execution.metadata.id)
        run = await dispatcher.run_workflow(execution)
        assert run["workflow"] == WORKFLOW_WORKFLOW and "document" in run["args"], run
        client = await dispatcher.client()
        async with _workflow_worker()(client, run["queue"], backend):
            handle = await client.start_workflow(
                run["workflow"], run["args"], id=eid, task_queue=run["queue"], memo=run["memo"]
            )
            await asyncio.wait_for(handle.result(), 90)
        done = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status
        assert from_value(done.status.output) == {"greeting": "HELLO"}, done.status.output
        history = await handle.fetch_history()
    await backend.close()
    return history


SCENARIOS: dict[str, Callable[[str, Path], Awaitable[Any]]] = {
    "schedule_fire": schedule_fire,
    "agent_approval": agent_approval,
    "workflow_children": workflow_children,
    "workflow_call_agent": workflow_call_agent,
    "workflow_server_start": workflow_server_start,
}


def _inside(scenario: str, address: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="stigmer-recording-") as folder:
        history = asyncio.run(SCENARIOS[scenario](address, Path(folder)))
    data = json.loads(history.to_json())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# -- driving the recordings ------------------------------------------------------------------------


def _environment(commit: str | None, scratch: Path) -> tuple[str, Path, dict[str, str]]:
    """(python, working directory, environment) that runs the code of ``commit``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMER_", "VIRTUAL_ENV"))}
    if commit is None:
        return sys.executable, ROOT, env
    tree = scratch / commit[:12]
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        subprocess.run(
            ["uv", "sync", "--all-packages", "--frozen", "--quiet"],
            cwd=tree,
            check=True,
            env={**env, "UV_PROJECT_ENVIRONMENT": str(tree / ".venv")},
        )
    env["PYTHONPATH"] = str(TESTING_SRC)  # stigmer.testing of the working tree (the stand-ins)
    return str(tree / ".venv" / "bin" / "python"), tree, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"histories to record (default: all): {', '.join(RECORDINGS)}"
    )
    parser.add_argument("--inside", nargs=3, metavar=("SCENARIO", "ADDRESS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        scenario, address, out = args.inside
        _inside(scenario, address, Path(out))
        return 0
    names = args.names or list(RECORDINGS)
    unknown = [n for n in names if n not in RECORDINGS]
    if unknown:
        parser.error(f"unknown histories: {', '.join(unknown)}")
    from stigmer.testing import temporal_dev_server

    with tempfile.TemporaryDirectory(prefix="stigmer-trees-") as scratch, temporal_dev_server() as server:
        for name in names:
            recording = RECORDINGS[name]
            python, cwd, env = _environment(recording.commit, Path(scratch))
            out = history_path(name)
            print(f"recording {name} ({recording.commit or 'working tree'}) -> {out.relative_to(ROOT)}")
            subprocess.run(
                [
                    python,
                    str(Path(__file__).resolve()),
                    "--inside",
                    recording.scenario,
                    server.address,
                    str(out),
                ],
                cwd=cwd,
                env=env,
                check=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
