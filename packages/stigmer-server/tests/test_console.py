"""The web console in-process: `serve()` with a real LocalBackend and its HTTP listener, driven over
HTTP. Roles as over gRPC, filters and their bad input, paging, versions and diffs, the run form,
actions refused by the store, the task tree of `for` iterations and retries, the conversation."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import stigmer.server.console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.backend.local import LocalBackend
from stigmer.core import StigmerError, acting_as
from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.server import NoDispatcher, TokenStore, admin_token_path, serve
from stigmer.server.console import _views as views

KEY = os.urandom(32)


def test_public_api() -> None:
    assert sorted(stigmer.server.console.__all__) == sorted(
        ["DEFINITION_KINDS", "PAGE_SIZE", "CallError", "Gateway", "console_app"]
    )


class _Client(httpx.AsyncClient):
    """An AsyncClient already used (to log in) that ``async with`` still closes."""

    async def __aenter__(self) -> _Client:
        return self


@dataclass
class Console:
    url: str
    backend: LocalBackend
    store: TokenStore
    admin: str
    user: str

    async def client(self, token: str) -> tuple[httpx.AsyncClient, str]:
        """A logged-in client (not yet entered: use ``async with``) and its session's CSRF token."""
        client = _Client(base_url=self.url, timeout=30)
        form = await client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        answer = await client.post("/login", data={"csrf": csrf.group(1), "token": token})
        assert answer.status_code == 303
        page = await client.get("/runs")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        return client, found.group(1)


@pytest_asyncio.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=KEY)
    store = TokenStore(home=tmp_path)
    ready = asyncio.Event()
    urls: list[str] = []
    task = asyncio.create_task(
        serve(
            backend,
            "127.0.0.1:0",
            home=tmp_path,
            tokens=store,
            dispatcher=NoDispatcher(),
            http_listen="127.0.0.1:0",
            on_http_ready=urls.append,
            ready=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    user = store.create("user", "alice").token
    yield Console(f"{urls[0]}/console", backend, store, admin_token_path(tmp_path).read_text().strip(), user)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.close()
    await backend.close()


async def apply_agent(backend: LocalBackend, name: str, instructions: str = "hi") -> None:
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name=name), spec=agent_pb2.AgentSpec(instructions=instructions)
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))


async def create_run(backend: LocalBackend, name: str, **labels: str) -> execution_pb2.Execution:
    return await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(
                target=meta_pb2.ResourceRef(kind="Agent", name=name), message="m"
            ),
            labels=labels,
        )
    )


async def test_runs_page_is_paged_and_filters_by_target_phase_and_time(console: Console) -> None:
    await apply_agent(console.backend, "a")
    await apply_agent(console.backend, "b")
    for _ in range(stigmer.server.console.PAGE_SIZE + 5):
        await create_run(console.backend, "a")
    only_b = await create_run(console.backend, "b", team="x")
    client, _csrf = await console.client(console.admin)
    async with client:
        first = await client.get("/runs")
        assert first.text.count("<tr data-run=") == stigmer.server.console.PAGE_SIZE
        older = re.search(r'href="([^"]+)" id="next-page"', first.text)
        assert older
        second = await client.get(older.group(1).replace("&amp;", "&").removeprefix("/console"))
        assert second.text.count("<tr data-run=") == 6
        by_target = await client.get("/runs", params={"target": "b"})
        assert by_target.text.count("<tr data-run=") == 1 and only_b.metadata.id in by_target.text
        by_kind = await client.get("/runs", params={"target": "agent/b"})
        assert by_kind.text.count("<tr data-run=") == 1
        assert (await client.get("/runs", params={"phase": "RUNNING"})).text.count("<tr data-run=") == 0
        future = await client.get("/runs", params={"after": "2999-01-01T00:00"})
        assert future.text.count("<tr data-run=") == 0
        past = await client.get("/runs", params={"before": "2999-01-01T00:00", "label": "team=x"})
        assert past.text.count("<tr data-run=") == 1
        # bad filters: one clear line on the page, no traceback
        for params, message in (
            ({"target": "skill/x"}, "give agent/NAME, workflow/NAME or NAME"),
            ({"target": "nobody"}, "no agent or workflow named"),
            ({"phase": "DONE"}, "unknown phase"),
            ({"after": "yesterday"}, "is not a date and time"),
        ):
            answer = await client.get("/runs", params=params)
            assert answer.status_code == 200 and message in answer.text, params
        bad_selector = await client.get("/runs", params={"label": "==="})
        assert bad_selector.status_code == 400 and "label selector" in bad_selector.text


