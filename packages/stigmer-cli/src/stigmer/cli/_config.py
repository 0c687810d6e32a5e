"""Settings of this invocation (``--context`` applied), and the files that hold contexts and
tokens: ``$STIGMER_HOME/config.yaml`` and ``credentials.yaml``, read and written by the SDK
(imported on first use)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.cli._options import OPTIONS

if TYPE_CHECKING:
    from stigmer.core import Settings

__all__ = [
    "config_contexts",
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
    """Tokens keyed by context name."""
    from stigmer.sdk._credentials import read_credentials as sdk_read_credentials

    return sdk_read_credentials(home)


def write_credentials(home: Path, tokens: dict[str, str]) -> None:
    """Write credentials.yaml with mode 0600."""
    from stigmer.sdk._credentials import write_credentials as sdk_write_credentials

    sdk_write_credentials(home, tokens)


def write_config(settings: Settings, *, current: str, contexts: list[dict[str, Any]]) -> None:
    """Rewrite config.yaml with ``currentContext`` and ``contexts``, keeping any other keys."""
    from stigmer.sdk._contexts import write_config as sdk_write_config

    sdk_write_config(settings, current=current, contexts=contexts)


def config_contexts(settings: Settings) -> list[dict[str, Any]]:
    """The ``contexts`` entries of config.yaml as plain dicts (the implicit ``local`` excluded)."""
    from stigmer.sdk._contexts import config_contexts as sdk_config_contexts

    return sdk_config_contexts(settings)
