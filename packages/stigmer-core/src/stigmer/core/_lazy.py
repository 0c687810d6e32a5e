"""A package's public names imported on first use (PEP 562), so importing the package loads only
the parts a caller touches."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, names: Mapping[str, str | tuple[str, str]], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package ``package``: ``names`` maps each public name
    to the module defining it (or to ``(module, attribute)`` when the attribute is called otherwise
    there); a name is imported when first read and kept in the package afterwards."""
    shown = frozenset(public)

    def __getattr__(name: str) -> Any:
        try:
            found = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attribute = (found, name) if isinstance(found, str) else found
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | shown)

    return __getattr__, __dir__