async def test_roles_apply_as_over_grpc(console: Console) -> None:
    await apply_agent(console.backend, "a")
    client, csrf = await console.client(console.user)
    async with client:
        # a user may run an agent...
        started = await client.post("/definitions/agent/a/run", data={"csrf": csrf, "message": "hello"})
        assert started.status_code == 303
        run_id = started.headers["location"].rsplit("/", 1)[-1]
        page = await client.get(f"/runs/{run_id}")
        assert page.status_code == 200 and "hello" in page.text
        # ...but not change the definitions of others or read the token list
        assert (await client.get("/tokens")).status_code == 403
        # retry is only for a failed or cancelled run: the error is shown, not a traceback
        retry = await client.post(f"/runs/{run_id}/retry", data={"csrf": csrf})
        assert retry.status_code == 409 and "only a FAILED or CANCELLED run is retried" in retry.text
        cancelled = await client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf})
        assert cancelled.status_code == 303
        retried = await client.post(f"/runs/{run_id}/retry", data={"csrf": csrf})
        assert retried.status_code == 303
        new_id = retried.headers["location"].rsplit("/", 1)[-1]
        assert new_id != run_id
        new = await console.backend.get_execution(svc.GetExecutionRequest(id=new_id))
        assert new.spec.resumed_from == run_id
        rerun = await client.post(f"/runs/{run_id}/rerun", data={"csrf": csrf})
        rerun_id = rerun.headers["location"].rsplit("/", 1)[-1]
        assert (
            await console.backend.get_execution(svc.GetExecutionRequest(id=rerun_id))
        ).spec.rerun_of == run_id
    # Another caller's run: the console answers what the store answers this user (as over gRPC).
    theirs = await create_run(console.backend, "a")
    user = console.store.verify(console.user)
    assert user is not None
    with acting_as(user):
        try:
            await console.backend.get_execution(svc.GetExecutionRequest(id=theirs.metadata.id))
            expected = 200
        except StigmerError as err:
            expected = {"NOT_FOUND": 404, "PERMISSION_DENIED": 403}[err.grpc_code]
    client, csrf = await console.client(console.user)
    async with client:
        answer = await client.get(f"/runs/{theirs.metadata.id}")
        assert answer.status_code == expected


async def test_definition_versions_diff_and_run_form(console: Console) -> None:
    await apply_agent(console.backend, "a", "first version")
    await apply_agent(console.backend, "a", "second version")
    client, csrf = await console.client(console.admin)
    async with client:
        page = await client.get("/definitions/agent/a")
        assert "second version" in page.text and "v2" in page.text and "v1" in page.text
        diff = await client.get("/definitions/agent/a", params={"a": "1", "b": "2"})
        assert '<span class="del">-  instructions: first version</span>' in diff.text
        assert '<span class="add">+  instructions: second version</span>' in diff.text
        shown = diff.text.split('id="diff-output">', 1)[1].split("</pre>", 1)[0]
        assert "version: " not in shown and "updatedAt" not in shown  # not the noise of every version
        missing = await client.get("/definitions/agent/a", params={"a": "1", "b": "9"})
        assert missing.status_code == 404 and "no version 9" in missing.text
        bad = await client.post("/definitions/agent/a/run", data={"csrf": csrf, "input": "{not json"})
        assert bad.status_code == 303 and "error=" in bad.headers["location"]
        refused = await client.get(bad.headers["location"].removeprefix("/console"))
        assert "input is not JSON" in refused.text
        listing = await client.get("/definitions/agents")
        assert 'href="/console/definitions/agent/a"' in listing.text
        assert (await client.get("/definitions/session")).status_code == 404
        assert (await client.get("/definitions/agent/none")).status_code == 404


def test_task_rows_keep_for_iterations_and_retries_apart() -> None:
    ex = execution_pb2.Execution()
    ex.status.started_at.FromSeconds(100)
    ex.status.finished_at.FromSeconds(110)
    for path, start, end, attempts in (
        ("/do/0/fetch", 100, 102, 3),
        ("/do/1/each/for/0/work", 102, 104, 1),
        ("/do/1/each/for/1/work", 104, 110, 1),
    ):
        task = ex.status.tasks.add(path=path, phase=execution_pb2.PHASE_SUCCEEDED, attempts=attempts)
        task.started_at.FromSeconds(start)
        task.finished_at.FromSeconds(end)
    rows = views.task_rows(ex)
    assert [r["iteration"] for r in rows] == ["", "0", "1"]
    assert rows[0]["attempts"] == 3 and rows[0]["duration"] == "2.0 s"
    assert rows[2]["left"] == "40.00" and rows[2]["width"] == "60.00"
    assert rows[1]["depth"] > rows[0]["depth"]


