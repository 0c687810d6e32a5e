"""``StigmerAgent``: one agent execution as a Temporal workflow (id = execution id).

The workflow runs the agent in an activity; when the run pauses for an approval
(WAITING_APPROVAL) it waits for the ``stigmer.approval`` signal the server sends on
``SubmitApproval``, then runs the activity again, which continues with the decision.
"""

from __future__ import annotations

import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

__all__ = ["AGENT_WORKFLOW", "APPROVAL_SIGNAL", "StigmerAgent"]

AGENT_WORKFLOW = "stigmer.agent"
APPROVAL_SIGNAL = "stigmer.approval"


@workflow.defn(name=AGENT_WORKFLOW)
class StigmerAgent:
    def __init__(self) -> None:
        self._answers = 0
        self._seen = 0

    @workflow.signal(name=APPROVAL_SIGNAL)
    def approval(self, _payload: Any = None) -> None:
        self._answers += 1

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        execution_id = str(args["executionId"])
        while True:
            self._seen = self._answers
            phase = await workflow.execute_activity(
                "stigmer.agent.run",
                execution_id,
                start_to_close_timeout=datetime.timedelta(hours=2),
                heartbeat_timeout=datetime.timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=datetime.timedelta(seconds=1)),
            )
            if phase != "PHASE_WAITING_APPROVAL":
                return {"phase": phase}
            await workflow.wait_condition(lambda: self._answers > self._seen)
