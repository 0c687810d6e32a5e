"""Where a client connects: an explicit local store, an explicit server, or the active context.

The active context is resolved by ``stigmer.core.connection_for`` (like ``stigmer`` does).
Nothing here imports grpc or SQLAlchemy; the backend plugin is loaded by ``Connection.open``.
"""

from __future__ import annotations

import os
from pathlib import Path

from stigmer.core import Connection, InvalidArgument, Settings, connection_for

__all__ = ["resolve_target"]


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
