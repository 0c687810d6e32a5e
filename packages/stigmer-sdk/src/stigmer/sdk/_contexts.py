"""Contexts in ``$STIGMER_HOME/config.yaml``: the configured list, and writing it back with the
current context (what ``stigmer login``, ``logout``, ``context use`` and ``local start`` change).

Reading the active context is ``stigmer.core.Settings``; its connection is ``connection_for``;
the tokens of server contexts are in credentials.yaml (``stigmer.sdk._credentials``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from stigmer.core import dump_yaml, private_dir

if TYPE_CHECKING:
    from stigmer.core import Settings

__all__ = ["config_contexts", "write_config"]


def config_contexts(settings: Settings) -> list[dict[str, Any]]:
    """The ``contexts`` entries of config.yaml as plain dicts (the implicit ``local`` excluded)."""
    items = settings.raw.get("contexts") or []
    return [dict(item) for item in items if isinstance(item, dict)]


def write_config(settings: Settings, *, current: str, contexts: list[dict[str, Any]]) -> None:
    """Rewrite config.yaml with ``currentContext`` and ``contexts``, keeping any other keys
    (mode 0600, replaced atomically)."""
    private_dir(settings.home)
    raw = dict(settings.raw)
    raw.pop("current_context", None)
    raw["currentContext"] = current
    raw["contexts"] = contexts
    path = settings.config_path
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dump_yaml([raw]))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
