"""An in-memory stand-in for IpfsClient (unit tests only; integration tests use the real Kubo)."""

from __future__ import annotations

import base64
import hashlib

from fedcommittee.storage.errors import IpfsError, ObjectTooLarge


def raw_cid(data: bytes) -> str:
    """The CIDv1 Kubo gives a single raw block: version 1, codec raw (0x55), sha2-256 multihash."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


class FakeIpfs:
    def __init__(self, *, honour_limit: bool = True) -> None:
        self.blobs: dict[str, bytes] = {}
        self.pins: set[str] = set()
        self.honour_limit = honour_limit
        self.cat_calls: list[tuple[str, int]] = []

    def add(self, data: bytes, pin: bool = True) -> str:
        cid = raw_cid(data)
        self.blobs[cid] = bytes(data)
        if pin:
            self.pins.add(cid)
        return cid

    def cat(self, cid: str, max_bytes: int) -> bytes:
        self.cat_calls.append((cid, max_bytes))
        if cid not in self.blobs:
            raise IpfsError("cat", f"block was not found locally (offline): {cid}", status=500, code=0)
        data = self.blobs[cid]
        if self.honour_limit and len(data) > max_bytes:
            raise ObjectTooLarge(cid, max_bytes, seen=max_bytes + 1)
        return data

    def pin(self, cid: str) -> None:
        self.pins.add(cid)
