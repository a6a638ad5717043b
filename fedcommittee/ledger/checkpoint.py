"""Event-stream checkpoints, so that a restarted listener resumes with no lost and no repeated events.

A checkpoint is a position in the chaincode event stream: the block to start reading from and, within that
block, the id of the last transaction whose event has been processed (``""`` when none has). This matches the
gateway's resume rule: start at ``block_number`` and skip events up to and including ``txid``.

:class:`Checkpoint` keeps the position in memory, and in a JSON file when given a path; each save replaces
the file atomically (write to a temporary file in the same folder, fsync, ``os.replace``), so a crash leaves
either the old or the new position, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path

__all__ = ["Checkpoint"]


class Checkpoint:
    """Position of a chaincode event listener: ``block_number`` (None = no checkpoint yet) and ``txid``."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._block: int | None = None
        self._txid = ""
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text())
            block = data["block_number"]
            txid = data.get("txid", "")
            if block is not None and (not isinstance(block, int) or block < 0):
                raise ValueError(f"block_number must be a non-negative integer, got {block!r}")
            if not isinstance(txid, str):
                raise ValueError(f"txid must be a string, got {txid!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"checkpoint file {self.path} is corrupt: {exc}") from exc
        self._block, self._txid = block, txid

    @property
    def block_number(self) -> int | None:
        return self._block

    @property
    def txid(self) -> str:
        return self._txid

    def position(self) -> tuple[int | None, str]:
        with self._lock:
            return self._block, self._txid

    def save(self, block_number: int, txid: str = "") -> None:
        """Record that events are processed up to ``txid`` in ``block_number`` (all earlier blocks done)."""
        if block_number < 0:
            raise ValueError(f"block_number must be >= 0, got {block_number}")
        with self._lock:
            if self.path is not None:
                self._write(block_number, txid)
            self._block, self._txid = block_number, txid

    def checkpoint_event(self, event) -> None:
        """Mark a delivered chaincode event (anything with ``block_number`` and ``txid``) as processed."""
        self.save(event.block_number, event.txid)

    def checkpoint_block(self, block_number: int) -> None:
        """Mark every event of ``block_number`` as processed: resume from the next block."""
        self.save(block_number + 1, "")

    def _write(self, block_number: int, txid: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"block_number": block_number, "txid": txid}).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        try:  # make the rename durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path}, block_number={self._block}, txid={self._txid!r})"
