"""Settings, contexts and credentials: ``$STIGMER_HOME/config.yaml`` and ``credentials.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.cli._errors import CliError
from stigmer.cli._state import STATE

if TYPE_CHECKING:
    from stigmer.core import Settings

__all__ = [
    "credentials_path",
    "load_settings",
    "read_credentials",
    "write_config",
    "write_credentials",
]


def load_settings() -> Settings:
    """Settings from the environment and config.yaml, with ``--context`` applied."""
    from stigmer.core import Settings

    environ = dict(os.environ)
    if STATE.context:
        environ["STIGMER_CONTEXT"] = STATE.context
    return Settings.load(environ)


def credentials_path(home: Path) -> Path:
    return home / "credentials.yaml"


def read_credentials(home: Path) -> dict[str, str]:
    """Tokens keyed by context name (empty when there is no credentials file)."""
    from stigmer.core import load_yaml_text

    path = credentials_path(home)
    if not path.exists():
        return {}
    data = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a mapping of context name to token; fix or delete the file")
    tokens = data.get("tokens", data)
    if not isinstance(tokens, dict):
        raise CliError(f"{path}: 'tokens' must be a mapping of context name to token")
    return {str(k): str(v) for k, v in tokens.items() if v is not None}


def write_credentials(home: Path, tokens: dict[str, str]) -> None:
    """Write tokens to credentials.yaml with mode 0600 (created private, never world-readable)."""
    from stigmer.core import dump_yaml

    home.mkdir(parents=True, exist_ok=True)
    path = credentials_path(home)
    text = dump_yaml([{"tokens": dict(sorted(tokens.items()))}])
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_config(settings: Settings, *, current: str, contexts: list[dict[str, Any]]) -> None:
    """Rewrite config.yaml with ``currentContext`` and ``contexts``, keeping any other keys."""
    from stigmer.core import dump_yaml

    settings.home.mkdir(parents=True, exist_ok=True)
    raw = dict(settings.raw)
    raw.pop("current_context", None)
    raw["currentContext"] = current
    raw["contexts"] = contexts
    path = settings.config_path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_yaml([raw]), encoding="utf-8")
    os.replace(tmp, path)


def config_contexts(settings: Settings) -> list[dict[str, Any]]:
    """The ``contexts`` entries of config.yaml as plain dicts (the implicit ``local`` excluded)."""
    items = settings.raw.get("contexts") or []
    return [dict(item) for item in items if isinstance(item, dict)]
