"""Publishing CloudEvents through the SDK in a local context (issue 21): a `schedule.on` workflow's
runs execute in this process; bad events are refused with the attribute named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from stigmer.core import InvalidArgument
from stigmer.sdk import AsyncStigmer, Published, Stigmer

MANIFESTS = [
    {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "on-paid"},
        "spec": {
            "document": {"dsl": "1.0.0", "namespace": "t", "name": "on-paid", "version": "1.0.0"},
            "schedule": {
                "on": {"any": [{"with": {"type": "com.acme.paid"}}, {"with": {"type": "com.acme.gift"}}]}
            },
            "do": [
                {"keep": {"set": {"order": "${ .data.order }", "type": "${ .type }", "time": "${ .time }"}}}
            ],
        },
    },
]


def test_publish_event_runs_schedule_on_workflows_here(home: Path) -> None:
    with Stigmer(home=home) as client:
        client.apply(*MANIFESTS)
        at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
        published = client.publish_event(
            "com.acme.gift", "https://shop.example", {"order": 3}, time=at, id="g-1"
        )
        assert isinstance(published, Published) and published.id == "g-1" and published.delivered == ()
        [run] = published.started
        assert run.execution.status.phase == 4  # SUCCEEDED: waited for
        assert json_format.MessageToDict(run.execution.status.output) == {
            "order": 3,
            "type": "com.acme.gift",
            "time": "2026-12-05T10:00:00Z",
        }
        assert client.publish_event("com.acme.refund", "https://shop.example").started == ()


async def test_publish_event_refuses_bad_events_naming_the_attribute(home: Path) -> None:
    async with AsyncStigmer(home=home) as client:
        with pytest.raises(InvalidArgument, match="'type'"):
            await client.publish_event("", "s")
        with pytest.raises(InvalidArgument, match="time zone"):
            await client.publish_event("t", "s", time=datetime(2026, 1, 1))
        with pytest.raises(InvalidArgument, match="JSON-compatible"):
            await client.publish_event("t", "s", {"x": object()})
