"""API tokens of ``stigmer server``: created with a role, stored hashed, revocable.

A token reads ``tok_<ulid>.<secret>``: the part before the dot is the token id (safe to log and
show), the part after it is 256 bits of randomness. Only the SHA-256 of the whole token is stored,
and a presented token is checked by looking its id up and comparing digests in constant time.

Tokens live in the database named by ``database_url`` (table ``auth_tokens``) when one is given,
else in ``$STIGMER_HOME/tokens.db``: the server and ``stigmer token ...`` agree as long as they
are given the same URL (or none).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stigmer.core import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Principal,
    Settings,
    Unavailable,
    private_dir,
    private_file,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "ROLES",
    "IssuedToken",
    "Principal",
    "TokenInfo",
    "TokenStore",
    "admin_endpoint_path",
    "admin_token_path",
    "ensure_admin_token",
    "remove_admin_endpoint",
    "token_digest",
    "write_admin_endpoint",
]

ROLES: tuple[str, ...] = ("admin", "user", "runner")
_TOKEN_PREFIX = "tok_"
_TABLE = "auth_tokens"
#: The PostgreSQL advisory lock taken while a token is created (so a name is checked and taken at
#: once, by one of several servers or `stigmer token create` running together).
_PG_LOCK_KEY = 0x5715_3E13


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, never the secret."""

    id: str
    name: str
    role: str
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class IssuedToken:
    """A newly created token; ``token`` is the secret and is shown only this once."""

    id: str
    name: str
    role: str
    token: str
    created_at: datetime


def token_digest(token: str) -> str:
    """What is stored of a token: the SHA-256 of the whole token (hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_id(token: str) -> str | None:
    token_id, sep, secret = token.partition(".")
    if not sep or not secret or not token_id.startswith(_TOKEN_PREFIX) or len(token_id) > 64:
        return None
    return token_id


class TokenStore:
    """Create, list, revoke and verify API tokens (SQLAlchemy Core, SQLite or PostgreSQL)."""

    def __init__(self, database_url: str | None = None, home: Path | None = None) -> None:
        if database_url:
            for short in ("postgres://", "postgresql://"):
                if database_url.startswith(short):
                    database_url = "postgresql+psycopg://" + database_url[len(short) :]
            if not database_url.startswith(("sqlite", "postgresql")):
                raise InvalidArgument(
                    "unsupported database URL for tokens: use sqlite:///PATH or postgresql+psycopg://...",
                    ["database_url"],
                )
            self.database_url = database_url
        else:
            base = Path(home) if home is not None else Settings.load().home
            private_dir(base)
            self.database_url = f"sqlite:///{base / 'tokens.db'}"
        self._engine: Engine | None = None
        self._table: Any = None

    # -- plumbing -------------------------------------------------------------------------------

    def _open(self) -> tuple[Engine, Any]:
        if self._engine is not None:
            return self._engine, self._table
        import sqlalchemy as sa

        try:
            if self.database_url.startswith("sqlite"):
                path = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
                if path and path != ":memory:":
                    private_file(path)  # 0600 from the start (its journal files follow its mode)
                engine = sa.create_engine(self.database_url)
            else:
                engine = sa.create_engine(self.database_url, pool_pre_ping=True, pool_size=2, max_overflow=4)
        except ModuleNotFoundError as exc:
            raise InvalidArgument(
                f"database driver {exc.name!r} is not installed; "
                "install it with `pip install 'stigmer-backend-local[postgres]'`",
                ["database_url"],
            ) from None
        if engine.dialect.name == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                # Take the write lock up front: a read-then-write transaction (check a name, then
                # insert) is serialised with other processes instead of failing or racing.
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        meta = sa.MetaData()
        table = sa.Table(
            _TABLE,
            meta,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(253), nullable=False, index=True),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("token_sha256", sa.String(64), nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
            sa.Column("revoked_at", sa.String(40), nullable=True),
        )
        with self._unavailable():
            try:
                meta.create_all(engine, checkfirst=True)
            except sa.exc.DBAPIError:
                # Another process (the server, `stigmer token ...`) created it at the same moment.
                if not sa.inspect(engine).has_table(_TABLE):
                    raise
        self._engine, self._table = engine, table
        return engine, table

    def close(self) -> None:
        """Dispose of the database connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @staticmethod
    def _info(row: Any) -> TokenInfo:
        return TokenInfo(
            id=row.id,
            name=row.name,
            role=row.role,
            created_at=datetime.fromisoformat(row.created_at),
            revoked=row.revoked_at is not None,
        )

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        import sqlalchemy as sa

        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise Unavailable(
                f"the token store cannot be used right now ({type(exc.orig).__name__}); try again"
            ) from exc

    # -- public API -----------------------------------------------------------------------------

    def create(
        self, role: str, name: str | None = None, *, if_name_taken: Literal["refuse", "unnamed"] = "refuse"
    ) -> IssuedToken:
        """Create a token with ``role`` (admin, user or runner); the secret is returned only here.

        The name is checked and taken under a database lock (an advisory lock on PostgreSQL,
        ``BEGIN IMMEDIATE`` on SQLite), so processes creating tokens at once never both take it.
        When an active token already has ``name``: ``if_name_taken="refuse"`` raises AlreadyExists,
        ``"unnamed"`` names the new token after its id instead.
        """
        if role not in ROLES:
            raise InvalidArgument(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}", ["role"])
        if name is not None and not name.strip():
            raise InvalidArgument("a token name may not be blank", ["name"])
        from ulid import ULID

        engine, table = self._open()
        token_id = f"{_TOKEN_PREFIX}{str(ULID()).lower()}"
        token = f"{token_id}.{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC)
        final_name = name.strip() if name else token_id
        with self._unavailable(), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            active = conn.execute(
                table.select().where(table.c.name == final_name, table.c.revoked_at.is_(None))
            ).first()
            if active is not None and if_name_taken == "unnamed":
                final_name = token_id
            elif active is not None:
                raise AlreadyExists(
                    f"an active token named {final_name!r} exists ({active.id}); "
                    "revoke it first or choose another name"
                )
            conn.execute(
                table.insert().values(
                    id=token_id,
                    name=final_name,
                    role=role,
                    token_sha256=token_digest(token),
                    created_at=created.isoformat(),
                    revoked_at=None,
                )
            )
        return IssuedToken(id=token_id, name=final_name, role=role, token=token, created_at=created)

    def list(self) -> list[TokenInfo]:
        """Every token ever created (revoked ones included), oldest first."""
        engine, table = self._open()
        with self._unavailable(), engine.connect() as conn:
            rows = conn.execute(table.select().order_by(table.c.created_at, table.c.id)).all()
        return [self._info(row) for row in rows]

    def revoke(self, id_or_name: str) -> TokenInfo:
        """Revoke a token by id, or the active token with that name; revoking twice is harmless."""
        engine, table = self._open()
        with self._unavailable(), engine.begin() as conn:
            row = conn.execute(table.select().where(table.c.id == id_or_name)).first()
            if row is None:
                row = conn.execute(
                    table.select().where(table.c.name == id_or_name, table.c.revoked_at.is_(None))
                ).first()
            if row is None:
                raise NotFound(
                    f"no token with id or name {id_or_name!r}; list them with `stigmer token list`"
                )
            if row.revoked_at is None:
                conn.execute(
                    table.update()
                    .where(table.c.id == row.id)
                    .values(revoked_at=datetime.now(UTC).isoformat())
                )
        return TokenInfo(
            id=row.id,
            name=row.name,
            role=row.role,
            created_at=datetime.fromisoformat(row.created_at),
            revoked=True,
        )

    def verify(self, token: str) -> Principal | None:
        """The caller a presented token stands for, or None if it is unknown, wrong or revoked."""
        token_id = _token_id(token)
        if token_id is None:
            return None
        engine, table = self._open()
        with self._unavailable(), engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.id == token_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.token_sha256, token_digest(token)):
            return None
        return Principal(token_id=row.id, name=row.name, role=row.role)


