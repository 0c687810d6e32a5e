"""Stigmer Schedules as Temporal Schedules: the server side of the full stack.

With Temporal, each Stigmer Schedule with ``cron`` or ``every`` is a Temporal Schedule
(``stigmer-schedule-<id>``: its cron and time zone or interval, jitter, catch-up window, paused
while ``enabled`` is false), kept in step whenever a Schedule or a Workflow (which may own one) is
applied or deleted, and at server start. Each action starts the small ``stigmer.schedule.fire``
workflow on the server's own queue (``stigmer-schedules``); its local activity fires the slot in
the store (once per slot, recorded as every scheduler does), and the fire workflow then starts
the run's workflow as its child and waits for it to end. So a fire lasts as long as its run, and
Temporal's own overlap policy (``SKIP``, ``BUFFER_ONE``, ``ALLOW_ALL`` from the Schedule's
``overlap``) and catch-up window judge the real runs. ``after`` schedules, whose slots depend on
their last run, stay with the server's own scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = ["FIRE_WORKFLOW", "SCHEDULE_ID_PREFIX", "SCHEDULE_QUEUE", "TemporalSchedules", "temporal_id"]

logger = logging.getLogger("stigmer.server")

SCHEDULE_QUEUE = "stigmer-schedules"
FIRE_WORKFLOW = "stigmer.schedule.fire"
SCHEDULE_ID_PREFIX = "stigmer-schedule-"
_MIN_CATCHUP = datetime.timedelta(seconds=10)  # Temporal's own minimum


def _overlap() -> dict[str, Any]:
    from temporalio.client import ScheduleOverlapPolicy

    return {
        "skip": ScheduleOverlapPolicy.SKIP,
        "bufferOne": ScheduleOverlapPolicy.BUFFER_ONE,
        "allowAll": ScheduleOverlapPolicy.ALLOW_ALL,
    }


def temporal_id(schedule: Any) -> str:
    return SCHEDULE_ID_PREFIX + str(schedule.metadata.id)


def on_temporal(schedule: Any) -> bool:
    """Whether Temporal fires this schedule (``cron`` / ``every``; not ``after``)."""
    return not schedule.spec.after


class TemporalSchedules:
    """One Temporal Schedule per Stigmer Schedule, and the worker that fires their slots.

    ``backend`` is the server's local store (with ``fire_schedule``), ``dispatcher`` the
    :class:`TemporalDispatcher` whose client it uses and which starts the runs."""

    def __init__(self, backend: Any, dispatcher: Any, *, queue: str = SCHEDULE_QUEUE) -> None:
        self.backend = backend
        self.dispatcher = dispatcher
        self.queue = queue
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None

    async def _schedules(self) -> list[Any]:
        found: list[Any] = []
        token = ""
        while True:
            page = await self.backend.list(svc.ListRequest(kind="Schedule", page_size=200, page_token=token))
            found.extend(r.schedule for r in page.resources)
            token = page.next_page_token
            if not token:
                return found

    async def sync(self) -> None:
        """Create, update, pause or delete Temporal Schedules to match the store."""
        from temporalio.client import ScheduleUpdate, ScheduleUpdateInput
        from temporalio.service import RPCError, RPCStatusCode

        async with self._lock:
            client = await self.dispatcher.client()
            wanted = {temporal_id(s): s for s in await self._schedules() if on_temporal(s)}
            existing = set()
            async for listed in await client.list_schedules():
                if listed.id.startswith(SCHEDULE_ID_PREFIX):
                    existing.add(listed.id)
            for sid, schedule in wanted.items():
                made = self._temporal(schedule)
                if sid in existing:

                    def replace(_input: ScheduleUpdateInput, made: Any = made) -> ScheduleUpdate:
                        return ScheduleUpdate(schedule=made)

                    await client.get_schedule_handle(sid).update(replace)
                else:
                    try:
                        await client.create_schedule(sid, made)
                    except RPCError as exc:  # another server made it meanwhile
                        if exc.status != RPCStatusCode.ALREADY_EXISTS:
                            raise
                        await client.get_schedule_handle(sid).update(
                            lambda _i, made=made: ScheduleUpdate(schedule=made)
                        )
            for sid in existing - set(wanted):
                with contextlib.suppress(RPCError):
                    await client.get_schedule_handle(sid).delete()

    def changed(self) -> None:
        """Sync soon (after an apply or a delete); failures are logged, the next change retries."""

        async def later() -> None:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("could not sync schedules to Temporal: %s", exc)

        self._pending = asyncio.get_running_loop().create_task(later(), name="stigmer-schedules-sync")

    def _temporal(self, schedule: Any) -> Any:
        from stigmer.core import Timetable
        from temporalio.client import (
            Schedule,
            ScheduleActionStartWorkflow,
            ScheduleIntervalSpec,
            SchedulePolicy,
            ScheduleSpec,
            ScheduleState,
        )

        spec = schedule.spec
        table = Timetable.of(spec)
        if spec.cron:
            when = ScheduleSpec(
                cron_expressions=[spec.cron],
                time_zone_name=spec.time_zone or None,
                jitter=table.jitter or None,
            )
        else:
            assert table.every is not None
            when = ScheduleSpec(
                intervals=[ScheduleIntervalSpec(every=table.every)], jitter=table.jitter or None
            )
        enabled = not spec.HasField("enabled") or spec.enabled
        return Schedule(
            action=ScheduleActionStartWorkflow(
                FIRE_WORKFLOW,
                {"schedule": schedule.metadata.name},
                id=f"stigmer-fire-{schedule.metadata.id}",
                task_queue=self.queue,
            ),
            spec=when,
            # Temporal judges overlap: each fire workflow lasts as long as the run it starts
            policy=SchedulePolicy(
                overlap=_overlap()[spec.overlap or "skip"],
                catchup_window=max(table.catchup_window, _MIN_CATCHUP),
            ),
            state=ScheduleState(paused=not enabled, note="managed by stigmer: edit the Schedule resource"),
        )

    async def fire(self, args: dict[str, Any]) -> str | dict[str, Any]:
        """The local activity: fire the slot in the store once.

        With ``judged`` (Temporal applied the overlap policy: the fire workflow then starts the
        run as its child and waits for it) every slot not fired before starts a run, and how to
        start its workflow is returned (``{}``: fired before). Without (fire workflows started
        before that patch) the store judges overlap, the dispatcher starts the run and its id
        is returned."""
        slot = datetime.datetime.fromisoformat(str(args["slot"]))
        judged = bool(args.get("judged"))
        fires = await self.backend.fire_schedule(str(args["schedule"]), [slot], overlap=not judged)
        for fire in fires:
            if fire.execution is not None:
                if judged:
                    run: dict[str, Any] = await self.dispatcher.run_workflow(fire.execution)
                    return run
                self.dispatcher.start(fire.execution)
                return str(fire.execution.metadata.id)
        return {} if judged else ""

    async def run(self, stop: asyncio.Event) -> None:
        """Sync, then run the fire worker until ``stop``."""
        from stigmer.temporal._fire import FireWorkflow
        from temporalio import activity
        from temporalio.worker import Worker

        try:
            await self.sync()
        except Exception as exc:
            logger.warning("could not sync schedules to Temporal: %s", exc)

        async def fire_slot(args: dict[str, Any]) -> str | dict[str, Any]:
            return await self.fire(args)

        fire = activity.defn(name=FIRE_WORKFLOW)(fire_slot)
        client = await self.dispatcher.client()
        async with Worker(client, task_queue=self.queue, workflows=[FireWorkflow], activities=[fire]):
            await stop.wait()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