def test_conversation_joins_streamed_text_and_keeps_tool_calls() -> None:
    events = [
        execution_pb2.ExecutionEvent(type="message.user", text="hi"),
        execution_pb2.ExecutionEvent(type="text.delta", text="Hel"),
        execution_pb2.ExecutionEvent(type="text.delta", text="lo"),
        execution_pb2.ExecutionEvent(type="tool.call", subject="lookup", text="lookup(x)"),
        execution_pb2.ExecutionEvent(type="tool.result", subject="lookup", text="42"),
        execution_pb2.ExecutionEvent(type="approval.requested", subject="close"),
    ]
    items = views.conversation(events)
    assert [(i["role"], i.get("text")) for i in items] == [
        ("user", "hi"),
        ("assistant", "Hello"),
        ("tool-call", "lookup(x)"),
        ("tool-result", "42"),
        ("approval", ""),
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["target", "phase", "label", "schedule", "after", "before", "page_token"]),
        st.text(max_size=30),
        max_size=4,
    )
)
async def test_any_filter_input_gives_a_page_or_a_clear_refusal(
    console: Console, params: dict[str, str]
) -> None:
    client, _csrf = await console.client(console.admin)
    async with client:
        answer = await client.get("/runs", params=params)
    assert answer.status_code in (200, 400), (params, answer.text[-500:])
    assert "Traceback" not in answer.text


def test_task_tree_from_events_has_a_row_per_iteration_and_counts_retries() -> None:
    ex = execution_pb2.Execution()
    ex.status.phase = execution_pb2.PHASE_SUCCEEDED
    ex.status.started_at.FromSeconds(100)
    ex.status.finished_at.FromSeconds(120)
    script = [
        ("task.started", "/do/0/fetch", "fetch", 100),
        ("task.retried", "/do/0/fetch", "", 101),
        ("task.retried", "/do/0/fetch", "", 102),
        ("task.completed", "/do/0/fetch", "fetch", 104),
        ("task.started", "/do/1/each", "each", 104),
    ]
    for i in range(2):
        script += [
            ("task.started", f"/do/1/each/for/{i}", f"each[{i}]", 105 + 5 * i),
            ("task.started", "/do/1/each/do/0/work", "work", 105 + 5 * i),
            ("task.completed", "/do/1/each/do/0/work", "work", 109 + 5 * i),
            ("task.completed", f"/do/1/each/for/{i}", f"each[{i}]", 110 + 5 * i),
        ]
    script += [("task.completed", "/do/1/each", "each", 115), ("task.failed", "/do/9/never-started", "", 116)]
    events = []
    for kind, subject, name, at in script:
        event = execution_pb2.ExecutionEvent(type=kind, subject=subject, text=name)
        event.time.FromSeconds(at)
        events.append(event)
    rows = views.task_rows_from_events(ex, events)
    assert [(r["name"], r["depth"], r["iteration"], r["in_iteration"]) for r in rows] == [
        ("fetch", 0, "", ""),
        ("each", 0, "", ""),
        ("each[0]", 1, "0", ""),
        ("work", 2, "", "0"),
        ("each[1]", 1, "1", ""),
        ("work", 2, "", "1"),
    ]
    assert rows[0]["attempts"] == 3 and rows[0]["duration"] == "4.0 s"
    assert [r["phase"] for r in rows] == ["SUCCEEDED"] * 6
    assert rows[5]["left"] == "50.00" and rows[5]["width"] == "20.00"
    assert views.task_rows_from_events(ex, []) == []


WORKFLOW = """
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: greet}
spec:
  document: {dsl: 1.0.3, namespace: t, name: greet, version: 1.0.0}
  input:
    schema:
      format: json
      document:
        type: object
        required: [name]
        properties:
          name: {type: string}
  do:
    - hello: {set: {greeting: '${ "hi " + .name }'}}
"""


