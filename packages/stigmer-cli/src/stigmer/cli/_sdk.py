"""Features the Python SDK provides to the CLI (``apply -f app.py``, ``export``), found by entry point.

The CLI does not depend on stigmer-sdk; ``pip install stigmer`` brings both.
"""

from __future__ import annotations

from typing import Any

from stigmer.cli._errors import CliError

__all__ = ["sdk_plugin"]

GROUP = "stigmer.manifests"


def sdk_plugin(name: str, what: str) -> Any:
    """The SDK's ``name`` entry point in ``stigmer.manifests``; a clear error when it is missing."""
    from stigmer.core import PluginNotFound, load_plugin

    try:
        return load_plugin(GROUP, name)
    except PluginNotFound:
        raise CliError(f"{what} needs the Python SDK: pip install stigmer-sdk") from None
