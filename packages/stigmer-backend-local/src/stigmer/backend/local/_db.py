"""The database of the local store: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes) or
PostgreSQL, and the SQL text every store module runs on it (one text for both, ``:name`` parameters)."""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from stigmer.core import InvalidArgument, StigmerError, Unavailable, private_file

__all__ = ["Conn", "Database", "IntegrityError", "Result", "in_list", "redact_url"]

log = logging.getLogger(__name__)
S = TypeVar("S")

BUSY_TIMEOUT_MS = 30_000
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to log and to show)."""
    return _PASSWORD.sub(r"\1***@", url)


class IntegrityError(Exception):
    """A statement broke a unique or foreign key constraint (two writers raced to create the same
    row, or a caller asked for a duplicate); ``orig`` is the driver's error."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig


#: ``:name`` parameters (not ``::``, not inside a quoted literal) -> psycopg's ``%(name)s``
_NAMED = re.compile(r"'[^']*'|(?<![:\w]):([A-Za-z_]\w*)|%")
_PG_SQL: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    """``sql`` with ``:name`` parameters in psycopg's style (and ``%`` doubled), made once per text."""
    found = _PG_SQL.get(sql)
    if found is None:
        found = _NAMED.sub(_pg_part, sql)
        if len(_PG_SQL) < 4096:
            _PG_SQL[sql] = found
    return found


def _pg_part(m: re.Match[str]) -> str:
    return f"%({m[1]})s" if m[1] else m[0].replace("%", "%%")


@functools.lru_cache(maxsize=512)
def _row_type(names: tuple[str, ...]) -> Any:
    """The row class of a result with these column names: a named tuple (``row.kind``, ``row[2]``)."""
    return collections.namedtuple("Row", names, rename=True)


def in_list(prefix: str, values: Iterable[object]) -> tuple[str, dict[str, object]]:
    """``(:prefix0, :prefix1, ...)`` and its parameters, for ``column IN <that>``; an empty list
    gives ``(NULL)``, which nothing is IN."""
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ("(" + ", ".join(f":{k}" for k in params) + ")" if params else "(NULL)"), params


class Result:
    """The rows of one statement, read once: ``first()``, ``one()``, ``all()``, ``scalar()``,
    ``scalars()`` (each closes the cursor), or ``rowcount`` of a write."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def _type(self) -> Any:
        return _row_type(tuple(d[0] for d in self._cur.description))

    def first(self) -> Any:
        """The first row (a named tuple), or None."""
        cur = self._cur
        try:
            found = cur.fetchone()
            return None if found is None else self._type()._make(found)
        finally:
            cur.close()

    def first_tuple(self) -> tuple[Any, ...] | None:
        """The first row as a plain tuple, or None."""
        cur = self._cur
        try:
            found: tuple[Any, ...] | None = cur.fetchone()
            return found
        finally:
            cur.close()

    def one(self) -> Any:
        found = self.first()
        if found is None:
            raise LookupError("the statement returned no row")
        return found

    def all(self) -> list[Any]:
        cur = self._cur
        try:
            rows = cur.fetchall()
            make = self._type()._make if rows else None
            return [make(r) for r in rows] if make else []
        finally:
            cur.close()

    def tuples(self) -> list[tuple[Any, ...]]:
        """Every row as a plain tuple."""
        cur = self._cur
        try:
            return list(cur.fetchall())
        finally:
            cur.close()

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        cur = self._cur
        try:
            found = cur.fetchone()
            return None if found is None else found[0]
        finally:
            cur.close()

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        cur = self._cur
        try:
            return [r[0] for r in cur.fetchall()]
        finally:
            cur.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.all())


class Conn:
    """The connection of one transaction of the store: SQL text with ``:name`` parameters, run on
    the driver (sqlite3, or psycopg on PostgreSQL). The SQL is written once for both databases;
    ``for_update`` is `` FOR UPDATE`` on PostgreSQL (rows locked by a read) and empty on SQLite,
    whose write transactions lock the whole database.

    ``memo`` is the database's (shared by its transactions): values a store module keeps because
    they never change once written, each module under a key of its own."""

    __slots__ = ("for_update", "is_sqlite", "memo", "raw")

    def __init__(self, raw: Any, is_sqlite: bool, memo: dict[str, dict[Any, Any]]) -> None:
        self.raw = raw
        self.is_sqlite = is_sqlite
        self.memo = memo
        self.for_update = "" if is_sqlite else " FOR UPDATE"

    def execute(self, sql: str, params: Mapping[str, object] | None = None) -> Result:
        """Run ``sql``; its rows are read through the returned :class:`Result`. A driver error
        propagates (the transaction maps it: :meth:`Database._translate`)."""
        if self.is_sqlite:  # the hot path of every store call: the driver's own execute
            return Result(self.raw.execute(sql, params or {}))
        cur = self.raw.cursor()
        try:
            cur.execute(_pg_sql(sql), params or {})
        except BaseException:
            cur.close()
            raise
        return Result(cur)

    def first(self, sql: str, params: Mapping[str, object]) -> tuple[Any, ...] | None:
        """The first row of ``sql`` as a plain tuple, or None (``execute(...).first_tuple()``)."""
        if self.is_sqlite:
            found: tuple[Any, ...] | None = self.raw.execute(sql, params).fetchone()
            return found
        return self.execute(sql, params).first_tuple()

    def run(self, sql: str, params: Mapping[str, object]) -> None:
        """Run a statement whose rows, if any, nobody reads."""
        if self.is_sqlite:
            self.raw.execute(sql, params)
            return
        cur = self.raw.cursor()
        try:
            cur.execute(_pg_sql(sql), params)
        finally:
            cur.close()

    def executemany(self, sql: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Run ``sql`` once per parameter set in ``rows``."""
        if not rows:
            return
        cur = self.raw.cursor()
        try:
            cur.executemany(sql if self.is_sqlite else _pg_sql(sql), rows)
        finally:
            cur.close()


