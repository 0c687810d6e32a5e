"""The client's read/watch/control calls against a real local store: paged lists with selectors,
get by id, execution snapshots and pages, watching, cancelling and sending events."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.core import InvalidArgument, NotFound
from stigmer.sdk import AsyncStigmer, ExecutionPage, ResourcePage, Set, Stigmer, Wait, Workflow

GREET = Workflow("greet", namespace="t", labels={"team": "a"}, do={"hi": Set({"greeting": "hi"})})
NAP = Workflow("nap", namespace="t", do={"nap": Wait(seconds=30)})


def test_list_page_pages_with_a_selector_and_get_takes_an_id(client: Stigmer) -> None:
    client.apply(
        *(
            Workflow(f"w{i}", namespace="t", labels={"n": str(i % 2)}, do={"x": Set({"x": i})})
            for i in range(5)
        )
    )
    first = client.list_page("workflow", page_size=2)
    assert isinstance(first, ResourcePage)
    assert [w.metadata.name for w in first.resources] == ["w0", "w1"]
    assert first.next_page_token
    names = [w.metadata.name for w in first.resources]
    token = first.next_page_token
    while token:
        page = client.list_page("workflows", page_size=2, page_token=token)
        names += [w.metadata.name for w in page.resources]
        token = page.next_page_token
    assert names == [f"w{i}" for i in range(5)]
    even = client.list_page("workflow", "n=0")
    assert [w.metadata.name for w in even.resources] == ["w0", "w2", "w4"] and not even.next_page_token
    assert [w.metadata.name for w in client.list("workflow", {"n": "1"})] == ["w1", "w3"]  # type: ignore[attr-defined]
    by_name = client.get("workflow", "w3")
    by_id = client.get("workflow", by_name.metadata.id)  # type: ignore[attr-defined]
    assert by_id == by_name


def test_exists_not_found_and_find_target(client: Stigmer) -> None:
    client.apply(GREET)
    assert client.exists("workflow", "greet") and not client.exists("agent", "greet")
    err = client.not_found("workflow", "gret")
    assert isinstance(err, NotFound) and "did you mean 'greet'" in str(err)
    assert "apply it first" in str(client.not_found(["agent"], "x", create_hint="apply it first"))
    assert client.find_target("greet") == "Workflow"
    with pytest.raises(NotFound, match="greet"):
        client.find_target("gree")


def test_get_and_list_executions_with_filters_and_pages(client: Stigmer) -> None:
    client.apply(GREET, NAP)
    done = [client.run("greet") for _ in range(3)]
    for run in done:
        run.wait(timeout=30)
    pending = client.run("nap", start=False)
    snapshot = client.get_execution(done[0].id)
    assert snapshot.metadata.id == done[0].id and snapshot.kind == "WorkflowExecution"
    with pytest.raises(NotFound):
        client.get_execution("wex_missing")
    page = client.list_executions()
    assert isinstance(page, ExecutionPage)
    assert [ex.metadata.id for ex in page.executions] == [pending.id, *reversed([r.id for r in done])]
    assert [ex.metadata.id for ex in client.list_executions(phase="pending").executions] == [pending.id]
    assert len(client.list_executions(phase="PHASE_SUCCEEDED").executions) == 3
    assert [ex.metadata.id for ex in client.list_executions(target="workflow/nap").executions] == [pending.id]
    assert len(client.list_executions(target="greet", kind="workflow").executions) == 3
    assert client.list_executions(kind="agent").executions == ()
    first = client.list_executions(limit=2)
    assert len(first.executions) == 2 and first.next_page_token
    rest = client.list_executions(limit=2, page_token=first.next_page_token)
    seen = [ex.metadata.id for ex in (*first.executions, *rest.executions)]
    assert seen == [ex.metadata.id for ex in page.executions]
    with pytest.raises(InvalidArgument, match="unknown phase 'sleeping'"):
        client.list_executions(phase="sleeping")
    with pytest.raises(InvalidArgument, match="target takes"):
        client.list_executions(target="skill/x")
    client.cancel(pending.id)


def test_send_event_watch_and_cancel(client: Stigmer) -> None:
    client.apply(NAP)
    run = client.run("nap", start=False)
    sent = client.send_event(run.id, "com.acme.paid", {"amount": 3}, text="paid", subject="order-1")
    sequence = sent.status.last_sequence
    assert sequence >= 1
    with pytest.raises(InvalidArgument, match="JSON"):
        client.send_event(run.id, "x", object())
    cancelled = client.cancel(run.id, "not needed")
    assert cancelled.status.phase == 6  # CANCELLED
    events = list(client.watch(run.id))  # ends: the execution ended
    [paid] = [e for e in events if e.type == "com.acme.paid"]
    assert (paid.sequence, paid.text, paid.subject) == (sequence, "paid", "order-1")
    assert paid.data.struct_value.fields["amount"].number_value == 3
    later = list(client.watch(run.id, after_sequence=sequence))
    assert [e.sequence for e in later] == [e.sequence for e in events if e.sequence > sequence]
    first = client.watch(run.id)
    assert next(first).sequence == 1
    first.close()  # stopping early closes the stream on the client's loop
    handle = client.execution(run.id, in_process=False)
    assert handle.phase == "CANCELLED"


async def test_async_calls(home: Path) -> None:
    async with AsyncStigmer(home=home) as stigmer:
        await stigmer.apply(GREET)
        run = await stigmer.run("greet")
        await run.wait(timeout=30)
        events = [e async for e in stigmer.watch(run.id)]
        assert events[-1].type == "phase" and [e.sequence for e in events] == list(range(1, len(events) + 1))
        stream = stigmer.watch(run.id)
        assert (await anext(stream)).sequence == 1
        await stream.aclose()  # stopping early closes the backend stream
        page = await stigmer.list_executions(target="workflow/greet")
        assert [ex.metadata.id for ex in page.executions] == [run.id]
        assert (await stigmer.get_execution(run.id)).status.last_sequence == events[-1].sequence
        assert [w.metadata.name for w in (await stigmer.list_page("workflow", {"team": "a"})).resources] == [
            "greet"
        ]
