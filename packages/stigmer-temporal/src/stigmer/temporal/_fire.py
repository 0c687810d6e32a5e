"""``stigmer.schedule.fire``: the workflow a Temporal Schedule starts for each slot of a Stigmer
Schedule; a local activity fires the slot in the store (see ``_schedules``)."""

from __future__ import annotations

import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

__all__ = ["FireWorkflow"]

_SCHEDULED = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name="stigmer.schedule.fire")
class FireWorkflow:
    @workflow.run
    async def run(self, args: dict[str, Any]) -> str:
        slot = workflow.info().typed_search_attributes.get(_SCHEDULED) or workflow.now()
        result: str = await workflow.execute_local_activity(
            "stigmer.schedule.fire",
            {"schedule": args["schedule"], "slot": slot.astimezone(datetime.UTC).isoformat()},
            start_to_close_timeout=datetime.timedelta(seconds=60),
        )
        return result
