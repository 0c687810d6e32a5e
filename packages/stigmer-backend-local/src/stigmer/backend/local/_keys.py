"""Where the master key comes from: argument, ``STIGMER_MASTER_KEY``, the OS keyring, or a key file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from stigmer.core import InvalidArgument, Unavailable, private_dir

__all__ = [
    "KEYRING_SOURCE",
    "KEY_FILE",
    "PENDING_KEY_FILE",
    "KeySlot",
    "decode_master_key",
    "resolve_master_key",
    "write_key_file",
]

log = logging.getLogger(__name__)

KEY_FILE = "master.key"
PENDING_KEY_FILE = "master.key.new"  # the next key, written before a rotation commits
_KEYRING_SERVICE = "stigmer"
_KEYRING_USER = "master-key"
_KEYRING_NEXT = "master-key-next"
KEYRING_SOURCE = "the OS keyring"


def decode_master_key(text: str, source: str) -> bytes:
    """Decode base64 or hex text of exactly 32 bytes."""
    raw = text.strip()
    candidates: list[bytes] = []
    if len(raw) == 64:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(raw))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(raw, validate=True))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    for key in candidates:
        if len(key) == 32:
            return key
    raise InvalidArgument(
        f"{source} must be 32 bytes encoded as base64 or hex (64 hex digits); "
        'generate one with `python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`',
        ["master_key"],
    )


def _encode(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _keyring() -> object | None:
    """The ``keyring`` module when it is installed and has a real (not failing/plaintext) backend."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
        name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
        if (
            "fail" in name
            or "null" in name
            or "keyrings.alt" in name
            or ("chainer" in name and not getattr(backend, "backends", None))
        ):
            return None
    except Exception:
        return None
    return keyring  # type: ignore[no-any-return]


def _from_keyring(create: bool) -> bytes | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        stored = kr.get_password(_KEYRING_SERVICE, _KEYRING_USER)  # type: ignore[attr-defined]
        if stored:
            return decode_master_key(stored, "the OS keyring entry stigmer/master-key")
        if not create:
            return None
        key = secrets.token_bytes(32)
        kr.set_password(_KEYRING_SERVICE, _KEYRING_USER, _encode(key))  # type: ignore[attr-defined]
        log.info("stored a new master key in the OS keyring")
        return key
    except InvalidArgument:
        raise
    except Exception as exc:  # a keyring that fails at use time: fall back to the key file
        log.warning("the OS keyring is not usable (%s); using the key file", type(exc).__name__)
        return None


def write_key_file(path: Path, key: bytes, replace: bool = False) -> None:
    """Write ``key`` to ``path`` atomically with mode 0600.

    Without ``replace`` the file is created only if it does not exist (a concurrent creator wins
    and this raises ``FileExistsError``).
    """
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(_encode(key) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic create-if-absent
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def resolve_master_key(home: Path, environ: dict[str, str] | None = None) -> tuple[bytes, str]:
    """Find (or create) the master key; returns it with a description of where it came from.

    Order: ``STIGMER_MASTER_KEY``; a key already stored in a working OS keyring; an existing
    ``$STIGMER_HOME/master.key``; a new key in the OS keyring; a new ``master.key`` (0600).
    """
    env = os.environ if environ is None else environ
    text = env.get("STIGMER_MASTER_KEY", "")
    if text:
        return decode_master_key(text, "STIGMER_MASTER_KEY"), "STIGMER_MASTER_KEY"
    key = _from_keyring(create=False)
    if key is not None:
        return key, KEYRING_SOURCE
    path = home / KEY_FILE
    for _attempt in range(2):
        if path.exists():
            try:
                content = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise Unavailable(f"cannot read the master key file {path}: {exc}") from None
            return decode_master_key(content, f"the master key file {path}"), str(path)
        key = _from_keyring(create=True)
        if key is not None:
            return key, KEYRING_SOURCE
        key = secrets.token_bytes(32)
        try:
            write_key_file(path, key)
        except FileExistsError:
            continue  # another process created it first: read theirs
        except OSError as exc:
            raise Unavailable(f"cannot create the master key file {path}: {exc.strerror}") from None
        log.info("created a new master key file %s (mode 0600)", path)
        return key, str(path)
    raise Unavailable(f"cannot read or create the master key file {path}")


class KeySlot:
    """Where the master key is kept (the key file or the OS keyring), with a slot for the next key.

    A rotation writes the next key first, commits the re-encryption, then promotes it; a crash in
    between leaves the next key in its slot, and ``finish`` decides on the next open.
    """

    def __init__(self, home: Path, source: str) -> None:
        self.file = home / KEY_FILE
        self.pending_file = home / PENDING_KEY_FILE
        self.source = source

    @property
    def kind(self) -> str:
        if self.source == str(self.file):
            return "file"
        return "keyring" if self.source == KEYRING_SOURCE else ""

    def _kr(self) -> Any:
        kr = _keyring()
        if kr is None:
            raise Unavailable("the OS keyring is not usable any more; set STIGMER_MASTER_KEY instead")
        return kr

    def read_next(self) -> bytes | None:
        if self.kind == "file" and self.pending_file.exists():
            text = self.pending_file.read_text(encoding="ascii")
            return decode_master_key(text, f"the master key file {self.pending_file}")
        if self.kind == "keyring":
            try:
                text = self._kr().get_password(_KEYRING_SERVICE, _KEYRING_NEXT)
            except Unavailable:
                return None
            return decode_master_key(text, "the OS keyring entry stigmer/master-key-next") if text else None
        return None

    def write_next(self, key: bytes) -> None:
        if self.kind == "file":
            write_key_file(self.pending_file, key, replace=True)
        elif self.kind == "keyring":
            self._kr().set_password(_KEYRING_SERVICE, _KEYRING_NEXT, _encode(key))

    def promote(self, key: bytes) -> None:
        """The next key becomes the key."""
        if self.kind == "file":
            os.replace(self.pending_file, self.file)
        elif self.kind == "keyring":
            kr = self._kr()
            kr.set_password(_KEYRING_SERVICE, _KEYRING_USER, _encode(key))
            self.drop_next()

    def drop_next(self) -> None:
        if self.kind == "file":
            self.pending_file.unlink(missing_ok=True)
        elif self.kind == "keyring":
            with contextlib.suppress(Exception):
                self._kr().delete_password(_KEYRING_SERVICE, _KEYRING_NEXT)