def admin_token_path(home: Path) -> Path:
    """Where the server keeps the admin token for local clients: ``$STIGMER_HOME/tokens/admin``."""
    return Path(home) / "tokens" / "admin"


def admin_endpoint_path(home: Path) -> Path:
    """Where the server records the address it serves the admin token for: ``tokens/admin.endpoint``.

    Clients send ``tokens/admin`` only to that address (``host:port``, as the server bound it), so
    another process listening on another loopback port never receives the admin token.
    """
    return Path(home) / "tokens" / "admin.endpoint"


def write_admin_endpoint(home: Path, address: str) -> None:
    """Record ``address`` as the one the admin token is for (mode 0600, replaced atomically)."""
    path = admin_endpoint_path(home)
    private_dir(path.parent)
    tmp = path.with_name(f".admin.endpoint.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (address + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_admin_endpoint(home: Path, address: str) -> None:
    """Forget ``address`` on shutdown (unless another server has recorded its own since)."""
    path = admin_endpoint_path(home)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip() == address:
            path.unlink()


def ensure_admin_token(store: TokenStore, home: Path) -> str:
    """Return the admin token of ``$STIGMER_HOME/tokens/admin``, creating it (mode 0600) if needed.

    An existing file is kept when its token is still a valid admin token. Each server (each home)
    has its own admin token: the first one created in a database is named ``admin``, the others
    (servers started on the same database, at once or later) are named after their id.
    """
    path = admin_token_path(home)
    if path.exists():
        existing = path.read_text(encoding="utf-8").strip()
        principal = store.verify(existing)
        if principal is not None and principal.role == "admin":
            return existing
    issued = store.create("admin", "admin", if_name_taken="unnamed")
    private_dir(path.parent)
    tmp = path.with_name(f".admin.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (issued.token + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return issued.token
