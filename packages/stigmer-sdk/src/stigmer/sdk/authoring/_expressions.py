"""Expression helpers: runtime expressions are plain ``${ }`` strings; these only spell them."""

from __future__ import annotations

import re

__all__ = ["expr", "secret"]

_SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def secret(name: str) -> str:
    """A reference to the secret ``name``: ``secret("GH_TOKEN")`` -> ``'${ $secrets.GH_TOKEN }'``.

    The value is substituted by the runner right before use and never stored in a definition.
    A workflow must also declare the name (``Workflow(..., secrets=["GH_TOKEN"])``).
    """
    if not _SECRET_NAME.match(name):
        raise ValueError(
            f"invalid secret name {name!r}: use letters, digits and underscores, starting with a letter"
        )
    return f"${{ $secrets.{name} }}"


def expr(jq: str) -> str:
    """Wrap a jq expression as a runtime expression: ``expr(".a + 1")`` -> ``'${ .a + 1 }'``."""
    text = jq.strip()
    if text.startswith("${") and text.endswith("}"):
        return text
    return f"${{ {text} }}"
