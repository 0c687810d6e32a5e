"""Stigmer local backend: SQLite (or PostgreSQL) store with encrypted secrets.

``import stigmer.backend.local`` is cheap; SQLAlchemy is imported when a database is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stigmer.backend.local._backend import LocalBackend
    from stigmer.backend.local._scheduler import Scheduler
    from stigmer.backend.local.tables._migrations import LATEST as SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "LocalBackend", "Scheduler"]

# public name -> (private module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "LocalBackend": ("stigmer.backend.local._backend", "LocalBackend"),
    "SCHEMA_VERSION": ("stigmer.backend.local.tables._migrations", "LATEST"),
    "Scheduler": ("stigmer.backend.local._scheduler", "Scheduler"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'stigmer.backend.local' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
