"""The ``stigmer`` command-line interface.

``main`` is the console-script entry point; ``execution_to_dict`` builds the stable JSON object
that ``stigmer run -o json`` and ``stigmer execution get -o json`` print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stigmer.cli._app import app, main
    from stigmer.cli.output._view import event_to_dict, execution_to_dict

__all__ = ["app", "event_to_dict", "execution_to_dict", "main"]

_LAZY = {
    "app": "stigmer.cli._app",
    "main": "stigmer.cli._app",
    "execution_to_dict": "stigmer.cli.output._view",
    "event_to_dict": "stigmer.cli.output._view",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stigmer.cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
