"""Where a client connects: the active context, an explicit local store, or an explicit server.

Nothing here imports grpc or SQLAlchemy; the backend plugin is loaded by ``open_backend``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.core import InvalidArgument, Settings

if TYPE_CHECKING:
    from stigmer.core import Backend

__all__ = ["Target", "open_backend", "read_token", "resolve_target"]


@dataclass(frozen=True)
class Target:
    """A resolved connection: ``backend`` is ``local`` or ``cloud``, ``options`` its arguments."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    context: str = ""

    @property
    def local(self) -> bool:
        """True for the embedded store: runs execute in this process (Lite)."""
        return self.backend == "local"

    def describe(self) -> str:
        if self.local:
            return f"local store {self.options.get('database_url')}"
        return f"server {self.options.get('endpoint')}"


def read_token(home: Path, context: str) -> str | None:
    """The token ``stigmer login`` stored for ``context`` in ``$STIGMER_HOME/credentials.yaml``."""
    from stigmer.core import load_yaml_text

    path = home / "credentials.yaml"
    if not path.exists():
        return None
    data = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    tokens = data.get("tokens", data) if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        raise InvalidArgument(f"{path}: expected a mapping of context name to token")
    token = tokens.get(context)
    return str(token) if token is not None else None


def resolve_target(
    *,
    home: str | Path | None = None,
    database_url: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    context: str | None = None,
) -> Target:
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
        return Target("cloud", {"endpoint": endpoint, "token": token, "home": settings.home}, "")
    if database_url or (home is not None and not context):
        url = database_url or f"sqlite:///{settings.home / 'stigmer.db'}"
        return Target("local", {"database_url": url, "home": settings.home}, "")
    ctx = settings.context
    if ctx.backend == "local":
        url = settings.effective_database_url()
        return Target("local", {"database_url": url, "home": settings.home}, ctx.name)
    if ctx.backend == "cloud":
        if not ctx.endpoint:
            raise InvalidArgument(
                f"context '{ctx.name}' has no endpoint; run `stigmer login --endpoint URL --token TOKEN`"
            )
        resolved = token if token is not None else read_token(settings.home, ctx.name)
        return Target("cloud", {"endpoint": ctx.endpoint, "token": resolved, "home": settings.home}, ctx.name)
    raise InvalidArgument(
        f"context '{ctx.name}' has unknown backend '{ctx.backend}' (use 'local' or 'cloud')"
    )


def open_backend(target: Target) -> Backend:
    """Construct the backend plugin (the first moment grpc or SQLAlchemy is imported)."""
    from stigmer.core import load_backend

    backend: Backend = load_backend(target.backend, **target.options)
    return backend
