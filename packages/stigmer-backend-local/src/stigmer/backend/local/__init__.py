"""Stigmer local backend: SQLite (or PostgreSQL) store with encrypted secrets.

``import stigmer.backend.local`` is cheap; the database driver is imported when a database is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stigmer.core._lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
