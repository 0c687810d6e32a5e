"""Process-wide CLI options set by the root callback (``--debug``, ``--context``)."""

from __future__ import annotations

import os

__all__ = ["STATE", "State"]


class State:
    """Global options of one ``stigmer`` invocation."""

    def __init__(self) -> None:
        self.debug = bool(os.environ.get("STIGMER_DEBUG"))
        self.context = ""


STATE = State()
