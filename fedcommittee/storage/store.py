"""Verified content storage on top of IPFS.

The ledger records, for every object, its CID *and* the lowercase hex sha256 of its exact bytes.
:meth:`ContentStore.get` fetches by CID with a byte limit and returns the bytes only if they hash to
the recorded sha256, so nothing unverified reaches the caller: a lying or compromised IPFS node, a
stream cut short or a swapped CID all end in :class:`IntegrityError`, and an oversized object in
:class:`ObjectTooLarge` before it is read in full.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from .errors import IntegrityError, ObjectTooLarge
from .ipfs import validate_cid

__all__ = ["ContentStore", "StoredObject", "IpfsBackend", "sha256_hex", "validate_sha256_hex"]

_SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")


class IpfsBackend(Protocol):
    """What :class:`ContentStore` needs from an IPFS client (``IpfsClient`` or a test fake)."""

    def add(self, data: bytes, pin: bool = True) -> str: ...

    def cat(self, cid: str, max_bytes: int) -> bytes: ...

    def pin(self, cid: str) -> None: ...


@dataclass(frozen=True)
class StoredObject:
    """What to record on the ledger for a stored object."""

    cid: str
    sha256_hex: str
    size: int


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of the exact bytes."""
    return hashlib.sha256(data).hexdigest()


def validate_sha256_hex(value: object) -> str:
    """Return ``value`` if it is 64 lowercase hex characters, else raise ``ValueError``."""
    if not isinstance(value, str) or not _SHA256_HEX_RE.fullmatch(value):
        raise ValueError(f"expected a sha256 as 64 lowercase hex characters, got {value!r}")
    return value


class ContentStore:
    """Put bytes into IPFS and get them back verified against a trusted sha256."""

    def __init__(self, ipfs: IpfsBackend, *, pin: bool = True) -> None:
        self.ipfs = ipfs
        self.pin = pin

    def put(self, data: bytes) -> StoredObject:
        """Add ``data`` (pinned by default); return its CID, sha256 and size for the ledger."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data) if not isinstance(data, bytes) else data
        digest = sha256_hex(data)
        cid = validate_cid(self.ipfs.add(data, pin=self.pin))
        return StoredObject(cid=cid, sha256_hex=digest, size=len(data))

    def get(self, cid: str, sha256_hex: str, max_bytes: int, *, size: int | None = None) -> bytes:
        """Fetch ``cid`` and return its bytes only if their sha256 is ``sha256_hex``.

        ``max_bytes`` bounds what is read (``ObjectTooLarge`` beyond it). ``size``, when the ledger
        records it, is checked too (a wrong size is an ``IntegrityError``).
        """
        validate_cid(cid)
        expected = validate_sha256_hex(sha256_hex)
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        if size is not None and size > max_bytes:
            raise ObjectTooLarge(cid, max_bytes)
        data = self.ipfs.cat(cid, max_bytes)
        if len(data) > max_bytes:  # a backend that ignores the limit must not slip through
            raise ObjectTooLarge(cid, max_bytes, seen=len(data))
        actual = _sha256(data)
        if actual != expected or (size is not None and len(data) != size):
            raise IntegrityError(cid, expected, actual, len(data))
        return data

    def get_object(self, obj: StoredObject, max_bytes: int | None = None) -> bytes:
        """:meth:`get` for a :class:`StoredObject` (limit defaults to its recorded size)."""
        limit = obj.size if max_bytes is None else max_bytes
        return self.get(obj.cid, obj.sha256_hex, limit, size=obj.size)


_sha256 = sha256_hex
