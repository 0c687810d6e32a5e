"""AES-256-GCM sealing of secret values, bound to their name by associated data."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stigmer.core import FailedPrecondition, InvalidArgument

__all__ = ["SecretBox"]

_FORMAT = b"\x01"  # format byte: 1 = 12-byte random nonce + AES-256-GCM ciphertext and tag
_NONCE = 12


class SecretBox:
    """Encrypts and decrypts values with one 32-byte master key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidArgument("the master key must be exactly 32 bytes (AES-256)", ["master_key"])
        self._aead = AESGCM(key)

    def seal(self, value: str, context: str) -> bytes:
        """Encrypt ``value``; ``context`` (e.g. ``secret:GH_TOKEN``) is bound as associated data."""
        nonce = os.urandom(_NONCE)
        return _FORMAT + nonce + self._aead.encrypt(nonce, value.encode("utf-8"), context.encode("utf-8"))

    def open(self, blob: bytes, context: str, what: str) -> str:
        """Decrypt a value sealed for ``context``; ``what`` names it in errors (``secret GH_TOKEN``)."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _FORMAT:
            raise FailedPrecondition(f"cannot decrypt {what}: the stored value is damaged; set it again")
        try:
            plain = self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], context.encode("utf-8"))
        except InvalidTag:
            raise FailedPrecondition(
                f"cannot decrypt {what}: the master key does not match the one it was encrypted with "
                "(check STIGMER_MASTER_KEY, the OS keyring entry or $STIGMER_HOME/master.key), "
                "or set the secret again"
            ) from None
        return plain.decode("utf-8")
