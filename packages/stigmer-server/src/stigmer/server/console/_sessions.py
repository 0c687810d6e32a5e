"""Console logins: an opaque session id in an HTTP-only, SameSite=Strict cookie; the token in memory.

The token a person pasted stays in this process only (never in the cookie) and is verified again
on every request (cached 2 s), so a revoked token logs its sessions out. Each session has its own
CSRF token, which every form posts back. A restarted server forgets its sessions: log in again.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE", "LOGIN_COOKIE", "SESSION_SECONDS", "Session", "Sessions"]

COOKIE = "stigmer_console"
LOGIN_COOKIE = "stigmer_console_login"  # the CSRF token of the login form (double submit)
SESSION_SECONDS = 12 * 3600
_MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    token: str
    csrf: str
    expires: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)

    def csrf_ok(self, sent: str) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """The live sessions of one console, by id; plus the Lite one-time login code."""

    def __init__(self, one_time: tuple[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}
        self._one_time = one_time  # (code, token): `stigmer console` opens /login?code=...

    def open(self, token: str) -> Session:
        session = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(24))
        with self._lock:
            now = time.time()
            if len(self._by_id) >= _MAX_SESSIONS:
                for key in [k for k, s in self._by_id.items() if s.expires < now] or list(self._by_id)[:1000]:
                    self._by_id.pop(key, None)
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires < time.time():
                del self._by_id[session_id]
                return None
            return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def redeem(self, code: str) -> str | None:
        """The token of the one-time login code, once; None for any other code or a second use."""
        with self._lock:
            if self._one_time is None or not code:
                return None
            expected, token = self._one_time
            if not hmac.compare_digest(code.encode(), expected.encode()):
                return None
            self._one_time = None
            return token
