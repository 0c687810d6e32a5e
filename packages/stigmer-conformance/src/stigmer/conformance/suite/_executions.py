"""Conformance: executions, the event log, phases, watching, cancelling and approvals."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from google.protobuf import struct_pb2
from stigmer.conformance._builders import (
    agent,
    apply,
    environment,
    expect_error,
    mcp_server,
    new_execution,
    session,
    set_phase,
    unique,
    unique_secret,
    workflow,
)
from stigmer.core import TERMINAL_PHASES, Backend, FailedPrecondition, InvalidArgument, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2

__all__ = ["TestApprovals", "TestCancel", "TestExecutions", "TestPhases", "TestStatusUpdates", "TestWatch"]

P = ex.Phase
PENDING, RUNNING, WAITING = int(P.PHASE_PENDING), int(P.PHASE_RUNNING), int(P.PHASE_WAITING_APPROVAL)
SUCCEEDED, FAILED, CANCELLED = int(P.PHASE_SUCCEEDED), int(P.PHASE_FAILED), int(P.PHASE_CANCELLED)
TERMINAL = tuple(sorted(TERMINAL_PHASES))
ALLOWED: dict[int, set[int]] = {
    PENDING: {RUNNING, CANCELLED, FAILED},
    RUNNING: {WAITING, SUCCEEDED, FAILED, CANCELLED, RUNNING},
    WAITING: {RUNNING, FAILED, CANCELLED},
    SUCCEEDED: set(),
    FAILED: set(),
    CANCELLED: set(),
}
# how to reach each phase from PENDING
PATHS: dict[int, tuple[int, ...]] = {
    PENDING: (),
    RUNNING: (RUNNING,),
    WAITING: (RUNNING, WAITING),
    SUCCEEDED: (RUNNING, SUCCEEDED),
    FAILED: (RUNNING, FAILED),
    CANCELLED: (CANCELLED,),
}


def _event(type_: str, text: str = "", sequence: int = 0) -> ex.ExecutionEvent:
    return ex.ExecutionEvent(type=type_, text=text, sequence=sequence)


async def _agent(backend: Backend) -> str:
    name = unique("agent")
    await apply(backend, agent(name))
    return name


async def _events(backend: Backend, execution_id: str, after: int = 0) -> list[ex.ExecutionEvent]:
    async def collect() -> list[ex.ExecutionEvent]:
        req = svc.WatchExecutionRequest(execution_id=execution_id, after_sequence=after)
        return [e async for e in backend.watch_execution(req)]

    return await asyncio.wait_for(collect(), 10)


async def _collect(stream: AsyncIterator[ex.ExecutionEvent]) -> list[ex.ExecutionEvent]:
    return [e async for e in stream]


async def _update(
    backend: Backend, execution_id: str, *events: ex.ExecutionEvent, **fields: object
) -> ex.Execution:
    req = svc.UpdateExecutionStatusRequest(execution_id=execution_id, events=list(events), **fields)  # type: ignore[arg-type]
    return await backend.update_execution_status(req)


@pytest.mark.asyncio
class TestExecutions:
    async def test_create_refuses_unknown_targets(self, backend: Backend) -> None:
        missing = unique("missing")
        await expect_error(NotFound, new_execution(backend, "Agent", missing), missing)
        await expect_error(NotFound, new_execution(backend, "Workflow", missing), missing)
        env = unique("env")
        await apply(backend, environment(env))
        await expect_error(InvalidArgument, new_execution(backend, "Environment", env))

    async def test_create_pins_target_version(self, backend: Backend) -> None:
        name = unique("agent")
        await apply(backend, agent(name, instructions="one"))
        await apply(backend, agent(name, instructions="two"))
        run = await new_execution(backend, "Agent", name)
        assert run.kind == "AgentExecution" and run.metadata.id.startswith("aex_")
        assert run.status.phase == PENDING
        assert run.spec.target_version == 2
        assert run.spec.target.id.startswith("agt_")
        await apply(backend, agent(name, instructions="three"))
        again = await backend.get_execution(svc.GetExecutionRequest(id=run.metadata.id))
        assert again.spec.target_version == 2
        got = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Agent", name=name)))
        assert got.agent.status.execution_count == 1
        assert got.agent.status.last_execution_id == run.metadata.id

    async def test_workflow_execution(self, backend: Backend) -> None:
        name = unique("wf")
        await apply(backend, workflow(name))
        run = await new_execution(backend, "Workflow", name)
        assert run.kind == "WorkflowExecution" and run.metadata.id.startswith("wex_")
        assert run.spec.target_version == 1

    async def test_secret_refs_are_computed_from_declarations(self, backend: Backend) -> None:
        a, e1, e2, m, r, forged = (
            unique_secret(x) for x in ("AGENT", "ENV1", "ENV2", "MCP", "RUN", "FORGED")
        )
        env, mcp, name = unique("env"), unique("mcp"), unique("agent")
        await apply(backend, environment(env, secrets=[e1, e2]))
        await apply(backend, mcp_server(mcp, secrets=[m]))
        await apply(backend, agent(name, environments=[env], mcp_servers=[mcp], secrets=[a]))
        spec = ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name=name), secret_refs=[forged])
        run = await backend.create_execution(svc.CreateExecutionRequest(spec=spec, runtime_secrets={r: "v"}))
        assert sorted(run.spec.secret_refs) == sorted([a, e1, e2, m, r])
        wf, w = unique("wf"), unique_secret("WF")
        await apply(backend, workflow(wf, secrets=[w]))
        run = await new_execution(backend, "Workflow", wf)
        assert list(run.spec.secret_refs) == [w]
        await expect_error(
            InvalidArgument,
            new_execution(backend, "Agent", name, runtime_secrets={"not-valid": "x"}),
            "not-valid",
        )

    async def test_get_and_list(self, backend: Backend) -> None:
        name = await _agent(backend)
        runs = [await new_execution(backend, "Agent", name) for _ in range(5)]
        await expect_error(NotFound, backend.get_execution(svc.GetExecutionRequest(id="aex_unknown")))
        target = meta_pb2.ResourceRef(kind="Agent", name=name)
        seen: list[str] = []
        token = ""
        while True:
            page = await backend.list_executions(
                svc.ListExecutionsRequest(target=target, page_size=2, page_token=token)
            )
            seen.extend(e.metadata.id for e in page.executions)
            token = page.next_page_token
            if not token:
                break
        assert seen == [r.metadata.id for r in reversed(runs)], "newest first, no repeats, no gaps"
        await set_phase(backend, runs[0].metadata.id, RUNNING)
        running = await backend.list_executions(
            svc.ListExecutionsRequest(target=target, phase=P.PHASE_RUNNING)
        )
        assert [e.metadata.id for e in running.executions] == [runs[0].metadata.id]
        agents = await backend.list_executions(
            svc.ListExecutionsRequest(kind="AgentExecution", target=target)
        )
        assert len(agents.executions) == 5
        none = await backend.list_executions(
            svc.ListExecutionsRequest(kind="WorkflowExecution", target=target)
        )
        assert len(none.executions) == 0

    async def test_list_filters(self, backend: Backend) -> None:
        """Phases (any of), a label selector and a creation window narrow a list; pages still
        follow each other newest first."""
        name = await _agent(backend)
        target = meta_pb2.ResourceRef(kind="Agent", name=name)
        runs = [
            await new_execution(backend, "Agent", name, labels={"team": team, "n": str(i)})
            for i, team in enumerate(["red", "blue", "red", "red", "blue"])
        ]
        ids = [r.metadata.id for r in runs]
        await set_phase(backend, ids[0], RUNNING)
        await set_phase(backend, ids[1], RUNNING, FAILED)
        await set_phase(backend, ids[3], RUNNING, SUCCEEDED)

        async def listed(**kw: object) -> list[str]:
            out: list[str] = []
            token = ""
            while True:
                page = await backend.list_executions(
                    svc.ListExecutionsRequest(target=target, page_size=1, page_token=token, **kw)  # type: ignore[arg-type]
                )
                out.extend(e.metadata.id for e in page.executions)
                token = page.next_page_token
                if not token:
                    return out

        assert await listed(phases=[P.PHASE_RUNNING, P.PHASE_FAILED]) == [ids[1], ids[0]]
        assert await listed(phase=P.PHASE_SUCCEEDED, phases=[P.PHASE_FAILED]) == [ids[3], ids[1]]
        assert await listed(label_selector="team=red") == [ids[3], ids[2], ids[0]]
        assert await listed(label_selector="team=red,n!=2", phases=[P.PHASE_RUNNING]) == [ids[0]]
        assert await listed(label_selector="missing") == []
        await expect_error(
            InvalidArgument,
            backend.list_executions(svc.ListExecutionsRequest(label_selector="a=b=c")),
        )
        created = [r.metadata.created_at for r in runs]
        window = await listed(created_after=created[1], created_before=created[3])
        assert window == [ids[2], ids[1]], "after is inclusive, before exclusive"
        assert await listed(created_after=created[4]) == [ids[4]]

    async def test_sessions(self, backend: Backend) -> None:
        name = await _agent(backend)
        await expect_error(NotFound, apply(backend, session(unique("chat"), unique("missing"))), "missing")
        created = await apply(backend, session(unique("chat"), name))
        sid = created.resource.session.metadata.id
        assert sid.startswith("ses_")
        target = meta_pb2.ResourceRef(kind="Agent", name=name)
        turns = []
        for text in ("hi", "and then?"):
            spec = ex.ExecutionSpec(target=target, message=text, session_id=sid)
            turns.append(await backend.create_execution(svc.CreateExecutionRequest(spec=spec)))
        assert all(t.spec.session_id == sid for t in turns)
        listed = await backend.list_executions(svc.ListExecutionsRequest(session_id=sid))
        assert [e.metadata.id for e in listed.executions] == [t.metadata.id for t in reversed(turns)]
        bad = ex.ExecutionSpec(target=target, message="x", session_id="ses_unknown")
        await expect_error(
            NotFound, backend.create_execution(svc.CreateExecutionRequest(spec=bad)), "ses_unknown"
        )

    async def test_an_agent_run_without_a_session_gets_one(self, backend: Backend) -> None:
        """Every agent run a caller starts belongs to a session, so a one-off can be continued."""
        name = await _agent(backend)
        target = meta_pb2.ResourceRef(kind="Agent", name=name)
        first = await backend.create_execution(
            svc.CreateExecutionRequest(spec=ex.ExecutionSpec(target=target, message="hi"))
        )
        sid = first.spec.session_id
        assert sid.startswith("ses_"), first.spec
        stored = (await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Session", id=sid)))).session
        assert stored.spec.agent.name == name
        assert stored.metadata.name.startswith(name)
        assert stored.status.last_execution_id == first.metadata.id
        # it continues like any other session; another run without one gets a session of its own
        spec = ex.ExecutionSpec(target=target, message="and then?", session_id=sid)
        second = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        assert second.spec.session_id == sid
        other = await backend.create_execution(
            svc.CreateExecutionRequest(spec=ex.ExecutionSpec(target=target, message="new topic"))
        )
        assert other.spec.session_id.startswith("ses_") and other.spec.session_id != sid
        listed = await backend.list_executions(svc.ListExecutionsRequest(session_id=sid))
        assert [e.metadata.id for e in listed.executions] == [second.metadata.id, first.metadata.id]
        # workflows have no sessions; an agent run a parent execution starts keeps what it is given
        wf = unique("wf")
        await apply(backend, workflow(wf))
        flow = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=wf))
            )
        )
        assert flow.spec.session_id == ""
        child = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=target, message="step", parent_execution_id=flow.metadata.id)
            )
        )
        assert child.spec.session_id == ""


@pytest.mark.asyncio
class TestStatusUpdates:
    async def test_sequence_zero_gets_the_next_number(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        out = await _update(backend, eid, _event("log", "a"), _event("log", "b"))
        assert out.status.last_sequence == 2
        out = await _update(backend, eid, _event("log", "c"))
        assert out.status.last_sequence == 3
        await set_phase(backend, eid, RUNNING, SUCCEEDED)
        events = await _events(backend, eid)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.text for e in events[:3]] == ["a", "b", "c"]
        assert all(e.execution_id == eid for e in events)
        assert all(e.time.seconds > 0 for e in events)

    async def test_resent_event_is_ignored_and_conflicts_are_refused(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await _update(backend, eid, _event("log", "one", 1), _event("log", "two", 2))
        again = await _update(backend, eid, _event("log", "one", 1), _event("log", "two", 2))
        assert again.status.last_sequence == 2
        more = await _update(backend, eid, _event("log", "two", 2), _event("log", "three", 3))
        assert more.status.last_sequence == 3
        await expect_error(FailedPrecondition, _update(backend, eid, _event("log", "changed", 2)), "2")
        await expect_error(InvalidArgument, _update(backend, eid, _event("log", "gap", 5)), "5")
        await expect_error(InvalidArgument, _update(backend, eid, _event("", "no type")))
        await expect_error(NotFound, _update(backend, "aex_unknown", _event("log", "x")))
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert current.status.last_sequence == 3
        await set_phase(backend, eid, CANCELLED)
        texts = [e.text for e in await _events(backend, eid)][:3]
        assert texts == ["one", "two", "three"]

    async def test_usage_cost_and_requests_add_up_in_the_execution_and_its_session(
        self, backend: Backend
    ) -> None:
        """Cost is summed like tokens; per-request entries are appended in order; a session's
        status sums the usage of its turns."""
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid, sid = run.metadata.id, run.spec.session_id
        assert sid
        await set_phase(backend, eid, RUNNING)
        first = ex.RequestUsage(model="m1", input_tokens=10, output_tokens=2, cost_usd=0.25)
        await _update(
            backend,
            eid,
            usage=ex.Usage(input_tokens=10, output_tokens=2, requests=1, cost_usd=0.25, by_request=[first]),
        )
        second = ex.RequestUsage(model="m2", input_tokens=5, output_tokens=1, cost_unknown=True)
        out = await _update(
            backend,
            eid,
            usage=ex.Usage(
                input_tokens=5, output_tokens=1, requests=1, cost_unknown=True, by_request=[second]
            ),
        )
        u = out.status.usage
        assert (u.input_tokens, u.output_tokens, u.requests) == (15, 3, 2)
        assert u.cost_usd == pytest.approx(0.25) and u.cost_unknown
        assert [(r.model, r.input_tokens, r.cost_unknown) for r in u.by_request] == [
            ("m1", 10, False),
            ("m2", 5, True),
        ]
        turn2 = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=run.spec.target, message="again", session_id=sid)
            )
        )
        await set_phase(backend, turn2.metadata.id, RUNNING)
        await _update(backend, turn2.metadata.id, usage=ex.Usage(input_tokens=1, requests=1, cost_usd=0.5))
        session = (
            await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Session", id=sid)))
        ).session
        su = session.status.usage
        assert (su.input_tokens, su.output_tokens, su.requests) == (16, 3, 3)
        assert su.cost_usd == pytest.approx(0.75) and su.cost_unknown
        assert not su.by_request  # per-request entries stay with each execution

    async def test_tasks_usage_output_error_checkpoint(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await set_phase(backend, eid, RUNNING)
        t1 = ex.TaskProgress(path="/do/0/a", name="a", phase=P.PHASE_RUNNING, attempts=1)
        t1.started_at.FromSeconds(1_700_000_000)
        t2 = ex.TaskProgress(path="/do/1/b", name="b", phase=P.PHASE_RUNNING, attempts=1)
        await _update(
            backend,
            eid,
            tasks=[t1, t2],
            usage=ex.Usage(input_tokens=10, output_tokens=5, requests=1),
            checkpoint='{"step": 1}',
        )
        done = ex.TaskProgress(path="/do/0/a", name="a", phase=P.PHASE_SUCCEEDED, attempts=2)
        out = await _update(backend, eid, tasks=[done], usage=ex.Usage(input_tokens=1, tool_calls=3))
        assert [(t.path, t.phase, t.attempts) for t in out.status.tasks] == [
            ("/do/0/a", SUCCEEDED, 2),
            ("/do/1/b", RUNNING, 1),
        ]
        # an update merges into the entry with the same path: fields it leaves unset are kept
        assert out.status.tasks[0].started_at.seconds == 1_700_000_000
        u = out.status.usage
        assert (u.input_tokens, u.output_tokens, u.requests, u.tool_calls) == (11, 5, 1, 3)
        assert out.status.checkpoint == '{"step": 1}'
        assert out.status.started_at.seconds > 0
        output = struct_pb2.Value(string_value="the answer")
        out = await _update(backend, eid, phase=SUCCEEDED, output=output)
        assert out.status.output.string_value == "the answer" and out.status.phase == SUCCEEDED
        assert out.status.finished_at.seconds > 0
        stored = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert stored.status.usage.input_tokens == 11 and stored.status.checkpoint == '{"step": 1}'
        failing = await new_execution(backend, "Agent", await _agent(backend))
        err = ex.ExecutionError(type="about:blank", title="boom", status=500, detail="it broke")
        out = await set_phase(backend, failing.metadata.id, RUNNING, FAILED, error=err)
        assert out.status.error.detail == "it broke" and out.status.phase == FAILED

    async def test_workspace_and_todos(self, backend: Backend) -> None:
        """An agent's saved workspace and its plan: set by an update, kept by the next one that
        leaves them out; the plan is replaced as a whole (an empty list clears it)."""
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await set_phase(backend, eid, RUNNING)
        plan = ex.TodoList(
            items=[
                ex.TodoItem(id="1", content="read", status="completed"),
                ex.TodoItem(id="2", content="fix", status="in_progress"),
            ]
        )
        saved = ex.WorkspaceState(artifact="sha256:" + "a" * 64, files=2, bytes=30)
        out = await _update(backend, eid, workspace=saved, todos=plan)
        assert [(t.id, t.status) for t in out.status.todos] == [("1", "completed"), ("2", "in_progress")]
        assert out.status.workspace == saved
        out = await _update(backend, eid, _event("log", "more"))
        assert len(out.status.todos) == 2 and out.status.workspace == saved
        out = await _update(backend, eid, todos=ex.TodoList(items=[ex.TodoItem(id="1", content="x")]))
        assert [t.content for t in out.status.todos] == ["x"]
        later = ex.WorkspaceState(artifact="sha256:" + "b" * 64, files=3, bytes=40)
        out = await set_phase(backend, eid, SUCCEEDED, workspace=later, todos=ex.TodoList())
        assert out.status.workspace == later and list(out.status.todos) == []
        stored = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert stored.status.workspace == later
        await expect_error(FailedPrecondition, _update(backend, eid, workspace=saved))

    async def test_phase_changes_append_phase_events(self, backend: Backend) -> None:
        """A start (PENDING to RUNNING) comes before the events sent with it; any other phase
        change after them."""
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await _update(backend, eid, _event("log", "starting"), phase=RUNNING)
        await _update(backend, eid, _event("log", "still going"), phase=RUNNING)
        await _update(backend, eid, _event("log", "done"), phase=SUCCEEDED)
        events = await _events(backend, eid)
        assert [(e.type, e.phase, e.text) for e in events] == [
            ("phase", RUNNING, ""),
            ("log", P.PHASE_UNSPECIFIED, "starting"),
            ("log", P.PHASE_UNSPECIFIED, "still going"),
            ("log", P.PHASE_UNSPECIFIED, "done"),
            ("phase", SUCCEEDED, ""),
        ]

    async def test_a_runners_first_report_starts_the_run(self, backend: Backend) -> None:
        """An update naming its runner starts a PENDING run — also one that ends with it."""
        first = await new_execution(backend, "Agent", await _agent(backend))
        out = await _update(backend, first.metadata.id, _event("log", "working"), runner="worker-1")
        assert out.status.phase == RUNNING and out.status.runner == "worker-1"
        assert out.status.HasField("started_at")
        await set_phase(backend, first.metadata.id, SUCCEEDED)
        events = await _events(backend, first.metadata.id)
        assert [(e.type, e.phase) for e in events] == [
            ("phase", RUNNING),
            ("log", P.PHASE_UNSPECIFIED),
            ("phase", SUCCEEDED),
        ]
        whole = await new_execution(backend, "Agent", await _agent(backend))
        done = await _update(
            backend, whole.metadata.id, _event("log", "all at once"), runner="worker-1", phase=SUCCEEDED
        )
        assert done.status.phase == SUCCEEDED and done.status.HasField("started_at")
        events = await _events(backend, whole.metadata.id)
        assert [(e.type, e.phase) for e in events] == [
            ("phase", RUNNING),
            ("log", P.PHASE_UNSPECIFIED),
            ("phase", SUCCEEDED),
        ]
        # without a runner, PENDING cannot end SUCCEEDED
        plain = await new_execution(backend, "Agent", await _agent(backend))
        with pytest.raises(FailedPrecondition):
            await _update(backend, plain.metadata.id, phase=SUCCEEDED)

    async def test_a_start_with_numbered_events_comes_after_them(self, backend: Backend) -> None:
        """Events a writer numbered itself keep their numbers: the start's phase event follows."""
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        last = run.status.last_sequence
        await _update(backend, eid, _event("log", "starting", sequence=last + 1), phase=RUNNING)
        await set_phase(backend, eid, SUCCEEDED)
        events = await _events(backend, eid, after=last)
        assert [(e.sequence, e.type, e.phase) for e in events] == [
            (last + 1, "log", P.PHASE_UNSPECIFIED),
            (last + 2, "phase", RUNNING),
            (last + 3, "phase", SUCCEEDED),
        ]


