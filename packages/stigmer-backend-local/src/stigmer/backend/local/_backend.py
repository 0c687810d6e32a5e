"""``LocalBackend``: the ``stigmer.core.Backend`` contract on SQLite (or PostgreSQL).

Importing this module is cheap: SQLAlchemy and ``cryptography`` are imported when a database is
opened (the constructor) and when the first secret is touched.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from stigmer.core import (
    TERMINAL_PHASES,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Settings,
    capabilities_config,
    current_principal,
    tighten_home,
)
from stigmer.proto.v1 import (
    artifact_pb2,
    memory_pb2,
    resource_pb2,
    secret_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)
from stigmer.proto.v1 import (
    execution_pb2 as ex,
)

if TYPE_CHECKING:
    from datetime import datetime

    from stigmer.backend.local._crypto import SecretBox
    from stigmer.backend.local._db import Conn, Database
    from stigmer.backend.local.tables._schedules import Fire
    from stigmer.proto.v1.schedule_pb2 import Schedule

__all__ = ["LocalBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_POLL_MIN = 0.02
#: a SQLite write that skips its turn of the event loop (see ``_write``) does so for at most this long
_TURN_AT_LEAST = 0.01
_POLL_MAX = 0.25
#: SQLite: a watcher's own safety poll; commits of other processes are noticed by one poller of
#: ``PRAGMA data_version`` for all watchers (every 20-250 ms), this process's own by ``_notify``.
_POLL_SAFETY = 1.0


class LocalBackend:
    """The embedded store: one SQLite file (default ``$STIGMER_HOME/stigmer.db``) or a PostgreSQL URL.

    ``master_key`` (32 bytes) encrypts secrets; by default it comes from ``STIGMER_MASTER_KEY``,
    a working OS keyring, or ``$STIGMER_HOME/master.key`` (created with mode 0600).

    Calls made as a principal (:func:`stigmer.core.acting_as`, set by ``stigmer server`` for each
    caller) are checked against secret owners and grants and runner leases; calls without one
    (Lite mode) are not. ``offer_to_runners`` says whether runner workers may claim the executions
    created here (False when the server runs them itself).

    ``allow_run`` is the ``run`` capability granted to every execution in its context (``run:
    shell|script``, stdio MCP servers): on by default, for Lite; a shared server passes its
    ``--allow-run`` flag. ``allow_private_network`` is the ``private_network`` capability (an
    agent's ``fetch`` tool may reach loopback and private addresses): on by default, for Lite; a
    shared server passes its ``--allow-private-network`` flag. ``agent_limits``
    (``stigmer.v1.AgentLimits`` field names) is a ceiling written into every agent execution
    created here: a run's own limits can only be lower.
    """

    def __init__(
        self,
        database_url: str | None = None,
        home: str | Path | None = None,
        master_key: bytes | None = None,
        *,
        allow_run: bool = True,
        allow_private_network: bool = True,
        offer_to_runners: bool = True,
        server_id: str = "",
        agent_limits: Mapping[str, float] | None = None,
    ) -> None:
        from stigmer.backend.local._db import Database, IntegrityError, redact_url
        from stigmer.backend.local.tables._migrations import migrate

        settings = Settings.load() if home is None or database_url is None else None
        self.home = Path(home).expanduser() if home is not None else settings.home  # type: ignore[union-attr]
        tighten_home(self.home)  # an older version left it 0755 and its files 0644
        url = (
            database_url
            or (settings.database_url if settings else "")
            or f"sqlite:///{self.home / 'stigmer.db'}"
        )
        self._db: Database = Database(url)
        #: two writers raced to create the same row (see ``_transaction``)
        self._conflict = IntegrityError
        self.database_url = redact_url(url)
        self.schema_version = migrate(self._db)
        from stigmer.backend.local.tables import _events

        # the hot path's functions, without an import statement per call
        self._prepare_update, self._apply_update = _events.prepare_update, _events.apply_update
        self._answer = _events.answer
        if _events.forget_finished_runtime_secrets(self._db):
            log.info("deleted the run-time secrets of finished executions")
        self._master_key = master_key
        self.allow_run = allow_run
        self.agent_limits = {k: v for k, v in (agent_limits or {}).items() if v}
        self.allow_private_network = allow_private_network
        self._key_source = "the master_key argument" if master_key is not None else ""
        self._box_cache: SecretBox | None = None
        if master_key is not None:
            self._box()
        self._threaded = not self._db.is_sqlite
        #: SQLite writes waiting for their group commit, by event loop (see ``_write``)
        self._groups: dict[
            asyncio.AbstractEventLoop, list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]]
        ] = {}
        self._turn_due = 0.0  # when a write next lets the event loop turn (see ``_write``)
        self.offer_to_runners = offer_to_runners
        self.server_id = server_id
        # Watchers waiting for news, by execution id: a change wakes only that execution's.
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._watching = 0
        self._poller: asyncio.Task[None] | None = None
        self._poll_delay = _POLL_MIN
        log.debug("opened %s (schema version %d)", self.database_url, self.schema_version)

    # -----------------------------------------------------------------------------------------
    # plumbing

    def _box(self) -> SecretBox:
        if self._box_cache is None:
            from stigmer.backend.local._crypto import SecretBox
            from stigmer.backend.local._keys import resolve_master_key

            if self._master_key is None:
                key, self._key_source = resolve_master_key(self.home)
                self._master_key = self._finish_interrupted_rotation(key)
            self._box_cache = SecretBox(self._master_key)
        return self._box_cache

    def _finish_interrupted_rotation(self, key: bytes) -> bytes:
        """After a crash mid-rotation, keep whichever of the key and the next key opens the secrets."""
        from stigmer.backend.local._crypto import SecretBox
        from stigmer.backend.local._keys import KeySlot
        from stigmer.backend.local.tables import _secrets

        slot = KeySlot(self.home, self._key_source)
        new_key = slot.read_next()
        if new_key is None:
            return key
        if self._transaction(lambda c: _secrets.can_open(c, SecretBox(new_key)), False) is False:
            log.warning("an interrupted key rotation did not commit; keeping the key from %s", slot.source)
            slot.drop_next()
            return key
        log.warning("finishing an interrupted key rotation of the key in %s", slot.source)
        slot.promote(new_key)
        return new_key

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        if self._threaded:
            return await self._call(fn, write=True)
        # SQLite runs on the event loop: the writes that reach it in one turn of the loop commit
        # together (a group commit: one fsync for all, each in its own savepoint), so concurrent
        # callers do not queue behind one synchronous commit each. The first of them leads: it
        # lets the rest of the turn run, then commits the group in its own task (one turn of the
        # loop per call, not two, for a caller that writes alone).
        # A write that nothing else could join (no other callback is ready to run in this turn)
        # commits at once, without a turn of the loop, unless it had none for _TURN_AT_LEAST
        # seconds: a caller that writes in a tight loop still lets I/O and timers in.
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is not None:  # another write of this turn leads the group: join it
            future: asyncio.Future[Any] = loop.create_future()
            group.append((fn, future))
            return cast(T, await future)
        now = time.monotonic()
        if not getattr(loop, "_ready", True) and now < self._turn_due:
            return self._transaction(fn, True)
        self._turn_due = now + _TURN_AT_LEAST
        group = self._groups[loop] = []
        try:
            await asyncio.sleep(0)  # the rest of the turn: the writes that join this one
        except BaseException:  # cancelled before its turn: the others commit without this one
            loop.call_soon(self._commit_group, loop)
            raise
        del self._groups[loop]
        if not group:  # the common case: alone, no savepoint
            return self._transaction(fn, True)
        future = loop.create_future()
        self._commit([(fn, future), *group])
        return cast(T, future.result())

    def _commit_group(self, loop: asyncio.AbstractEventLoop) -> None:
        self._commit(self._groups.pop(loop, []))

    def _commit(self, writes: Sequence[tuple[Callable[[Conn], Any], asyncio.Future[Any]]]) -> None:
        """Commit ``writes`` in one transaction (each in a savepoint) and settle their futures."""
        group = [(fn, future) for fn, future in writes if not future.cancelled()]
        if not group:  # every caller gave up: no transaction
            return
        if len(group) == 1:  # no savepoint
            fn, future = group[0]
            _settle(future, functools.partial(self._transaction, fn, True))
            return
        try:
            results = self._db.write_many([fn for fn, _ in group])
        except Exception as exc:  # the commit itself failed: none of them is written
            for _, future in group:
                future.set_exception(exc)
            return
        for (fn, future), (done, value) in zip(group, results, strict=True):
            if not done and isinstance(value, self._conflict):
                _settle(future, functools.partial(self._transaction, fn, True))  # alone, with its retries
            elif done:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await self._call(fn, write=False)

    async def _call(self, fn: Callable[[Conn], T], write: bool) -> T:
        if self._threaded:
            return await asyncio.to_thread(self._transaction, fn, write)
        return self._transaction(fn, write)

    def _transaction(self, fn: Callable[[Conn], T], write: bool) -> T:
        for attempt in range(3):
            try:
                return self._db.transact(fn, write)
            except self._conflict as exc:
                # Two writers raced to create the same row (PostgreSQL); the retry sees the winner's.
                if attempt == 2:
                    raise FailedPrecondition(
                        f"a concurrent change conflicted with this one and retries did not help: {exc.orig}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _notify(self, execution_id: str | None = None) -> None:
        """Wake the watchers of ``execution_id`` (of every execution when None)."""
        if not self._waiters:  # the common case: nobody watches
            return
        if execution_id is None:
            waiters = [fut for futs in self._waiters.values() for fut in futs]
            self._waiters = {}
        else:
            waiters = list(self._waiters.pop(execution_id, ()))
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fut in waiters:
            if fut.done():
                continue
            loop = fut.get_loop()
            if loop is running:  # this thread's loop: no wake-up through its self-pipe
                fut.set_result(None)
            else:
                with contextlib.suppress(RuntimeError):  # its event loop is already closed
                    loop.call_soon_threadsafe(_resolve, fut)

    def _poll_others(self) -> None:
        """SQLite: make sure one task watches for other processes' commits (and poll soon)."""
        self._poll_delay = _POLL_MIN
        loop = asyncio.get_running_loop()
        if self._poller is None or self._poller.done() or self._poller.get_loop() is not loop:
            # The starting point is read now, before the new watcher's first read of events.
            last = self._transaction(_data_version, False)
            self._poller = loop.create_task(self._poll_data_version(last), name="stigmer-store-poller")

    async def _poll_data_version(self, last: int) -> None:
        while self._watching > 0:
            await asyncio.sleep(self._poll_delay)
            current = await self._read(_data_version)
            if current != last:
                last = current
                self._poll_delay = _POLL_MIN
                self._notify()
            else:
                self._poll_delay = min(self._poll_delay * 1.5, _POLL_MAX)

    # -----------------------------------------------------------------------------------------
    # resources

    async def apply(self, request: svc.ApplyRequest) -> svc.ApplyResponse:
        from stigmer.backend.local.tables import _resources

        who = current_principal()
        return await self._write(lambda c: _resources.apply(c, request, who))

    async def get(self, request: svc.GetRequest) -> resource_pb2.Resource:
        from stigmer.backend.local.tables import _resources

        return await self._read(lambda c: _resources.get(c, request))

    async def list(self, request: svc.ListRequest) -> svc.ListResponse:
        from stigmer.backend.local.tables import _resources

        return await self._read(lambda c: _resources.list_resources(c, request))

    async def delete(self, request: svc.DeleteRequest) -> resource_pb2.Resource:
        from stigmer.backend.local.tables import _resources

        return await self._write(lambda c: _resources.delete_resource(c, request))

    async def list_versions(self, request: svc.ListVersionsRequest) -> svc.ListVersionsResponse:
        from stigmer.backend.local.tables import _resources

        return await self._read(lambda c: _resources.list_versions(c, request))

    # -----------------------------------------------------------------------------------------
    # executions

    async def create_execution(self, request: svc.CreateExecutionRequest) -> ex.Execution:
        from stigmer.backend.local.tables import _executions, _secrets

        # a retry or re-run gets the run-time secrets of the run it repeats, sealed again
        again = request.spec.resumed_from or request.spec.rerun_of
        box = self._box() if request.runtime_secrets or again else None
        source = self._key_source
        who, offer, server = current_principal(), self.offer_to_runners, self.server_id
        ceiling = self.agent_limits

        def create(c: Conn) -> ex.Execution:
            if box is not None:
                _secrets.require_key(c, box, source)
            return _executions.create(c, box, request, who, offer, server, ceiling)  # type: ignore[arg-type]

        return await self._write(create)

    # -- schedules: each slot fires once (several schedulers on one database) -----------------

    def _schedule_creator(self) -> Any:
        from stigmer.backend.local.tables._schedules import Creator

        return Creator(
            principal=current_principal(),
            offer_to_runners=self.offer_to_runners,
            server_id=self.server_id,
            agent_ceiling=self.agent_limits,
        )

    async def fire_due(
        self, now: datetime, name: str = "", *, only: Callable[[Schedule], bool] | None = None
    ) -> builtins.list[Fire]:
        """Fire every slot of the enabled Schedules (or the one called ``name``) due at ``now``
        that no scheduler fired yet, and start buffered fires whose previous run ended; each
        slot in its own transaction, recorded once (see ``tables._schedules``). ``only`` picks
        the schedules to look at."""
        from stigmer.backend.local.tables import _schedules
        from stigmer.backend.local.tables._schedules import Fire

        creator = self._schedule_creator()
        fires: builtins.list[Fire] = []
        found, waiting = await self._read(
            lambda c: (_schedules.schedules(c, name), _schedules.buffered_ids(c))
        )
        for schedule in found:
            if only is not None and not only(schedule):
                continue

            def buffered(c: Conn, sch: Schedule = schedule) -> Fire | None:
                return _schedules.start_buffered(c, creator, sch)

            # a write transaction only when there is something to do (ticks are frequent)
            started = await self._write(buffered) if schedule.metadata.id in waiting else None
            if started is not None:
                fires.append(started)
            if schedule.spec.after:  # its slot depends on its last run

                def after(c: Conn, sch: Schedule = schedule) -> builtins.list[datetime]:
                    return _schedules.due_after(c, sch, now)

                due = await self._read(after)
            else:
                due = _schedules.due(schedule, now)

            def seen(c: Conn, sch: Schedule = schedule, at: builtins.list[datetime] = due) -> set[datetime]:
                return _schedules.recorded_slots(c, sch, at)

            recorded = await self._read(seen) if due else set()
            for slot in due:
                if slot in recorded:  # fired before: known without a write transaction
                    fires.append(Fire(schedule.metadata.name, slot, "already"))
                    continue

                def fire(c: Conn, sch: Schedule = schedule, at: datetime = slot) -> Fire:
                    return _schedules.fire_slot(c, creator, sch, at)

                fires.append(await self._write(fire))
        return fires

    async def fire_schedule(
        self, name: str, slots: Sequence[datetime], *, overlap: bool = True
    ) -> builtins.list[Fire]:
        """Fire the given slots of the Schedule ``name`` (``trigger``: now; ``backfill``: past
        slots), whether or not it is enabled; a slot fired before is not fired again.
        ``overlap=False`` starts every slot regardless of the overlap policy (a backfill)."""
        from stigmer.backend.local.tables import _schedules

        found = await self._read(lambda c: _schedules.schedules(c, name))
        if not found:
            raise NotFound(f"schedule {name!r} does not exist; list them with `stigmer schedule list`")
        schedule = found[0]
        if not overlap:
            schedule.spec.overlap = "allowAll"
        creator = self._schedule_creator()
        fires: builtins.list[Fire] = []
        for slot in slots:

            def fire(c: Conn, at: datetime = slot) -> Fire:
                return _schedules.fire_slot(c, creator, schedule, at, manual=True)

            fires.append(await self._write(fire))
        return fires

    async def schedule_fires(self, name: str, limit: int = 5) -> builtins.list[dict[str, Any]]:
        """The latest slots of the Schedule ``name``, newest first (slot, outcome, execution id,
        phase)."""
        from stigmer.backend.local.tables import _schedules

        def read(c: Conn) -> builtins.list[dict[str, Any]]:
            found = _schedules.schedules(c, name)
            return _schedules.last_fires(c, found[0].metadata.id, limit) if found else []

        return await self._read(read)

    # -- a server's leases on the executions it runs (several servers on one database) ----------

    async def hold_execution(self, execution_id: str, *, ttl: float, force: bool = False) -> bool:
        """Make this server (``server_id``) the holder of an execution it is about to run; False
        when another server holds a live lease on it (see ``tables._holds``). True without a
        ``server_id`` or for an execution no server runs (no lease to hold)."""
        from stigmer.backend.local.tables import _grants, _holds

        server, ttl_us = self.server_id, int(ttl * 1e6)
        if not server:
            return True

        def take(c: Conn) -> bool:
            if _grants.dispatch_of(c, execution_id) != "server":
                return True
            return _holds.hold(c, execution_id, server, ttl_us, force=force)

        return await self._write(take)

    async def renew_executions(self, execution_ids: Sequence[str]) -> set[str]:
        """Renew this server's leases on ``execution_ids``; the ones it still holds."""
        from stigmer.backend.local.tables import _holds

        server, ids = self.server_id, list(execution_ids)
        if not server or not ids:
            return set(ids)
        return await self._write(lambda c: _holds.renew(c, server, ids))

    async def take_over_executions(
        self, *, ttl: float, own: bool = False
    ) -> Sequence[tuple[ex.Execution, str]]:
        """Take over the PENDING and RUNNING executions of servers whose lease expired (not
        renewed for ``ttl`` seconds) — with ``own``, also those this server held before it
        restarted — each with one conditional update, so one server wins each. Returns each
        execution won and the server it was taken from."""
        from stigmer.backend.local.tables import _executions, _holds

        server, ttl_us = self.server_id, int(ttl * 1e6)
        if not server:
            return []
        candidates = await self._read(lambda c: _holds.expired(c, server, ttl_us, own=own))
        won: list[tuple[ex.Execution, str]] = []
        for lease in candidates:

            def take(c: Conn, lease: _holds.Held = lease) -> ex.Execution | None:
                if not _holds.take(c, lease, server):
                    return None
                return _executions.get(c, svc.GetExecutionRequest(id=lease.execution_id))

            execution = await self._write(take)
            if execution is not None:
                won.append((execution, lease.holder))
        return won

    async def get_execution(self, request: svc.GetExecutionRequest) -> ex.Execution:
        from stigmer.backend.local.tables import _executions

        return await self._read(lambda c: _executions.get(c, request))

    async def list_executions(self, request: svc.ListExecutionsRequest) -> svc.ListExecutionsResponse:
        from stigmer.backend.local.tables import _executions

        return await self._read(lambda c: _executions.list_executions(c, request))

    async def update_execution_status(self, request: svc.UpdateExecutionStatusRequest) -> ex.Execution:
        # The request is checked and its events copied before the transaction, and the answer made
        # after it: other processes wait for the database's write lock for less time.
        prepared = self._prepare_update(request)
        who = current_principal()
        apply = self._apply_update
        applied = await self._write(lambda c: apply(c, request, prepared, who))
        if self._waiters:  # (_notify's own first check, without the call when nobody watches)
            self._notify(request.execution_id)
        return self._answer(self._db.memo, applied)

    async def watch_execution(self, request: svc.WatchExecutionRequest) -> AsyncIterator[ex.ExecutionEvent]:
        eid, after = request.execution_id, request.after_sequence
        if after < 0:
            raise InvalidArgument("after_sequence must be 0 or more", ["after_sequence"])
        if not eid:
            raise InvalidArgument("execution_id is required", ["execution_id"])
        # A missing execution: NotFound from the watch's first read (no events, no execution).
        shared = self._db.is_sqlite
        self._watching += 1
        try:
            async with contextlib.aclosing(
                self._watch(eid, after, shared, request.final_execution)
            ) as events:
                async for event in events:
                    yield event
        finally:
            self._watching -= 1

    async def _watch(
        self, eid: str, after: int, shared: bool, final: bool = False
    ) -> AsyncGenerator[ex.ExecutionEvent, None]:
        from stigmer.backend.local.tables._events import events_after, load
        from stigmer.backend.local.tables._executions import get

        if shared:
            self._poll_others()
        delay = _POLL_SAFETY if shared else _POLL_MIN
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(eid, set()).add(waiter)
            try:
                events = await self._read(lambda c, after=after: events_after(c, eid, after))  # type: ignore[misc]
                for event in events:
                    after = event.sequence
                    if event.type == "phase" and event.phase in TERMINAL_PHASES:
                        if final:  # the execution as it ended, with the event that says so
                            ended = await self._read(lambda c: get(c, svc.GetExecutionRequest(id=eid)))
                            event.execution.CopyFrom(ended)
                        yield event
                        return
                    yield event
                if events:
                    delay = _POLL_SAFETY if shared else _POLL_MIN
                    continue
                current = await self._read(lambda c: load(c, eid, lock=False))
                if current.phase in TERMINAL_PHASES and after >= current.last:
                    return
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), delay)
                    delay = _POLL_SAFETY if shared else _POLL_MIN
                except TimeoutError:
                    if not shared:
                        delay = min(delay * 1.5, _POLL_MAX)
            finally:
                waiting = self._waiters.get(eid)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[eid]
                if not waiter.done():
                    waiter.cancel()

    async def cancel_execution(self, request: svc.CancelExecutionRequest) -> ex.Execution:
        from stigmer.backend.local.tables import _executions

        result = await self._write(lambda c: _executions.cancel(c, request))
        self._notify()
        return result

    async def submit_approval(self, request: svc.SubmitApprovalRequest) -> ex.Execution:
        from stigmer.backend.local.tables import _executions

        result = await self._write(lambda c: _executions.submit_approval(c, request))
        self._notify()
        return result

    async def get_execution_context(self, request: svc.GetExecutionContextRequest) -> svc.ExecutionContext:
        from stigmer.backend.local.tables import _executions

        box = self._box()
        who = current_principal()
        if who is not None and who.role == "runner":  # a runner's first call takes its lease
            context = await self._write(lambda c: _executions.context(c, box, request, who))
        else:
            context = await self._read(lambda c: _executions.context(c, box, request, who))
        context.config.update(
            capabilities_config(run=self.allow_run, private_network=self.allow_private_network)
        )
        return context

    # -----------------------------------------------------------------------------------------
    # secrets

    async def set_secret(self, request: svc.SetSecretRequest) -> secret_pb2.SecretMetadata:
        from stigmer.backend.local.tables import _secrets

        box = self._box()
        source = self._key_source
        who = current_principal()

        def write(c: Conn) -> secret_pb2.SecretMetadata:
            _secrets.require_key(c, box, source)
            return _secrets.set_secret(c, box, request, who)

        return await self._write(write)

    async def delete_secret(self, request: svc.DeleteSecretRequest) -> secret_pb2.SecretMetadata:
        from stigmer.backend.local.tables import _secrets

        who = current_principal()
        return await self._write(lambda c: _secrets.delete_secret(c, request, who))

    async def list_secrets(self, request: svc.ListSecretsRequest) -> svc.ListSecretsResponse:
        from stigmer.backend.local.tables import _secrets

        return await self._read(lambda c: _secrets.list_secrets(c, request))

    async def grant_secret(self, request: svc.GrantSecretRequest) -> secret_pb2.SecretMetadata:
        from stigmer.backend.local.tables import _grants, _secrets

        who = current_principal()
        return await self._write(
            lambda c: _secrets.metadata_of(c, _grants.grant(c, who, request.name, request.grant))
        )

    async def revoke_secret(self, request: svc.RevokeSecretRequest) -> secret_pb2.SecretMetadata:
        from stigmer.backend.local.tables import _grants, _secrets

        who = current_principal()
        return await self._write(
            lambda c: _secrets.metadata_of(c, _grants.revoke(c, who, request.name, request.grant))
        )

    async def check_master_key(self) -> tuple[bool | None, str, int]:
        """Whether the master key opens the secrets already stored, where the key comes from,
        and how many secret values are stored. ``None`` when nothing is stored (the key is then
        not looked up, so none is created). A key that cannot be read or decoded raises, with
        the message every other use of it gives; a key that opens nothing returns False."""
        from stigmer.backend.local.tables import _secrets

        count = await self._read(_secrets.stored_count)
        if not count:
            return None, "", 0
        box = self._box()
        opens = await self._read(lambda c: _secrets.can_open(c, box))
        return opens, self._key_source, count

    async def rotate_master_key(self, new_key: bytes | None = None) -> bytes:
        """Re-encrypt every secret with ``new_key`` (default: a new random key) in one transaction.

        When the current key came from ``$STIGMER_HOME/master.key`` or the OS keyring, the new key is
        stored there as the next key before the commit and becomes the key after it, so a crash at
        any point loses nothing (the next open finishes the rotation). A key given by argument or by
        ``STIGMER_MASTER_KEY`` must be stored by the caller. Returns the new key.
        """
        import os

        from stigmer.backend.local._crypto import SecretBox
        from stigmer.backend.local._keys import KeySlot
        from stigmer.backend.local.tables import _secrets

        old = self._box()
        key = new_key if new_key is not None else os.urandom(32)
        new = SecretBox(key)
        slot = KeySlot(self.home, self._key_source)
        slot.write_next(key)
        try:
            count = await self._write(lambda c: _secrets.reencrypt_all(c, old, new))
        except BaseException:
            slot.drop_next()
            raise
        slot.promote(key)
        if not slot.kind:
            log.warning("master key rotated; store the new key where %s comes from", self._key_source)
        self._master_key, self._box_cache = key, new
        log.info("re-encrypted %d secrets with a new master key", count)
        return key

    # -----------------------------------------------------------------------------------------
    # artifacts

    async def put_artifact(self, request: svc.PutArtifactRequest) -> artifact_pb2.ArtifactMetadata:
        from stigmer.backend.local.tables import _artifacts

        return await self._write(lambda c: _artifacts.put_artifact(c, request))

    async def get_artifact(self, request: svc.GetArtifactRequest) -> svc.GetArtifactResponse:
        from stigmer.backend.local.tables import _artifacts

        return await self._read(lambda c: _artifacts.get_artifact(c, request))

    # -- memories ----------------------------------------------------------------------------------
    async def create_memory(self, request: svc.CreateMemoryRequest) -> memory_pb2.Memory:
        from stigmer.backend.local.tables import _memories

        who = current_principal()
        return await self._write(lambda c: _memories.create(c, request, who))

    async def list_memories(self, request: svc.ListMemoriesRequest) -> svc.ListMemoriesResponse:
        from stigmer.backend.local.tables import _memories

        who = current_principal()
        run = self._write if who is not None and who.role == "runner" else self._read  # a lease may renew
        return await run(lambda c: _memories.list_memories(c, request, who))

    async def get_memory(self, request: svc.GetMemoryRequest) -> memory_pb2.Memory:
        from stigmer.backend.local.tables import _memories

        who = current_principal()
        run = self._write if who is not None and who.role == "runner" else self._read  # a lease may renew
        return await run(lambda c: _memories.get(c, request, who))

    async def delete_memory(self, request: svc.DeleteMemoryRequest) -> memory_pb2.Memory:
        from stigmer.backend.local.tables import _memories

        who = current_principal()
        return await self._write(lambda c: _memories.delete_memory(c, request, who))

    # -----------------------------------------------------------------------------------------
    # events (``PublishEvent``) and webhook keys

    async def publish_event(self, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
        from stigmer.backend.local._publish import publish

        return await publish(self, request)

    async def webhook_key(self, name: str) -> str | None:
        """The value of stored secret ``name`` (a Trigger's HMAC key), or None when there is no
        such secret. For the server's webhook listener only: it is no contract call, so no
        client can reach it."""
        from stigmer.backend.local.tables._secrets import stored_value

        box = self._box()
        return await self._read(lambda c: stored_value(c, box, name))

    async def close(self) -> None:
        if self._poller is not None and not self._poller.done():
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._poller
        self._db.dispose()

    async def __aenter__(self) -> LocalBackend:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"LocalBackend({self.database_url!r})"


def _data_version(conn: Conn) -> int:
    """SQLite's count of commits by other connections (this process writes through one)."""
    return int(conn.execute("PRAGMA data_version").scalar())


def _settle(future: asyncio.Future[Any], work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except Exception as exc:
        future.set_exception(exc)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
