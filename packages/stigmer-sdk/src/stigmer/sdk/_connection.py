"""Which backend a client talks to, and with what options: an explicit local store, an explicit
server, or the active context of ``Settings`` (what ``stigmer`` uses).

A local context is the embedded store (``load_backend("local", database_url=..., home=...)``);
a cloud context is a server (``load_backend("cloud", endpoint=..., token=..., home=...)``) with
the token ``stigmer login`` stored. Nothing here imports a backend package: the plugin is loaded
by name only when ``Connection.open`` is called (and the runner of a local context by
``load_runner_plugin``); a plugin that is installed but broken is one clear error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stigmer.core import FailedPrecondition, InvalidArgument, Settings, load_backend, load_runner
from stigmer.sdk._credentials import read_credentials

if TYPE_CHECKING:
    from stigmer.core import Backend, Runner

__all__ = ["Connection", "connection_for", "load_runner_plugin", "resolve_target"]

T = TypeVar("T")

_PACKAGES = {
    ("stigmer.backends", "local"): "stigmer-backend-local",
    ("stigmer.backends", "cloud"): "stigmer-backend-cloud",
    ("stigmer.runners", "workflow"): "stigmer-runner-workflow",
    ("stigmer.runners", "agent"): "stigmer-runner-agent",
}


def _plugin(group: str, name: str, factory: Callable[[], T]) -> T:
    """Call a plugin loader; an installed-but-broken plugin becomes one clear error."""
    try:
        return factory()
    except (ImportError, AttributeError) as exc:
        package = _PACKAGES.get((group, name), "the package providing it")
        raise FailedPrecondition(
            f"the '{name}' plugin ({group}) is installed but cannot be loaded: {exc}; "
            f"reinstall or upgrade it: pip install -U {package}"
        ) from exc


def load_runner_plugin(name: str) -> Runner:
    """The ``workflow`` or ``agent`` runner (a missing one names the package to install)."""
    return _plugin("stigmer.runners", name, lambda: load_runner(name))


@dataclass(frozen=True)
class Connection:
    """A resolved connection: ``backend`` is the plugin name (``local`` or ``cloud``), ``options``
    its keyword arguments, ``context`` the context it came from (empty when given explicitly)."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    context: str = ""

    @property
    def local(self) -> bool:
        """True for the embedded store (runs execute in the calling process)."""
        return self.backend == "local"

    def describe(self) -> str:
        """``local store <url>`` or ``server <endpoint>``."""
        if self.local:
            return f"local store {self.options.get('database_url')}"
        return f"server {self.options.get('endpoint')}"

    def open(self) -> Backend:
        """Construct the backend plugin (the first moment grpc or a database driver is imported)."""
        backend: Backend = _plugin(
            "stigmer.backends", self.backend, lambda: load_backend(self.backend, **self.options)
        )
        return backend


def connection_for(settings: Settings, *, token: str | None = None) -> Connection:
    """The connection of the active context of ``settings``.

    For a cloud context, ``token`` wins over the one stored in credentials.yaml. Raises
    ``InvalidArgument`` for a context that is not configured, a cloud context without an
    endpoint, or an unknown backend, saying what to do.
    """
    ctx = settings.context
    if ctx.backend == "local":
        options = {"database_url": settings.effective_database_url(), "home": settings.home}
        return Connection("local", options, ctx.name)
    if ctx.backend == "cloud":
        if not ctx.endpoint:
            raise InvalidArgument(
                f"context '{ctx.name}' has no endpoint; run `stigmer login --endpoint URL --token TOKEN`"
            )
        resolved = token if token is not None else read_credentials(settings.home).get(ctx.name)
        options = {"endpoint": ctx.endpoint, "token": resolved, "home": settings.home}
        return Connection("cloud", options, ctx.name)
    raise InvalidArgument(
        f"context '{ctx.name}' has unknown backend '{ctx.backend}' (use 'local' or 'cloud')"
    )


def resolve_target(
    *,
    home: str | Path | None = None,
    database_url: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    context: str | None = None,
) -> Connection:
    """Explicit arguments win; otherwise the active context of ``Settings.load()``."""
    if endpoint and database_url:
        raise InvalidArgument("give either endpoint= (a server) or database_url= (a local store), not both")
    environ = dict(os.environ)
    if home is not None:
        environ["STIGMER_HOME"] = str(Path(home).expanduser())
    if context:
        environ["STIGMER_CONTEXT"] = context
    settings = Settings.load(environ)
    if endpoint:
        return Connection("cloud", {"endpoint": endpoint, "token": token, "home": settings.home})
    if database_url or (home is not None and not context):
        url = database_url or f"sqlite:///{settings.home / 'stigmer.db'}"
        return Connection("local", {"database_url": url, "home": settings.home})
    return connection_for(settings, token=token)