class Database:
    """One database (a SQLite file, or PostgreSQL) plus the transaction discipline every store
    module uses; each transaction's statements run on a :class:`Conn`.

    Writes run in ``write()``: on SQLite a ``BEGIN IMMEDIATE`` transaction (so concurrent
    read-then-write transactions never fail with SQLITE_BUSY_SNAPSHOT), on PostgreSQL an
    ordinary transaction whose rows are locked with ``SELECT ... FOR UPDATE`` where it matters.
    Reads run in ``read()``, a consistent snapshot.

    SQLite is the standard library's ``sqlite3`` on one long-lived connection of this process.
    PostgreSQL is psycopg on a pool of connections (SQLAlchemy's pool, with a liveness check);
    SQLAlchemy is imported only then.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self.is_sqlite = url.startswith("sqlite:")
        if not self.is_sqlite and not url.startswith("postgresql"):
            raise InvalidArgument(
                f"unsupported database URL {redact_url(url)!r}: use sqlite:///PATH or postgresql+psycopg://...",
                ["database_url"],
            )
        self._lock = threading.RLock()
        #: what store modules keep of this database (see ``Conn.memo``)
        self.memo: dict[str, dict[Any, Any]] = collections.defaultdict(dict)
        self._raw: sqlite3.Connection | None = None  # SQLite: the connection, opened on first use
        self._conn: Conn  # SQLite: the statements' side of that connection
        self._writer_lock: _WriterLock | None = None
        self._sync_after = False  # SQLite in WAL mode: commits sync after the write lock (_sync)
        self._wal_fd: int | None = None
        self._synced_changes = 0
        self._path = ""
        self._engine: Any = None  # PostgreSQL: the pool
        if self.is_sqlite:
            self._open_sqlite(url)
            return
        try:
            import psycopg  # noqa: F401 - the driver, checked now for a clear error
            from sqlalchemy import create_engine
        except ModuleNotFoundError as exc:
            raise InvalidArgument(
                f"database driver {exc.name!r} is not installed for {redact_url(url)!r}; "
                "install it with `pip install 'stigmer-backend-local[postgres]'`",
                ["database_url"],
            ) from None
        self._engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    def _open_sqlite(self, url: str) -> None:
        rest = url[len("sqlite:") :]
        path = rest[3:] if rest.startswith("///") else ""
        if path and path != ":memory:":
            try:
                # Created 0600 before SQLite opens it, so its -wal and -shm files are 0600 too.
                database = private_file(path)
                for extra in ("-wal", "-shm", "-journal", "-writer.lock"):
                    if database.with_name(database.name + extra).exists():
                        private_file(database.with_name(database.name + extra))
            except OSError as exc:
                raise Unavailable(
                    f"cannot create the database {path} or its directory: {exc.strerror}"
                ) from None
            self._path = str(Path(path).expanduser())
            self._writer_lock = _WriterLock(Path(self._path))
        else:
            self._path = ":memory:"
        self._connect()  # now, so a database that cannot be opened says so at once

    def _connect(self) -> sqlite3.Connection:
        """SQLite, holding ``_lock`` (or from the constructor): the connection, opened if needed.
        It runs in autocommit mode (isolation_level=None): the store issues its transactions."""
        raw = self._raw
        if raw is None:
            try:
                raw = sqlite3.connect(
                    self._path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
                )
                mode = "memory"
                if self._path != ":memory:":
                    mode = self._use_wal(raw)
                raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                # Every acknowledged commit is on disk, across process and power loss. In WAL mode
                # a commit writes its frames (NORMAL) and the write transaction, once it has let
                # go of the write lock, waits for them to reach the disk (_sync): the next writer,
                # of this process or another, starts meanwhile, and one sync covers every frame
                # written before it. Any other journal mode syncs in the commit (FULL).
                self._sync_after = mode == "wal"
                raw.execute("PRAGMA synchronous=NORMAL" if self._sync_after else "PRAGMA synchronous=FULL")
                raw.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise self._translate(exc) from None
            self._raw = raw
            self._conn = Conn(raw, True, self.memo)
            self._synced_changes = 0
        return raw

    def _use_wal(self, raw: sqlite3.Connection) -> str:
        """Put the database in WAL mode (once, for good); returns the journal mode it is in.

        Turning a new database to WAL takes SQLite's write lock, and processes doing so at once can
        fail at the first try with "database is locked" instead of waiting (seen with four
        processes creating one database on a loaded machine): they take turns on the writer lock.
        A database already in WAL mode (every one after its first open) takes no lock here."""
        mode = str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            return mode
        lock = self._writer_lock
        if lock is not None:
            lock.__enter__()
        try:
            return str(raw.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        finally:
            if lock is not None:
                lock.__exit__()

    def _begin(self, write: bool) -> sqlite3.Connection:
        """SQLite, holding ``_lock``: a write transaction (the writer lock, then ``BEGIN
        IMMEDIATE``, so it takes SQLite's write lock up front) or a read snapshot (``BEGIN``)."""
        raw = self._connect()
        if not write:
            raw.execute("BEGIN")
            return raw
        lock = self._writer_lock
        if lock is not None:
            lock.__enter__()
        try:
            raw.execute("BEGIN IMMEDIATE")
        except BaseException:
            if lock is not None:
                lock.__exit__()
            raise
        return raw

    def _end(self, raw: sqlite3.Connection, write: bool, ok: bool) -> None:
        """End what :meth:`_begin` began: commit a write that succeeded, else roll back; then
        release the writer lock."""
        try:
            if write and ok:
                raw.commit()
            else:
                raw.rollback()
        finally:
            if write and self._writer_lock is not None:
                self._writer_lock.__exit__()
        if write and ok and self._sync_after:
            self._sync(raw)

    def _sync(self, raw: sqlite3.Connection) -> None:
        """SQLite in WAL mode, after a write transaction committed and released the write lock:
        wait until the write-ahead log is on disk (as ``synchronous=FULL`` does inside the commit),
        unless the transaction changed no row. This connection keeps the log file open, so no
        other connection deletes it meanwhile (SQLite removes it when the last one closes)."""
        changes = raw.total_changes
        if changes == self._synced_changes:
            return
        try:
            fd = self._wal_fd
            if fd is None:
                fd = self._wal_fd = os.open(self._path + "-wal", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            _datasync(fd)
        except OSError as exc:
            raise Unavailable(
                f"the write to {redact_url(self.url)} was committed but may not be on disk: "
                f"syncing its log failed ({exc.strerror or exc})"
            ) from None
        self._synced_changes = changes

    def transact(self, fn: Callable[[Conn], S], write: bool) -> S:
        """``fn(conn)`` in a write transaction (``write()``) or a read snapshot (``read()``).

        On SQLite this is the path of every call of the store, so it does what those do without
        their context managers: the same ``BEGIN IMMEDIATE``, writer lock, commit and errors.
        """
        if not self.is_sqlite:
            with self.write() if write else self.read() as conn:
                return fn(conn)
        try:
            with self._lock:
                raw = self._begin(write)
                ok = False
                try:
                    result = fn(self._conn)
                    ok = True
                finally:
                    self._end(raw, write, ok)
                return result
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is exc:
                raise
            raise mapped from None

    @contextmanager
    def write(self) -> Iterator[Conn]:
        """A write transaction; commits on success, rolls back on any error."""
        if self.is_sqlite:
            with self._errors(), self._lock:
                raw = self._begin(True)
                ok = False
                try:
                    yield self._conn
                    ok = True
                finally:
                    self._end(raw, True, ok)
            return
        with self._errors(), self._pooled() as raw:
            try:
                yield Conn(raw, False, self.memo)
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    def write_many(self, fns: Sequence[Callable[[Conn], Any]]) -> list[tuple[bool, Any]]:
        """SQLite: several writes committed as one transaction (a group commit: one fsync), each
        in a savepoint, so one that fails is undone alone. ``(True, result)`` or ``(False, error)``."""
        results: list[tuple[bool, Any]] = []
        with self.write() as conn:
            raw: Any = conn.raw
            for fn in fns:
                raw.execute("SAVEPOINT stigmer_write")
                try:
                    with self._errors():
                        results.append((True, fn(conn)))
                except Exception as exc:
                    raw.execute("ROLLBACK TO stigmer_write")
                    results.append((False, exc))
                raw.execute("RELEASE stigmer_write")
        return results

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A read-only snapshot."""
        if self.is_sqlite:
            with self._errors(), self._lock:
                raw = self._begin(False)
                try:
                    yield self._conn
                finally:
                    self._end(raw, False, False)
            return
        with self._errors(), self._pooled() as raw:
            try:
                yield Conn(raw, False, self.memo)
            finally:
                raw.rollback()

    @contextmanager
    def _pooled(self) -> Iterator[Any]:
        """PostgreSQL: a psycopg connection from the pool, given back afterwards."""
        fairy = self._engine.raw_connection()
        try:
            yield fairy.driver_connection
        finally:
            fairy.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is exc:
                raise
            raise mapped from None

    def _translate(self, exc: Exception) -> Exception:
        """The error a store call raises for ``exc``: a core error type, or an
        :class:`IntegrityError` (a conflict its caller may retry); any other exception is ``exc``."""
        if isinstance(exc, StigmerError | IntegrityError):
            return exc
        names = {c.__name__ for c in type(exc).__mro__}
        if "IntegrityError" in names:
            return IntegrityError(exc)
        if not isinstance(exc, sqlite3.Error) and not type(exc).__module__.startswith("psycopg"):
            return exc
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        if "DataError" in names:  # PostgreSQL refused a value (too long, NUL character, ...)
            return InvalidArgument(f"a value cannot be stored: {first}")
        if "OperationalError" in names and ("locked" in first or "busy" in first):
            return Unavailable(
                f"the database {redact_url(self.url)} stayed locked for {BUSY_TIMEOUT_MS // 1000} s "
                "by another process; retry, or stop the process holding it"
            )
        if "OperationalError" in names:
            return Unavailable(f"cannot use the database {redact_url(self.url)}: {first}")
        return Unavailable(f"database error on {redact_url(self.url)}: {first}")

    def dispose(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            if self._writer_lock is not None:
                self._writer_lock.close()
        if self._engine is not None:
            self._engine.dispose()


class _WriterLock:
    """A cross-process lock (``flock`` on ``<database>-writer.lock``) around SQLite write transactions.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so writers of several processes
    waste time waiting for each other; a blocking ``flock`` hands the lock over as soon as it is
    released. SQLite's locking stays in force underneath (other programs, the busy timeout).
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-writer.lock")
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: SQLite's own locking only
            self._flock: Callable[[int, int], None] | None = None
        else:
            self._flock = fcntl.flock
            self._ex, self._un = fcntl.LOCK_EX, fcntl.LOCK_UN

    def __enter__(self) -> None:
        if self._flock is None:  # pragma: no cover - not POSIX
            return
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return  # a read-only directory: SQLite's own locking only
        self._flock(self._fd, self._ex)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._flock is not None:
            self._flock(self._fd, self._un)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
