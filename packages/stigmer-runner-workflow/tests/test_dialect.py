"""The opt-in ``zigflow`` dialect (upstream Stigmer's runner conventions): ``$data``, outputs by
task name, ``set`` into ``$context``; the default stays the spec. Upstream ``tasks`` workflows
converted at load validate and run here."""

from __future__ import annotations

from typing import Any

import pytest
from stigmer.core import message_to_manifest, parse_manifest
from stigmer.runner.workflow import InProcessHost, WorkflowError, run_workflow, validate_workflow
from stigmer.testing import HttpWorld, Request, Response, json_response


class Killed(BaseException):
    """Stands in for the process dying mid-task."""


class DyingHost(InProcessHost):
    async def sleep(self, seconds: float) -> None:
        raise Killed()


def doc(tasks: list[dict[str, Any]], dialect: str | None = "zigflow") -> dict[str, Any]:
    document: dict[str, Any] = {"dsl": "1.0.0", "namespace": "t", "name": "d", "version": "1.0.0"}
    if dialect is not None:
        document["metadata"] = {"stigmer.ai/dialect": dialect}
    return {"document": document, "do": tasks}


TASKS: list[dict[str, Any]] = [
    {"init": {"set": {"items": [1, 2, 3]}}},
    {"double": {"set": {"twice": "${ [$data.items[] * 2] }"}}},
    {"count": {"set": {"n": "${ $data.twice | length }"}}},
    {"show": {"set": {"data": "${ $data }", "context": "${ $context }"}}},
]


async def test_zigflow_gives_data_outputs_by_name_and_set_into_context() -> None:
    out = await run_workflow(doc(TASKS), InProcessHost(), {"who": "ann"})
    assert out["data"] == {
        "who": "ann",  # the input
        "items": [1, 2, 3],  # set merges into $data
        "twice": [2, 4, 6],
        "n": 3,
    }
    # set writes $context without export
    assert out["context"] == {"items": [1, 2, 3], "twice": [2, 4, 6], "n": 3}


async def test_other_tasks_outputs_land_under_their_name() -> None:
    def handler(request: Request) -> Response:
        return json_response({"path": request.path})

    with HttpWorld(handler) as world:
        wf = doc(
            [
                {"fetch": {"call": "http", "with": {"method": "get", "endpoint": f"{world.url}/items"}}},
                {"show": {"set": {"got": "${ $data.fetch.path }"}}},
            ]
        )
        assert await run_workflow(wf, InProcessHost()) == {"got": "/items"}


async def test_the_default_stays_the_spec() -> None:
    with pytest.raises(WorkflowError, match=r"\$data is not defined"):
        await run_workflow(doc(TASKS, dialect=None), InProcessHost(), {"who": "ann"})
    wf = doc([{"a": {"set": {"x": 1}}}, {"b": {"set": {"ctx": "${ $context }"}}}], dialect=None)
    assert await run_workflow(wf, InProcessHost()) == {"ctx": {}}  # set does not export by itself


def test_an_unknown_dialect_is_refused_at_validation() -> None:
    result = validate_workflow(doc([{"a": {"set": {"x": 1}}}], dialect="bogus"))
    assert [str(p) for p in result.errors] == [
        "/document/metadata: unknown dialect 'bogus' in document.metadata['stigmer.ai/dialect']; known: zigflow"
    ]


async def test_dialect_state_survives_a_checkpoint() -> None:
    wf = doc(
        [
            {"a": {"set": {"first": 1}}},
            {"pause": {"wait": {"milliseconds": 1}}},
            {"b": {"set": {"seen": "${ $data.first }", "ctx": "${ $context.first }"}}},
        ]
    )
    first = DyingHost()
    with pytest.raises(Killed):
        await run_workflow(wf, first)
    assert first.last_checkpoint is not None
    assert first.last_checkpoint["dialect"] == {"data": {"first": 1}}
    assert await run_workflow(wf, InProcessHost(), checkpoint=first.last_checkpoint) == {"seen": 1, "ctx": 1}


UPSTREAM = """\
apiVersion: agentic.stigmer.ai/v1
kind: Workflow
metadata: {name: orders}
spec:
  document: {dsl: 1.0.0, namespace: shop, name: orders, version: 1.0.0, description: Count open orders.}
  tasks:
    - {name: init, kind: set_vars, task_config: {variables: {base: 'BASE'}}}
    - name: fetch
      kind: http_call
      task_config: {method: GET, endpoint: {uri: '${ $data.base + "/orders" }'}, timeout_seconds: 5}
    - name: route
      kind: switch_case
      task_config: {cases: [{name: many, when: '${ ($data.fetch | length) > 1 }', then: sum}, {name: none, then: end}]}
    - name: sum
      kind: for_each
      task_config:
        each: order
        in: '${ $data.fetch }'
        do: [{name: one, kind: set_vars, task_config: {variables: {id: '${ $order.id }'}}}]
    - name: guard
      kind: try_catch
      task_config:
        try: [{name: fail, kind: raise_error, task_config: {error: Nope, message: always}}]
        catch: {as: err, do: [{name: noted, kind: set_vars, task_config: {variables: {caught: '${ $err.title }'}}}]}
    - {name: done, kind: set_vars, task_config: {variables: {count: '${ $data.fetch | length }', caught: '${ $data.caught }'}}}
"""


async def test_a_converted_upstream_workflow_validates_and_runs() -> None:
    def handler(request: Request) -> Response:
        return json_response([{"id": 1}, {"id": 2}])

    with HttpWorld(handler) as world:
        [item] = parse_manifest(UPSTREAM.replace("BASE", world.url), "orders.yaml")
        spec = message_to_manifest(item.resource)["spec"]
        assert spec["document"]["metadata"] == {"stigmer.ai/dialect": "zigflow"}
        validation = validate_workflow(spec)
        assert validation.errors == ()
        out = await run_workflow(spec, InProcessHost())
        assert world.received[0].path == "/orders"
    assert out == {"count": 2, "caught": "Nope"}


async def test_zigflow_listens_for_a_signal_by_id() -> None:
    wf = doc(
        [
            {"hold": {"listen": {"to": {"one": {"with": {"id": "approve", "type": "signal"}}}}}},
            {"show": {"set": {"by": "${ $data.hold[0].by }"}}},
        ]
    )
    host = InProcessHost()
    host.publish({"type": "approve", "data": {"by": "ann"}})
    assert await run_workflow(wf, host) == {"by": "ann"}
    # by the spec, the same filter compares the event's own id and type: this event is not it
    plain = doc(
        [{"hold": {"listen": {"to": {"one": {"with": {"id": "approve", "type": "signal"}}}}}}], dialect=None
    )
    other = InProcessHost()
    other.publish({"type": "approve", "data": {}})
    other.publish({"id": "approve", "type": "signal", "data": {"seen": True}})
    assert await run_workflow(plain, other) == [{"seen": True}]
