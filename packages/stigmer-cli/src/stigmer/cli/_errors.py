"""The CLI's own user errors (wrong flags, missing files, ambiguous names)."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """A user error: printed as ``error: <message>``, exit code 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