@pytest.mark.asyncio
class TestPhases:
    @pytest.mark.parametrize(
        ("start", "to"),
        [(a, b) for a, b in itertools.product(PATHS, PATHS) if a != b or a == RUNNING],
        ids=lambda p: P.Name(p).removeprefix("PHASE_"),
    )
    async def test_transition(self, backend: Backend, start: int, to: int) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        if PATHS[start]:
            await set_phase(backend, eid, *PATHS[start])
        if to in ALLOWED[start]:
            out = await set_phase(backend, eid, to)
            assert out.status.phase == to
        else:
            await expect_error(FailedPrecondition, set_phase(backend, eid, to))
            current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
            assert current.status.phase == start

    @pytest.mark.parametrize("end", TERMINAL, ids=lambda p: P.Name(p).removeprefix("PHASE_"))
    async def test_finished_execution_takes_no_new_events(self, backend: Backend, end: int) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await set_phase(backend, eid, *PATHS[end])
        await expect_error(FailedPrecondition, _update(backend, eid, _event("log", "late")))
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert current.status.phase == end


@pytest.mark.asyncio
class TestWatch:
    async def test_streams_live_events_in_order_once_and_ends(
        self, backend: Backend, backend_peer: Backend
    ) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await _update(backend, eid, _event("log", "before"), phase=RUNNING)
        watcher = asyncio.create_task(_events(backend, eid))
        texts = []
        for batch in range(8):
            await asyncio.sleep(0.03)
            items = [_event("log", f"live-{batch}-{i}") for i in range(3)]
            texts += [e.text for e in items]
            await _update(backend_peer, eid, *items)
        await set_phase(backend_peer, eid, SUCCEEDED)
        events = await watcher
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.text for e in events if e.text.startswith("live-")] == texts
        assert [(e.type, e.phase, e.text) for e in events[:2]] == [
            ("phase", RUNNING, ""),  # a start comes before the events sent with it
            ("log", P.PHASE_UNSPECIFIED, "before"),
        ]
        assert (events[-1].type, events[-1].phase) == ("phase", SUCCEEDED)

    async def test_the_last_event_brings_the_final_execution_when_asked(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await _update(backend, eid, _event("log", "working"), phase=RUNNING)
        asked = svc.WatchExecutionRequest(execution_id=eid, final_execution=True)
        watcher = asyncio.create_task(asyncio.wait_for(_collect(backend.watch_execution(asked)), 10))
        await asyncio.sleep(0.05)
        await _update(
            backend, eid, _event("log", "done"), phase=SUCCEEDED, output=struct_pb2.Value(number_value=7)
        )
        events = await watcher
        stored = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert (events[-1].type, events[-1].phase) == ("phase", SUCCEEDED)
        assert events[-1].execution == stored
        assert events[-1].execution.status.output.number_value == 7
        assert not any(e.HasField("execution") for e in events[:-1])
        # not asked: not sent, and never stored with the event
        plain = await _events(backend, eid)
        assert [e.sequence for e in plain] == [e.sequence for e in events]
        assert not any(e.HasField("execution") for e in plain)

    async def test_resumes_after_a_sequence_number(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await _update(backend, eid, *[_event("log", str(i)) for i in range(5)])
        await set_phase(backend, eid, CANCELLED)
        all_events = await _events(backend, eid)
        tail = await _events(backend, eid, after=3)
        assert [e.sequence for e in tail] == [e.sequence for e in all_events[3:]]
        assert tail[-1].phase == CANCELLED
        assert await _events(backend, eid, after=all_events[-1].sequence) == []

    async def test_unknown_execution(self, backend: Backend) -> None:
        await expect_error(NotFound, _events(backend, "aex_unknown"))


@pytest.mark.asyncio
class TestCancel:
    @pytest.mark.parametrize(
        "start", [PENDING, RUNNING, WAITING], ids=["PENDING", "RUNNING", "WAITING_APPROVAL"]
    )
    async def test_cancel_unfinished(self, backend: Backend, start: int) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        if PATHS[start]:
            await set_phase(backend, eid, *PATHS[start])
        out = await backend.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="changed my mind"))
        assert out.status.phase == CANCELLED and out.status.finished_at.seconds > 0
        events = await _events(backend, eid)
        assert (events[-1].type, events[-1].phase) == ("phase", CANCELLED)
        assert any("changed my mind" in e.text for e in events)
        await expect_error(FailedPrecondition, backend.cancel_execution(svc.CancelExecutionRequest(id=eid)))

    async def test_cancel_ends_the_tasks_under_way(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await set_phase(backend, eid, RUNNING)
        done = ex.TaskProgress(path="/do/0/a", name="a", phase=P.PHASE_SUCCEEDED, attempts=1)
        nap = ex.TaskProgress(path="/do/1/nap", name="nap", phase=P.PHASE_RUNNING, attempts=1)
        await _update(backend, eid, tasks=[done, nap])
        out = await backend.cancel_execution(svc.CancelExecutionRequest(id=eid))
        assert [(t.name, t.phase) for t in out.status.tasks] == [("a", SUCCEEDED), ("nap", CANCELLED)]
        assert out.status.tasks[1].finished_at.seconds > 0
        current = await backend.get_execution(svc.GetExecutionRequest(id=eid))
        assert [t.phase for t in current.status.tasks] == [SUCCEEDED, CANCELLED]

    async def test_cancel_unknown(self, backend: Backend) -> None:
        await expect_error(NotFound, backend.cancel_execution(svc.CancelExecutionRequest(id="aex_unknown")))


@pytest.mark.asyncio
class TestApprovals:
    async def _waiting(self, backend: Backend) -> str:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        await set_phase(backend, eid, RUNNING)
        approval = ex.ApprovalRequest(id="call_1", tool="create_issue", server="github")
        out = await _update(
            backend, eid, _event("approval.requested"), phase=WAITING, pending_approval=approval
        )
        assert out.status.pending_approval.id == "call_1"
        return eid

    async def test_approve(self, backend: Backend) -> None:
        eid = await self._waiting(backend)
        out = await backend.submit_approval(
            svc.SubmitApprovalRequest(execution_id=eid, approval_id="call_1", approved=True)
        )
        assert out.status.phase == RUNNING
        assert not out.status.HasField("pending_approval")
        await set_phase(backend, eid, SUCCEEDED)
        resolved = [e for e in await _events(backend, eid) if e.type == "approval.resolved"]
        assert len(resolved) == 1
        assert resolved[0].data.struct_value["approved"] is True

    async def test_reject_with_reason(self, backend: Backend) -> None:
        eid = await self._waiting(backend)
        out = await backend.submit_approval(
            svc.SubmitApprovalRequest(execution_id=eid, approved=False, reason="not today")
        )
        assert out.status.phase == RUNNING
        await set_phase(backend, eid, FAILED)
        resolved = [e for e in await _events(backend, eid) if e.type == "approval.resolved"]
        assert resolved[0].data.struct_value["approved"] is False
        assert resolved[0].data.struct_value["reason"] == "not today"

    async def test_only_while_waiting(self, backend: Backend) -> None:
        run = await new_execution(backend, "Agent", await _agent(backend))
        eid = run.metadata.id
        req = svc.SubmitApprovalRequest(execution_id=eid, approved=True)
        await expect_error(FailedPrecondition, backend.submit_approval(req), "PENDING")
        await set_phase(backend, eid, RUNNING)
        await expect_error(FailedPrecondition, backend.submit_approval(req), "RUNNING")
        await expect_error(
            NotFound, backend.submit_approval(svc.SubmitApprovalRequest(execution_id="aex_unknown"))
        )
        waiting = await self._waiting(backend)
        wrong = svc.SubmitApprovalRequest(execution_id=waiting, approval_id="call_other", approved=True)
        await expect_error(FailedPrecondition, backend.submit_approval(wrong), "call_1")
        current = await backend.get_execution(svc.GetExecutionRequest(id=waiting))
        assert current.status.phase == WAITING
