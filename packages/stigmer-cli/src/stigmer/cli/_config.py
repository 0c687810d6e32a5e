"""Settings, contexts and credentials: ``$STIGMER_HOME/config.yaml`` and ``credentials.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.cli._options import OPTIONS

if TYPE_CHECKING:
    from stigmer.core import Settings

__all__ = [
    "load_settings",
    "read_credentials",
    "write_config",
    "write_credentials",
]


def load_settings() -> Settings:
    """Settings from the environment and config.yaml, with ``--context`` applied."""
    from stigmer.core import Settings

    environ = dict(os.environ)
    if OPTIONS.context:
        environ["STIGMER_CONTEXT"] = OPTIONS.context
    return Settings.load(environ)


def read_credentials(home: Path) -> dict[str, str]:
    """Tokens keyed by context name: the SDK's ``read_credentials`` (imported on first use)."""
    from stigmer.sdk._credentials import read_credentials as sdk_read_credentials

    return sdk_read_credentials(home)


def write_credentials(home: Path, tokens: dict[str, str]) -> None:
    """Write credentials.yaml with mode 0600: the SDK's ``write_credentials``."""
    from stigmer.sdk._credentials import write_credentials as sdk_write_credentials

    sdk_write_credentials(home, tokens)


def write_config(settings: Settings, *, current: str, contexts: list[dict[str, Any]]) -> None:
    """Rewrite config.yaml with ``currentContext`` and ``contexts``, keeping any other keys."""
    from stigmer.core import dump_yaml, private_dir

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


def config_contexts(settings: Settings) -> list[dict[str, Any]]:
    """The ``contexts`` entries of config.yaml as plain dicts (the implicit ``local`` excluded)."""
    items = settings.raw.get("contexts") or []
    return [dict(item) for item in items if isinstance(item, dict)]