async def test_run_form_checks_a_workflows_input_against_its_schema(console: Console) -> None:
    from stigmer.core import parse_manifest

    [loaded] = parse_manifest(WORKFLOW)
    assert isinstance(loaded.resource, resource_pb2.Resource)
    await console.backend.apply(svc.ApplyRequest(resource=loaded.resource))
    client, csrf = await console.client(console.admin)
    async with client:
        page = await client.get("/definitions/workflow/greet")
        assert 'placeholder="{&#34;name&#34;: &#34;&#34;}"' in page.text  # an example from the schema
        assert "&#34;required&#34;" in page.text or '"required"' in page.text
        for body, problem in (
            ('{"name": 3}', "input at /name does not match the input schema: 3 is not of type"),
            ("", "does not match the input schema: &#39;name&#39; is a required property"),
        ):
            refused = await client.post("/definitions/workflow/greet/run", data={"csrf": csrf, "input": body})
            assert refused.status_code == 303 and "error=" in refused.headers["location"]
            shown = await client.get(refused.headers["location"].removeprefix("/console"))
            assert problem in shown.text, shown.text[-2000:]
        listed = await console.backend.list_executions(svc.ListExecutionsRequest())
        assert not listed.executions  # nothing was started
        started = await client.post(
            "/definitions/workflow/greet/run", data={"csrf": csrf, "input": '{"name": "x"}'}
        )
        assert started.status_code == 303 and "/runs/wex_" in started.headers["location"]


async def test_a_live_run_page_is_sent_again_only_when_the_run_changed(console: Console) -> None:
    await apply_agent(console.backend, "a")
    run = await create_run(console.backend, "a")
    client, _csrf = await console.client(console.admin)
    async with client:
        page = await client.get(f"/runs/{run.metadata.id}", params={"partial": "1"})
        marker = re.search(r'data-phase="(\w+)" data-seq="(\d+)"', page.text)
        assert marker
        phase, seq = marker.groups()
        same = await client.get(
            f"/runs/{run.metadata.id}", params={"partial": "1", "seq": seq, "phase": phase}
        )
        assert same.status_code == 204 and same.text == ""
        await console.backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=run.metadata.id,
                phase=execution_pb2.PHASE_RUNNING,
                events=[execution_pb2.ExecutionEvent(type="log", text="step one done")],
            )
        )
        changed = await client.get(
            f"/runs/{run.metadata.id}", params={"partial": "1", "seq": seq, "phase": phase}
        )
        assert (
            changed.status_code == 200
            and "step one done" in changed.text
            and 'id="phase">RUNNING' in changed.text
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=st.text(max_size=80), name=st.text(min_size=1, max_size=40), run=st.text(min_size=1, max_size=40)
)
async def test_any_token_name_or_run_id_gives_a_clear_answer(
    console: Console, token: str, name: str, run: str
) -> None:
    async with httpx.AsyncClient(base_url=console.url, timeout=30) as anonymous:
        form = await anonymous.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        answer = await anonymous.post("/login", data={"csrf": csrf.group(1), "token": token})
        assert answer.status_code == 401 and "invalid or revoked token" in answer.text
    client, _csrf = await console.client(console.admin)
    async with client:
        for path in (f"/definitions/agent/{quote(name, safe='')}", f"/runs/{quote(run, safe='')}"):
            page = await client.get(path)
            # An id with slashes is another path: the list (307, a slash added or dropped) or an
            # action, which only POST reaches (405).
            assert page.status_code in (307, 400, 404, 405), (path, page.status_code, page.text[-300:])
            assert "Traceback" not in page.text


async def test_reject_with_a_reason_and_a_second_answer_refused(console: Console) -> None:
    await apply_agent(console.backend, "a")
    run = await create_run(console.backend, "a")
    await console.backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=run.metadata.id, phase=execution_pb2.PHASE_RUNNING)
    )
    await console.backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(
            execution_id=run.metadata.id,
            phase=execution_pb2.PHASE_WAITING_APPROVAL,
            pending_approval=execution_pb2.ApprovalRequest(id="call_1", tool="close_ticket"),
        )
    )
    client, csrf = await console.client(console.user)
    async with client:
        page = await client.get(f"/runs/{run.metadata.id}")
        assert 'id="approval"' in page.text and "close_ticket" in page.text
        rejected = await client.post(
            f"/runs/{run.metadata.id}/reject",
            data={"csrf": csrf, "approval_id": "call_1", "reason": "not this ticket"},
        )
        assert rejected.status_code == 303
        after = await client.get(f"/runs/{run.metadata.id}")
        assert "approval.resolved" in after.text and "not this ticket" in after.text
        again = await client.post(
            f"/runs/{run.metadata.id}/approve", data={"csrf": csrf, "approval_id": "call_1"}
        )
        assert again.status_code == 409 and "not waiting for an approval" in again.text
    resolved = await console.backend.get_execution(svc.GetExecutionRequest(id=run.metadata.id))
    assert resolved.status.phase == execution_pb2.PHASE_RUNNING


