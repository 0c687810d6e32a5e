"""Plugins by name, found through entry points, loaded lazily and cached."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from stigmer.core._errors import StigmerError

if TYPE_CHECKING:
    from stigmer.core._backend import Backend, Runner

__all__ = ["BACKENDS_GROUP", "RUNNERS_GROUP", "PluginNotFound", "load_backend", "load_plugin", "load_runner"]

BACKENDS_GROUP = "stigmer.backends"
RUNNERS_GROUP = "stigmer.runners"

# Which distribution provides each plugin shipped by the project, for the install hint.
_KNOWN: dict[tuple[str, str], str] = {
    (BACKENDS_GROUP, "local"): "stigmer-backend-local",
    (BACKENDS_GROUP, "cloud"): "stigmer-backend-cloud",
    (RUNNERS_GROUP, "agent"): "stigmer-runner-agent",
    (RUNNERS_GROUP, "workflow"): "stigmer-runner-workflow",
}


class PluginNotFound(StigmerError):
    """No installed distribution provides the requested plugin."""

    grpc_code = "FAILED_PRECONDITION"


@functools.cache
def _entry_points() -> Any:
    """Every installed entry point, read once: each scan reads every installed distribution's
    metadata (milliseconds per scan), and a command loads a backend and a runner."""
    from importlib.metadata import entry_points

    return entry_points()


@functools.cache
def load_plugin(group: str, name: str) -> Any:
    """Load (once) the object an entry point ``name`` in ``group`` points at."""
    found = _entry_points().select(group=group)
    if name not in found.names:  # installed since the scan (or missing): look once more
        _entry_points.cache_clear()
        found = _entry_points().select(group=group)
    for ep in found:
        if ep.name == name:
            return ep.load()
    installed = ", ".join(sorted(ep.name for ep in found)) or "none"
    package = _KNOWN.get((group, name), f"a package providing a '{name}' entry point in '{group}'")
    raise PluginNotFound(
        f"no '{name}' plugin in entry-point group '{group}' (installed: {installed}); "
        f"install it with: pip install {package}"
    )


def load_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend plugin ``name`` (``local``, ``cloud``, ...) with ``options``."""
    factory = load_plugin(BACKENDS_GROUP, name)
    return cast("Backend", factory(**options))


def load_runner(name: str) -> Runner:
    """Instantiate the runner plugin ``name`` (``agent`` or ``workflow``)."""
    factory = load_plugin(RUNNERS_GROUP, name)
    return cast("Runner", factory())
