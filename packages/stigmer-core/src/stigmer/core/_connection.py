"""Which backend a client talks to, and with what options, from ``Settings``.

A local context is the embedded store (``load_backend("local", database_url=..., home=...)``);
a cloud context is a server (``load_backend("cloud", endpoint=..., token=..., home=...)``) with
the token ``stigmer login`` stored. Nothing here imports a backend package: the plugin is loaded
by name only when ``Connection.open`` is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.core._credentials import read_credentials
from stigmer.core._errors import InvalidArgument
from stigmer.core._plugins import load_backend

if TYPE_CHECKING:
    from stigmer.core._backend import Backend
    from stigmer.core._settings import Settings

__all__ = ["Connection", "connection_for"]


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
        """Construct the backend plugin (the first moment grpc or SQLAlchemy is imported)."""
        backend: Backend = load_backend(self.backend, **self.options)
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
