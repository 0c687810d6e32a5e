"""A server's leases on the executions it runs (issue 24): several servers share one store; one
takes over the runs of another whose leases expired, and exactly one wins each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.testing import postgres_schema

KEY = bytes(range(32))
TTL = 0.5


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(prefix="stigmer_leases") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[LocalBackend]]:
    """Three servers' stores on one database (ids srv_a, srv_b, srv_c), run by the server."""
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgres" else None
    url = url or f"sqlite:///{tmp_path / 'stigmer.db'}"
    opened = [
        LocalBackend(url, home=tmp_path, master_key=KEY, offer_to_runners=False, server_id=f"srv_{name}")
        for name in "abc"
    ]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def _run(store: LocalBackend, phase: ex.Phase.ValueType = ex.PHASE_RUNNING) -> str:
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bot"), spec=agent_pb2.AgentSpec(instructions="hi")
    )
    await store.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    run = await store.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
        )
    )
    steps: list[ex.Phase.ValueType] = []
    if phase != ex.PHASE_PENDING:
        steps.append(ex.PHASE_RUNNING)
    if phase not in (ex.PHASE_PENDING, ex.PHASE_RUNNING):
        steps.append(phase)
    for step in steps:
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=step)
        )
    return str(run.metadata.id)


async def test_the_creating_server_holds_its_run_and_others_take_it_only_once_it_expires(
    stores: list[LocalBackend],
) -> None:
    a, b, c = stores
    run = await _run(a)
    assert await b.take_over_executions(ttl=TTL) == []  # A's lease is fresh
    assert not await b.hold_execution(run, ttl=TTL)
    assert await a.renew_executions([run]) == {run}
    await asyncio.sleep(TTL + 0.1)
    # B and C look at once: exactly one of them wins it.
    won = await asyncio.gather(b.take_over_executions(ttl=TTL), c.take_over_executions(ttl=TTL))
    winners = [(store, found) for store, found in zip((b, c), won, strict=True) if found]
    assert len(winners) == 1, won
    winner, found = winners[0]
    assert [(e.metadata.id, holder) for e, holder in found] == [(run, "srv_a")]
    # A, back from a pause, finds it lost: its renewal holds nothing.
    assert await a.renew_executions([run]) == set()
    assert await winner.renew_executions([run]) == {run}


async def test_a_restarted_server_takes_its_own_runs_back_at_once(stores: list[LocalBackend]) -> None:
    a, b, _c = stores
    run = await _run(a)
    assert await b.take_over_executions(ttl=TTL, own=True) == []
    found = await a.take_over_executions(ttl=TTL, own=True)
    assert [(e.metadata.id, holder) for e, holder in found] == [(run, "srv_a")]


async def test_finished_and_paused_runs_are_never_taken_over(stores: list[LocalBackend]) -> None:
    a, b, _c = stores
    await _run(a, ex.PHASE_SUCCEEDED)
    paused = await _run(a, ex.PHASE_WAITING_APPROVAL)
    pending = await _run(a, ex.PHASE_PENDING)
    await asyncio.sleep(TTL + 0.1)
    found = await b.take_over_executions(ttl=TTL)
    assert [e.metadata.id for e, _holder in found] == [pending]
    # The server that receives the approval resumes a paused run, whoever held it.
    assert await b.hold_execution(paused, ttl=TTL, force=True)
    assert await b.renew_executions([paused]) == {paused}


async def test_runs_offered_to_runner_workers_have_no_server_lease(tmp_path: Path) -> None:
    store = LocalBackend(f"sqlite:///{tmp_path / 's.db'}", home=tmp_path, master_key=KEY, server_id="srv_a")
    try:
        run = await _run(store)  # offer_to_runners (Temporal, or --no-run-executions): no server holds it
        other = LocalBackend(
            f"sqlite:///{tmp_path / 's.db'}",
            home=tmp_path,
            master_key=KEY,
            offer_to_runners=False,
            server_id="srv_b",
        )
        await asyncio.sleep(TTL + 0.1)
        assert await other.take_over_executions(ttl=TTL, own=True) == []
        assert await other.hold_execution(run, ttl=TTL)  # nothing to hold: no refusal either
        await other.close()
    finally:
        await store.close()
