"""The root options of one ``stigmer`` invocation (``--debug``, ``--context``), set by the root
callback and read by the commands."""

from __future__ import annotations

import os

__all__ = ["OPTIONS", "RootOptions"]


class RootOptions:
    """``--debug`` (or ``STIGMER_DEBUG``) and ``--context`` of this invocation."""

    def __init__(self) -> None:
        self.debug = bool(os.environ.get("STIGMER_DEBUG"))
        self.context = ""


OPTIONS = RootOptions()
