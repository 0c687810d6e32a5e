"""The sync facade: ``Stigmer`` and ``Execution`` run the async client on a private event loop
in a daemon thread, so they work in plain scripts and inside code that already runs a loop."""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncGenerator, Coroutine, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from stigmer.core import FailedPrecondition
from stigmer.sdk._client import Applied, AsyncStigmer, ExecutionPage, Kind, ResourcePage
from stigmer.sdk.authoring._builder import M, ResourceBuilder

if TYPE_CHECKING:
    from datetime import datetime

    from google.protobuf.message import Message
    from stigmer.core import Backend, NotFound
    from stigmer.proto.v1 import execution_pb2
    from stigmer.proto.v1.memory_pb2 import Memory
    from stigmer.proto.v1.secret_pb2 import SecretMetadata
    from stigmer.sdk._events import Published
    from stigmer.sdk._execution import AsyncExecution
    from stigmer.sdk._export import Export
    from stigmer.sdk._schedules import Fired, ScheduleInfo
    from stigmer.sdk._validate import ValidationProblem
    from stigmer.sdk._workspace import Attachable

__all__ = ["Execution", "Stigmer"]

T = TypeVar("T")


class _LoopThread:
    """One event loop running forever in a daemon thread; ``run`` blocks on a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stigmer-sdk-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop.is_closed():
            coro.close()
            raise FailedPrecondition("this Stigmer client is closed; create a new one")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync Stigmer call cannot be made from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, stream: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        """Yield the items of an async generator, each awaited on the loop; closes it at the end."""

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(stream)
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self.run(step())
                if not more:
                    return
                yield item  # type: ignore[misc]
        finally:
            if not self.loop.is_closed():
                self.run(stream.aclose())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Execution:
    """Sync handle on one execution (see ``AsyncExecution``); ``for event in handle:`` streams
    live events until the execution ends or waits for an approval."""

    def __init__(self, handle: AsyncExecution, loop: _LoopThread) -> None:
        self._async = handle
        self._loop = loop

    def __repr__(self) -> str:
        return repr(self._async)

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def kind(self) -> str:
        return self._async.kind

    @property
    def phase(self) -> str:
        return self._async.phase

    @property
    def output(self) -> Any:
        return self._async.output

    @property
    def todos(self) -> list[dict[str, str]]:
        return self._async.todos

    @property
    def done(self) -> bool:
        return self._async.done

    @property
    def execution(self) -> execution_pb2.Execution:
        """The latest ``stigmer.v1.Execution`` snapshot."""
        return self._async.execution

    def refresh(self) -> execution_pb2.Execution:
        return self._loop.run(self._async.refresh())

    def wait(self, timeout: float | None = None) -> execution_pb2.Execution:
        return self._loop.run(self._async.wait(timeout))

    def result(self, timeout: float | None = None) -> Any:
        return self._loop.run(self._async.result(timeout))

    def cancel(self, reason: str = "") -> execution_pb2.Execution:
        return self._loop.run(self._async.cancel(reason))

    def approve(self, reason: str = "") -> execution_pb2.Execution:
        return self._loop.run(self._async.approve(reason))

    def reject(self, reason: str = "") -> execution_pb2.Execution:
        return self._loop.run(self._async.reject(reason))

    def __iter__(self) -> Iterator[execution_pb2.ExecutionEvent]:
        return self.events()

    def events(
        self, after_sequence: int | None = None
    ) -> Generator[execution_pb2.ExecutionEvent, None, None]:
        return self._loop.iterate(self._async.events(after_sequence))


class Stigmer:
    """Sync client: the same methods as ``AsyncStigmer``, blocking. Use it as a context manager
    (or call ``close()``): closing waits for runs this process executes (local context), unless
    the ``with`` block raised (Ctrl-C included): then they stop where they are, resumable."""

    def __init__(
        self,
        *,
        home: str | Path | None = None,
        database_url: str | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        context: str | None = None,
        backend: Backend | None = None,
        local: bool | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        self._async = AsyncStigmer(
            home=home,
            database_url=database_url,
            endpoint=endpoint,
            token=token,
            context=context,
            backend=backend,
            local=local,
            timeout=timeout,
            retries=retries,
        )
        self._loop = _LoopThread()

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncStigmer", "Stigmer", 1)

    @property
    def local(self) -> bool:
        return self._async.local

    @property
    def aio(self) -> AsyncStigmer:
        """The underlying async client (its coroutines must run on this client's loop)."""
        return self._async

    def __enter__(self) -> Stigmer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(wait_for_runs=exc_type is None)

    def close(self, wait_for_runs: bool = True) -> None:
        """Close the client; see ``AsyncStigmer.aclose``."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._async.aclose(wait_for_runs))
        finally:
            self._loop.stop()

    def check(self, *, timeout: float = 5.0) -> None:
        """See ``AsyncStigmer.check``: one authenticated call; raises when it fails."""
        self._loop.run(self._async.check(timeout=timeout))

    def check_servers(self, *, timeout: float = 5.0) -> list[tuple[str, Exception | None]]:
        """See ``AsyncStigmer.check_servers``: each server of a list endpoint, checked on its own."""
        return self._loop.run(self._async.check_servers(timeout=timeout))

    def apply(self, *resources: Any, dry_run: bool = False) -> list[Applied]:
        return self._loop.run(self._async.apply(*resources, dry_run=dry_run))

    def validate(self, *resources: Any) -> list[ValidationProblem]:
        """See ``AsyncStigmer.validate``: the problems apply would refuse (and warnings)."""
        return self._loop.run(self._async.validate(*resources))

    @overload
    def get(self, kind: type[ResourceBuilder[M]], name: str) -> M: ...
    @overload
    def get(self, kind: str, name: str) -> Message: ...
    def get(self, kind: Kind, name: str) -> Any:
        return self._loop.run(self._async.get(kind, name))

    @overload
    def list(
        self, kind: type[ResourceBuilder[M]], labels: Mapping[str, str] | str | None = None
    ) -> list[M]: ...
    @overload
    def list(self, kind: str, labels: Mapping[str, str] | str | None = None) -> list[Message]: ...
    def list(self, kind: Kind, labels: Mapping[str, str] | str | None = None) -> list[Any]:
        return self._loop.run(self._async.list(kind, labels))

    def list_page(
        self,
        kind: Kind,
        labels: Mapping[str, str] | str | None = None,
        *,
        page_size: int = 100,
        page_token: str = "",
    ) -> ResourcePage:
        return self._loop.run(self._async.list_page(kind, labels, page_size=page_size, page_token=page_token))

    def exists(self, kind: Kind, name: str) -> bool:
        return self._loop.run(self._async.exists(kind, name))

    def not_found(
        self, kinds: Kind | Sequence[Kind], name: str, *, create_hint: str = "apply one first"
    ) -> NotFound:
        return self._loop.run(self._async.not_found(kinds, name, create_hint=create_hint))

    def find_target(
        self,
        name: str,
        *,
        choose_hint: str = "pass kind='workflow' or 'agent'",
        create_hint: str = "apply one first",
    ) -> str:
        return self._loop.run(self._async.find_target(name, choose_hint=choose_hint, create_hint=create_hint))

    @overload
    def delete(self, kind: type[ResourceBuilder[M]], name: str) -> M: ...
    @overload
    def delete(self, kind: str, name: str) -> Message: ...
    def delete(self, kind: Kind, name: str) -> Any:
        return self._loop.run(self._async.delete(kind, name))

    def set_secret(self, name: str, value: str, description: str = "") -> SecretMetadata:
        return self._loop.run(self._async.set_secret(name, value, description))

    def list_secrets(self, prefix: str = "") -> tuple[SecretMetadata, ...]:
        return self._loop.run(self._async.list_secrets(prefix))

    def memories(
        self, agent: str = "", *, subject: str = "", query: str = "", limit: int = 0
    ) -> tuple[Memory, ...]:
        return self._loop.run(self._async.memories(agent, subject=subject, query=query, limit=limit))

    def memory(self, memory_id: str) -> Memory:
        return self._loop.run(self._async.memory(memory_id))

    def forget(self, memory_id: str) -> Memory:
        return self._loop.run(self._async.forget(memory_id))

    def check_master_key(self) -> tuple[bool | None, str, int]:
        return self._loop.run(self._async.check_master_key())

    def rotate_master_key(self, new_key: bytes | None = None) -> bytes:
        return self._loop.run(self._async.rotate_master_key(new_key))

    def delete_secret(self, name: str) -> SecretMetadata:
        return self._loop.run(self._async.delete_secret(name))

    def grant_secret(self, name: str, *, to: str = "", role: str = "") -> SecretMetadata:
        return self._loop.run(self._async.grant_secret(name, to=to, role=role))

    def revoke_secret(self, name: str, *, to: str = "", role: str = "") -> SecretMetadata:
        return self._loop.run(self._async.revoke_secret(name, to=to, role=role))

    def export(
        self,
        directory: str | Path | None = None,
        *,
        kind: str | None = None,
        name: str | None = None,
        format: str = "stigmer",
    ) -> Export:
        return self._loop.run(self._async.export(directory, kind=kind, name=name, format=format))

    def run(
        self,
        name: str,
        *,
        input: Any = None,
        message: str | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        session: str | None = None,
        kind: str | None = None,
        start: bool = True,
        limits: Mapping[str, float] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        model: str | None = None,
        attachments: Sequence[Attachable] = (),
    ) -> Execution:
        handle = self._loop.run(
            self._async.run(
                name,
                input=input,
                message=message,
                env=env,
                limits=limits,
                output_schema=output_schema,
                model=model,
                secrets=secrets,
                session=session,
                kind=kind,
                start=start,
                attachments=attachments,
            )
        )
        return Execution(handle, self._loop)

    def rerun(
        self, execution_id: str, *, secrets: Mapping[str, str] | None = None, start: bool = True
    ) -> Execution:
        """See :meth:`AsyncStigmer.rerun`."""
        return Execution(
            self._loop.run(self._async.rerun(execution_id, secrets=secrets, start=start)), self._loop
        )

    def retry(
        self, execution_id: str, *, secrets: Mapping[str, str] | None = None, start: bool = True
    ) -> Execution:
        """See :meth:`AsyncStigmer.retry`."""
        return Execution(
            self._loop.run(self._async.retry(execution_id, secrets=secrets, start=start)), self._loop
        )

    def pause_schedule(self, name: str) -> Any:
        """See :meth:`AsyncStigmer.pause_schedule`."""
        return self._loop.run(self._async.pause_schedule(name))

    def resume_schedule(self, name: str) -> Any:
        """See :meth:`AsyncStigmer.resume_schedule`."""
        return self._loop.run(self._async.resume_schedule(name))

    def schedule_info(self, name: str, *, count: int = 3, now: datetime | None = None) -> ScheduleInfo:
        """See :meth:`AsyncStigmer.schedule_info`."""
        return self._loop.run(self._async.schedule_info(name, count=count, now=now))

    def trigger_schedule(self, name: str, *, now: datetime | None = None) -> Execution:
        """See :meth:`AsyncStigmer.trigger_schedule`."""
        return Execution(self._loop.run(self._async.trigger_schedule(name, now=now)), self._loop)

    def backfill_schedule(
        self, name: str, start: datetime, end: datetime, *, run: bool = True
    ) -> builtins.list[Fired]:
        """See :meth:`AsyncStigmer.backfill_schedule`."""
        return self._loop.run(self._async.backfill_schedule(name, start, end, run=run))

    def run_due(
        self, *, now: datetime | None = None, name: str = "", wait: bool = True
    ) -> builtins.list[Fired]:
        """See :meth:`AsyncStigmer.run_due`."""
        return self._loop.run(self._async.run_due(now=now, name=name, wait=wait))

    def execution_files(self, execution_id: str) -> dict[str, bytes]:
        return self._loop.run(self._async.execution_files(execution_id))

    def export_session(self, session: str, directory: str | Path) -> tuple[str, ...]:
        return self._loop.run(self._async.export_session(session, directory))

    def execution(self, execution_id: str, *, in_process: bool = True) -> Execution:
        return Execution(
            self._loop.run(self._async.execution(execution_id, in_process=in_process)), self._loop
        )

    def get_execution(self, execution_id: str) -> execution_pb2.Execution:
        return self._loop.run(self._async.get_execution(execution_id))

    def list_executions(
        self,
        *,
        kind: str = "",
        target: str = "",
        phase: str | int | Sequence[str | int] = "",
        session: str = "",
        limit: int = 50,
        page_token: str = "",
        labels: Mapping[str, str] | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first (see ``AsyncStigmer.list_executions``)."""
        return self._loop.run(
            self._async.list_executions(
                kind=kind,
                target=target,
                phase=phase,
                session=session,
                limit=limit,
                page_token=page_token,
                labels=labels,
                since=since,
                until=until,
            )
        )

    def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> Generator[execution_pb2.ExecutionEvent, None, None]:
        """The events of an execution after ``after_sequence``, live until it ends (see
        ``AsyncStigmer.watch``)."""
        return self._loop.iterate(self._async.watch(execution_id, after_sequence))

    def cancel(self, execution_id: str, reason: str = "") -> execution_pb2.Execution:
        return self._loop.run(self._async.cancel(execution_id, reason))

    def publish_event(
        self,
        type: str,
        source: str,
        data: Any = None,
        *,
        subject: str = "",
        id: str = "",
        time: datetime | None = None,
        wait: bool = True,
    ) -> Published:
        """See :meth:`AsyncStigmer.publish_event`; with ``wait`` (local context), until the runs
        it started end."""

        async def go() -> Published:
            published = await self._async.publish_event(type, source, data, subject=subject, id=id, time=time)
            if wait and self._async.local:
                for handle in published.started:
                    await handle.wait()
            return published

        return self._loop.run(go())

    def send_event(
        self, execution_id: str, type: str, data: Any = None, *, text: str = "", subject: str = ""
    ) -> execution_pb2.Execution:
        return self._loop.run(self._async.send_event(execution_id, type, data, text=text, subject=subject))
