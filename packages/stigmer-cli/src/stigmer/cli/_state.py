"""Process-wide CLI options set by the root callback (``--debug``, ``--context``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["STATE", "State"]


@dataclass
class State:
    """Global options of one ``stigmer`` invocation."""

    debug: bool = False
    context: str = ""

    def __post_init__(self) -> None:
        self.debug = bool(os.environ.get("STIGMER_DEBUG"))


STATE = State()
