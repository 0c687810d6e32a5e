"""``stigmer.schedule.fire``: the workflow a Temporal Schedule starts for each slot of a Stigmer
Schedule (see ``_schedules``).

A local activity fires the slot in the store (once per slot); the run's workflow is then started
as this workflow's child, and this workflow ends when the run ends (the run's failure or
cancellation is the run's own: this workflow completes). A fire therefore lasts as long as its run,
so the Temporal Schedule's overlap policy (skip, buffer one, allow all) judges the real runs.
The child is abandoned, not cancelled, if this workflow is closed first.

Fire workflows started before the ``stigmer.schedule.fire-waits`` patch fired the slot (the store
judging overlap), had the server start the run, and ended at once; they still do on replay.
"""

from __future__ import annotations

import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

__all__ = ["FIRE_WAITS_PATCH", "FireWorkflow"]

FIRE_WAITS_PATCH = "stigmer.schedule.fire-waits"
_SCHEDULED = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name="stigmer.schedule.fire")
class FireWorkflow:
    @workflow.run
    async def run(self, args: dict[str, Any]) -> str:
        slot = workflow.info().typed_search_attributes.get(_SCHEDULED) or workflow.now()
        fire = {"schedule": args["schedule"], "slot": slot.astimezone(datetime.UTC).isoformat()}
        if not workflow.patched(FIRE_WAITS_PATCH):
            result: str = await workflow.execute_local_activity(
                "stigmer.schedule.fire", fire, start_to_close_timeout=datetime.timedelta(seconds=60)
            )
            return result
        run: dict[str, Any] = await workflow.execute_local_activity(
            "stigmer.schedule.fire",
            {**fire, "judged": True},
            start_to_close_timeout=datetime.timedelta(seconds=60),
        )
        if not run:
            return ""  # the slot fired before (another server, a backfill)
        attributes = None
        if run.get("attributes"):
            from temporalio.common import SearchAttributePair, TypedSearchAttributes

            memo = dict(run.get("memo") or {})
            attributes = TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword(k), str(v)) for k, v in memo.items()]
            )
        try:
            await workflow.execute_child_workflow(
                str(run["workflow"]),
                run["args"],
                id=str(run["id"]),
                task_queue=str(run["queue"]),
                memo=run.get("memo") or None,
                search_attributes=attributes,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except ChildWorkflowError:
            pass  # the run failed or was cancelled: its execution says how; the fire is over
        except WorkflowAlreadyStartedError:
            pass  # started elsewhere: nothing to wait for here
        return str(run["id"])
