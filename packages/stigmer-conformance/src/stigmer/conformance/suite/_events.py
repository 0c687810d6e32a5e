"""Conformance: ``PublishEvent`` (waiting runs that listen for an event hear it; ``schedule.on``
workflows get a run) and the ``Trigger`` kind."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from stigmer.conformance._builders import API, apply, expect_error, unique, unique_secret
from stigmer.core import Backend, InvalidArgument, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2, resource_pb2, trigger_pb2, workflow_pb2

__all__ = ["TestEvents", "TestTriggers"]


def _workflow(name: str, document: dict[str, Any]) -> resource_pb2.Resource:
    spec = struct_pb2.Struct()
    spec.update({"document": {"dsl": "1.0.0", "namespace": "conformance", "name": name, "version": "1.0.0"}})
    spec.update(document)
    return resource_pb2.Resource(
        workflow=workflow_pb2.Workflow(
            api_version=API, kind="Workflow", metadata=meta_pb2.Metadata(name=name), spec=spec
        )
    )


def _listener(name: str, event_type: str) -> resource_pb2.Resource:
    listen = {"listen": {"to": {"one": {"with": {"type": event_type}}}}}
    return _workflow(name, {"do": [{"wait": listen}]})


def _starter(name: str, event_type: str) -> resource_pb2.Resource:
    return _workflow(
        name,
        {"schedule": {"on": {"one": {"with": {"type": event_type}}}}, "do": [{"k": {"set": {"a": 1}}}]},
    )


def _event(event_type: str, event_id: str = "e-1", **data: object) -> svc.PublishEventRequest:
    event = svc.CloudEvent(id=event_id, source="https://conformance.example", type=event_type, subject="s")
    if data:
        json_format.ParseDict(data, event.data)
    return svc.PublishEventRequest(event=event)


async def _run(backend: Backend, workflow: str) -> ex.Execution:
    return await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=workflow))
        )
    )


@pytest.mark.asyncio
class TestEvents:
    async def test_an_event_needs_id_source_and_type(self, backend: Backend) -> None:
        for missing in ("id", "source", "type"):
            request = _event("com.conformance.x")
            request.event.ClearField(missing)
            await expect_error(InvalidArgument, backend.publish_event(request), missing)

    async def test_a_waiting_run_that_listens_for_it_hears_it(self, backend: Backend) -> None:
        event_type = f"com.conformance.{unique('heard')}"
        name = unique("listener")
        await apply(backend, _listener(name, event_type))
        waiting = await _run(backend, name)
        published = await backend.publish_event(_event(event_type, "e-7", n=7))
        assert list(published.delivered) == [waiting.metadata.id]
        assert list(published.started) == []
        after = await backend.get_execution(svc.GetExecutionRequest(id=waiting.metadata.id))
        # a pending run's watch does not end: read the one event at the end of its log
        stream = backend.watch_execution(
            svc.WatchExecutionRequest(
                execution_id=waiting.metadata.id, after_sequence=after.status.last_sequence - 1
            )
        )
        try:
            event = await anext(aiter(stream))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        assert (event.type, event.source, event.event_id, event.subject) == (
            event_type,
            "https://conformance.example",
            "e-7",
            "s",
        )
        assert json_format.MessageToDict(event.data) == {"n": 7}

    async def test_runs_not_listening_for_it_or_finished_do_not_hear_it(self, backend: Backend) -> None:
        event_type = f"com.conformance.{unique('unheard')}"
        name = unique("listener")
        await apply(backend, _listener(name, event_type))
        finished = await _run(backend, name)
        await backend.cancel_execution(svc.CancelExecutionRequest(id=finished.metadata.id))
        other = await _run(backend, name)
        published = await backend.publish_event(_event(event_type + ".other"))
        assert other.metadata.id not in published.delivered
        published = await backend.publish_event(_event(event_type))
        assert finished.metadata.id not in published.delivered
        assert other.metadata.id in published.delivered

    async def test_schedule_on_makes_a_run_per_matching_event(self, backend: Backend) -> None:
        event_type = f"com.conformance.{unique('starts')}"
        name = unique("starter")
        await apply(backend, _starter(name, event_type))
        first = await backend.publish_event(_event(event_type, "a", n=1))
        second = await backend.publish_event(_event(event_type, "b", n=2))
        runs = [*first.started, *second.started]
        assert [r.spec.target.name for r in runs] == [name, name]
        assert [json_format.MessageToDict(r.spec.input)["id"] for r in runs] == ["a", "b"]
        assert json_format.MessageToDict(runs[0].spec.input)["data"] == {"n": 1}
        assert all(r.status.phase == ex.PHASE_PENDING for r in runs)  # the caller starts them
        assert dict(runs[0].metadata.labels) == {"stigmer.ai/event-type": event_type}
        none = await backend.publish_event(_event(event_type + ".not"))
        assert name not in [r.spec.target.name for r in none.started]

    async def test_schedule_on_all_or_expressions_are_refused(self, backend: Backend) -> None:
        name = unique("bad-on")
        doc: dict[str, Any] = {
            "schedule": {"on": {"all": [{"with": {"type": "t"}}]}},
            "do": [{"k": {"set": {"a": 1}}}],
        }
        await expect_error(InvalidArgument, apply(backend, _workflow(name, doc)), "schedule.on")
        doc = {"schedule": {"on": {"one": {"with": {"type": "${ . }"}}}}, "do": [{"k": {"set": {"a": 1}}}]}
        await expect_error(InvalidArgument, apply(backend, _workflow(name, doc)), "literal")


def _trigger(name: str, target: str, secret: str) -> resource_pb2.Resource:
    spec = trigger_pb2.TriggerSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=target), secret=secret)
    return resource_pb2.Resource(
        trigger=trigger_pb2.Trigger(
            api_version=API, kind="Trigger", metadata=meta_pb2.Metadata(name=name), spec=spec
        )
    )


@pytest.mark.asyncio
class TestTriggers:
    async def test_a_trigger_round_trips(self, backend: Backend) -> None:
        target, secret = unique("hooked"), unique_secret("HOOK")
        await backend.set_secret(svc.SetSecretRequest(name=secret, value="k" * 24))
        await apply(backend, _starter(target, "com.conformance.unused"))
        name = unique("trigger")
        applied = await apply(backend, _trigger(name, target, secret))
        assert applied.resource.trigger.metadata.id.startswith("trg_")
        got = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Trigger", name=name)))
        assert got.trigger.spec.secret == secret and got.trigger.spec.target.name == target

    async def test_a_trigger_needs_a_target_and_a_secret(self, backend: Backend) -> None:
        secret = unique_secret("HOOK")
        await expect_error(
            NotFound, apply(backend, _trigger(unique("trigger"), unique("nowhere"), secret)), "Workflow"
        )
        target = unique("hooked")
        await apply(backend, _starter(target, "com.conformance.unused"))
        await expect_error(
            InvalidArgument, apply(backend, _trigger(unique("trigger"), target, "")), "spec.secret"
        )
