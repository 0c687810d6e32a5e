"""Constructing the backend of the active context, and loading runner plugins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from stigmer.cli._config import load_settings
from stigmer.cli._errors import CliError

if TYPE_CHECKING:
    from stigmer.core import Backend, Context, Runner, Settings

__all__ = ["Session", "load_runner_plugin", "open_session", "run_async"]

T = TypeVar("T")

_PACKAGES = {
    ("stigmer.backends", "local"): "stigmer-backend-local",
    ("stigmer.backends", "cloud"): "stigmer-backend-cloud",
    ("stigmer.runners", "workflow"): "stigmer-runner-workflow",
    ("stigmer.runners", "agent"): "stigmer-runner-agent",
}


@dataclass
class Session:
    """The backend of the active context, and whether it is the embedded local store."""

    backend: Backend
    settings: Settings
    context: Context

    @property
    def local(self) -> bool:
        return self.context.backend == "local"


def _plugin(group: str, name: str, factory: Any) -> Any:
    """Call a plugin loader; an installed-but-broken plugin becomes one clear error."""
    try:
        return factory()
    except (ImportError, AttributeError) as exc:
        package = _PACKAGES.get((group, name), "the package providing it")
        raise CliError(
            f"the '{name}' plugin ({group}) is installed but cannot be loaded: {exc}; "
            f"reinstall or upgrade it: pip install -U {package}"
        ) from exc


def make_backend(settings: Settings) -> tuple[Backend, Context]:
    """Build the backend of the active context (the only place the CLI constructs backends)."""
    from stigmer.core import connection_for

    connection = connection_for(settings)
    backend = _plugin("stigmer.backends", connection.backend, connection.open)
    return backend, settings.context


@asynccontextmanager
async def open_session() -> AsyncIterator[Session]:
    """The active context's backend, closed on exit."""
    settings = load_settings()
    backend, ctx = make_backend(settings)
    try:
        yield Session(backend=backend, settings=settings, context=ctx)
    finally:
        await backend.close()


def load_runner_plugin(name: str) -> Runner:
    """The ``workflow`` or ``agent`` runner; a missing one names the package to install."""
    from stigmer.core import load_runner

    runner: Runner = _plugin("stigmer.runners", name, lambda: load_runner(name))
    return runner


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)
