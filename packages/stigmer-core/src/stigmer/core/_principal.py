"""Who is calling: the principal a server authenticated for the current request.

A server sets it (``acting_as``) around each call it serves; a backend reads it
(``current_principal``) to record authors and owners and to check secret grants and runner
leases. Where nothing set it (the embedded store in Lite mode, one person and no tokens) it is
``None`` and every check passes, as before there were principals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Principal", "acting_as", "current_principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token (id and name) with a role.

    ``execution_id`` is set for a token the server issued to run one execution: such a token may
    only touch that execution and the executions it starts.
    """

    token_id: str
    name: str
    role: str
    execution_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def describe(self) -> str:
        """How errors name the caller: ``token 'alice' (role user)``."""
        if self.execution_id:
            return f"the runner of execution {self.execution_id}"
        return f"token {self.name!r} (role {self.role})"


_current: ContextVar[Principal | None] = ContextVar("stigmer_principal", default=None)


def current_principal() -> Principal | None:
    """The caller of the request being served, or None (no principals: Lite mode)."""
    return _current.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run the body as ``principal`` (restored afterwards)."""
    token = _current.set(principal)
    try:
        yield
    finally:
        # An async generator finalized in another context has nothing to restore.
        with contextlib.suppress(ValueError):
            _current.reset(token)
