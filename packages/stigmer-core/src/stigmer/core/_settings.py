"""Settings: ``STIGMER_HOME``, ``$STIGMER_HOME/config.yaml`` and environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stigmer.core._errors import InvalidArgument

__all__ = ["Context", "Settings", "stigmer_home"]


def stigmer_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$STIGMER_HOME``, else ``~/.stigmer`` (not created here)."""
    env = os.environ if environ is None else environ
    return Path(env.get("STIGMER_HOME") or Path.home() / ".stigmer").expanduser()


@dataclass(frozen=True)
class Context:
    """A named place the CLI talks to: the embedded local store or a server."""

    name: str
    backend: str = "local"
    endpoint: str = ""
    database_url: str = ""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Precedence: environment variables, then config.yaml, then defaults."""

    home: Path
    current_context: str = "local"
    contexts: dict[str, Context] = field(default_factory=dict)
    database_url: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.home / "config.yaml"

    @property
    def context(self) -> Context:
        """The active context (``local`` unless configured otherwise)."""
        try:
            return self.contexts[self.current_context]
        except KeyError:
            known = ", ".join(sorted(self.contexts)) or "none"
            raise InvalidArgument(
                f"context '{self.current_context}' is not configured (known: {known}); "
                "run `stigmer context list`",
                ["currentContext"],
            ) from None

    def effective_database_url(self) -> str:
        """The SQLAlchemy URL of the local store: explicit URL, else ``$STIGMER_HOME/stigmer.db``."""
        return self.database_url or self.context.database_url or f"sqlite:///{self.home / 'stigmer.db'}"

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from the environment and ``$STIGMER_HOME/config.yaml``."""
        env = dict(os.environ if environ is None else environ)
        home = stigmer_home(env)
        raw: dict[str, Any] = {}
        config = home / "config.yaml"
        if config.exists():
            from stigmer.core._yaml import load_yaml_text

            try:
                loaded = load_yaml_text(config.read_text(encoding="utf-8"), str(config))
            except OSError as exc:
                raise InvalidArgument(f"{config}: cannot read: {exc.strerror}") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise InvalidArgument(f"{config}: expected a mapping at the top level")
            raw = loaded or {}
        contexts: dict[str, Context] = {"local": Context(name="local")}
        for item in raw.get("contexts") or []:
            if not isinstance(item, dict) or not item.get("name"):
                raise InvalidArgument(f"{config}: every entry of 'contexts' needs a 'name'", ["contexts"])
            contexts[str(item["name"])] = Context(
                name=str(item["name"]),
                backend=str(item.get("backend", "cloud" if item.get("endpoint") else "local")),
                endpoint=str(item.get("endpoint", "")),
                database_url=str(item.get("databaseUrl", item.get("database_url", ""))),
            )
        current = env.get("STIGMER_CONTEXT") or str(
            raw.get("currentContext", raw.get("current_context", "local"))
        )
        return cls(
            home=home,
            current_context=current,
            contexts=contexts,
            database_url=env.get("STIGMER_DATABASE_URL", ""),
            raw=raw,
        )