@given(st.integers(min_value=1, max_value=253402300799))
def test_a_runs_creation_time_reads_as_gmtime_gives_it(seconds: int) -> None:
    import time

    from google.protobuf.timestamp_pb2 import Timestamp

    assert views._stamp(Timestamp(seconds=seconds)) == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.gmtime(seconds)
    )


def test_the_runs_table_escapes_what_a_run_carries() -> None:
    run = execution_pb2.Execution(kind="WorkflowExecution")
    run.metadata.id = 'wex_"<b>'
    run.metadata.labels["team"] = "<script>alert(1)</script>"
    run.metadata.labels["stigmer.ai/schedule"] = "a&b"
    run.spec.target.kind, run.spec.target.name = "Workflow", "x'<y"
    run.status.phase = execution_pb2.PHASE_SUCCEEDED
    run.status.started_at.seconds, run.status.finished_at.seconds = 100, 103
    html = str(views.runs_rows_html([run], '/c"'))
    assert "<script>" not in html and "<b>" not in html and "x'<y" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a&amp;b" in html
    assert 'data-run="wex_&quot;&lt;b&gt;"' in html and 'href="/c&quot;/runs/wex_' in html
    assert '<span class="phase succeeded">SUCCEEDED</span>' in html and "<td>3.0 s</td>" in html


_texts = st.text(alphabet="ab<>&\"' =/", max_size=6)


@st.composite
def _finished_or_unstarted_runs(draw: st.DrawFn) -> execution_pb2.Execution:
    run = execution_pb2.Execution(kind=draw(st.sampled_from(["AgentExecution", "WorkflowExecution"])))
    run.metadata.id = draw(_texts)
    for key, value in draw(st.dictionaries(_texts, _texts, max_size=3)).items():
        run.metadata.labels[key] = value
    if draw(st.booleans()):
        run.metadata.labels[views.SCHEDULE_LABEL] = draw(_texts)
    run.metadata.created_at.seconds = draw(st.integers(min_value=0, max_value=253402300799))
    run.spec.target.kind, run.spec.target.name, run.spec.target.id = draw(_texts), draw(_texts), draw(_texts)
    run.status.phase = execution_pb2.Phase.ValueType(draw(st.integers(min_value=0, max_value=9)))
    if draw(st.booleans()):  # a finished run; a running one's duration reads the clock
        run.status.started_at.seconds = draw(st.integers(min_value=1, max_value=10**9))
        run.status.started_at.nanos = draw(st.integers(min_value=0, max_value=999_999_999))
        run.status.finished_at.seconds = run.status.started_at.seconds + draw(st.integers(0, 10**5))
        run.status.finished_at.nanos = draw(st.integers(min_value=0, max_value=999_999_999))
    run.status.usage.cost_usd = draw(st.sampled_from([0.0, 0.00001, 1.5, 123.456789]))
    return run


@given(st.lists(_finished_or_unstarted_runs(), max_size=4), st.sampled_from(["/console", '/c"<', ""]))
def test_the_runs_table_shows_what_run_row_shows(runs: list[execution_pb2.Execution], base: str) -> None:
    """The table builds its rows in one pass (escapes shared between rows): each row must still
    show, escaped, exactly the cells `run_row` computes for that run."""
    import html

    e = html.escape

    def row_html(row: Any) -> str:
        labels = "".join(f'<span class="label">{e(text)}</span> ' for text in row.label_text)
        return (
            f'<tr data-run="{e(row.id)}">\n'
            f'  <td><a href="{e(base)}/runs/{e(row.id)}">{e(row.id)}</a></td>\n'
            f"  <td>{e(row.target)}</td>\n"
            f'  <td><span class="phase {row.phase_class}">{row.phase}</span></td>\n'
            f"  <td>{row.created}</td>\n"
            f"  <td>{row.duration}</td>\n"
            f"  <td>{e(row.schedule)}</td>\n"
            f"  <td>{labels}</td>\n"
            f"  <td>{row.cost}</td>\n"
            "</tr>\n"
        )

    expected = "".join(row_html(views.run_row(run)) for run in runs)
    assert str(views.runs_rows_html(runs, base)) == expected
