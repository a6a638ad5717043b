"""Event-stream checkpoints, so that a restarted listener resumes with no lost and no repeated events.

A checkpoint is a position in the chaincode event stream: the block to start reading from and, within that
block, the id of the last transaction whose event has been processed (``""`` when none has). This matches the
gateway's resume rule: start at ``block_number`` and skip events up to and including ``txid``.

:class:`Checkpoint` keeps the position in memory, and in a JSON file when given a path; each save replaces
the file atomically (write to a temporary file in the same folder, fsync, ``os.replace``), so a crash leaves
either the old or the new position, never a torn one.

With ``every`` > 0 the file is written at most once in that many seconds (and by ``flush``): a restart may
then see again the events of those last seconds. That is the trade for listeners to which an event is only
a wake-up (the agents, which read the ledger's state anyway): two fsyncs per event in each of a run's agent
processes cost more CPU and event latency than anything else the pump does.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["Checkpoint"]


class Checkpoint:
    """Position of a chaincode event listener: ``block_number`` (None = no checkpoint yet) and ``txid``."""

    def __init__(self, path: str | Path | None = None, *, every: float = 0.0) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0 seconds, got {every}")
        self.path = Path(path) if path is not None else None
        self.every = every
        self._lock = threading.Lock()
        self._block: int | None = None
        self._txid = ""
        self._written_at = float("-inf")  # time.monotonic() of the last write
        self._unwritten = False  # a saved position not in the file yet (``every``)
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
            due = self.path is not None and time.monotonic() - self._written_at >= self.every
            if due:
                self._write(block_number, txid)  # first: a failed write leaves the old position
            self._block, self._txid = block_number, txid
            self._unwritten = self.path is not None and not due

    def flush(self) -> None:
        """Write a position saved since the last write (``every``), if any."""
        with self._lock:
            if self._unwritten and self._block is not None:
                self._write(self._block, self._txid)
                self._unwritten = False

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
            self._written_at = time.monotonic()
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
