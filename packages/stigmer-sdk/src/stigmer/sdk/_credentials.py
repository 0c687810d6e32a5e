"""Tokens of server contexts: ``$STIGMER_HOME/credentials.yaml`` (written by ``stigmer login``).

The file maps context names to tokens under ``tokens:`` (a bare mapping is read too). It is
written with mode 0600, replaced atomically, and never world-readable, not even for a moment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stigmer.core import InvalidArgument, dump_yaml, load_yaml_text, private_dir

__all__ = ["credentials_path", "read_credentials", "write_credentials"]


def credentials_path(home: Path) -> Path:
    """``$STIGMER_HOME/credentials.yaml``."""
    return home / "credentials.yaml"


def read_credentials(home: Path) -> dict[str, str]:
    """Tokens keyed by context name; empty when there is no credentials file.

    Raises ``InvalidArgument`` (naming the file) when the file is not a mapping of context
    name to token.
    """
    path = credentials_path(home)
    if not path.exists():
        return {}
    data = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a mapping of context name to token; fix or delete the file")
    tokens = data.get("tokens", data)
    if not isinstance(tokens, dict):
        raise InvalidArgument(f"{path}: 'tokens' must be a mapping of context name to token")
    return {str(k): str(v) for k, v in tokens.items() if v is not None}


def write_credentials(home: Path, tokens: Mapping[str, str]) -> None:
    """Write ``tokens`` to credentials.yaml with mode 0600 (created private, replaced atomically)."""
    private_dir(home)
    path = credentials_path(home)
    text = dump_yaml([{"tokens": dict(sorted(tokens.items()))}])
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
