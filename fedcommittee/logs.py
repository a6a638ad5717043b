"""Reading the agents' JSON-lines logs (``$FC_HOME/runs/<model>/logs/<agent>.jsonl``, written by
``roles.runtime.JsonLog``): one incremental reader shared by ``report`` (one pass over a finished run)
and ``dashboard`` (follows a running one), and the latency statistics both show.

The reader never trusts a line: a half-written last line is held back until its newline arrives, and
a line that is not a JSON object is counted in ``bad_lines`` and skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RACE_CONFLICT_CODES",
    "RACE_WORDS",
    "LogTail",
    "commit_times",
    "contract_refusals",
    "expected_race",
    "latency_by_tx",
    "latency_stats",
    "percentile",
    "race_counts",
    "read_logs",
    "refusal_kind",
    "round_overhead",
]


@dataclass
class _FileState:
    inode: int
    offset: int = 0  # bytes consumed: always just after a newline


class LogTail:
    """Incremental reader of every ``pattern`` file in ``folder``.

    Each ``poll()`` returns the records appended since the previous one (files in name order, lines in
    file order), picks up files that appeared meanwhile, and starts a file again from its beginning
    only when it was replaced or truncated. The folder need not exist yet.
    """

    def __init__(self, folder: Path, pattern: str = "*.jsonl") -> None:
        self.folder = Path(folder)
        self.pattern = pattern
        self._files: dict[Path, _FileState] = {}
        self.bad_lines = 0
        self.records_read = 0

    @property
    def files(self) -> list[Path]:
        return sorted(self._files)

    def poll(self, final: bool = False) -> list[dict]:
        """New complete records. ``final=True`` also takes a last line that has no newline (a one-off
        read of a finished run, where no more bytes will come)."""
        out: list[dict] = []
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob(self.pattern)):
            out.extend(self._read(path, final))
        return out

    def _read(self, path: Path, final: bool) -> list[dict]:
        try:
            st = os.stat(path)
        except FileNotFoundError:  # removed between glob and stat
            self._files.pop(path, None)
            return []
        state = self._files.get(path)
        if state is None or state.inode != st.st_ino or st.st_size < state.offset:
            state = self._files[path] = _FileState(inode=st.st_ino)
        if st.st_size == state.offset:
            return []
        try:
            with open(path, "rb") as fh:
                fh.seek(state.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # 0 when no complete line yet
        body, rest = chunk[:end], chunk[end:]
        state.offset += end
        lines = body.split(b"\n")[:-1] if end else []
        if final and rest:
            lines.append(rest)
            state.offset += len(rest)
        return [rec for rec in (self._parse(line) for line in lines) if rec is not None]

    def _parse(self, line: bytes) -> dict | None:
        if not line.strip():
            return None
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.bad_lines += 1
            return None
        if not isinstance(rec, dict):
            self.bad_lines += 1
            return None
        self.records_read += 1
        return rec


def read_logs(folder: Path) -> list[dict]:
    """Every record in ``folder``'s ``*.jsonl`` files, in one pass."""
    return LogTail(folder).poll(final=True)


def latency_by_tx(records: Iterable[dict]) -> dict[str, list[float]]:
    """Submit-to-commit seconds per transaction type, from the agents' ``submitted`` records."""
    lat: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        if rec.get("event") != "submitted" or "seconds" not in rec:
            continue
        try:
            lat[str(rec.get("tx", "?"))].append(float(rec["seconds"]))
        except (TypeError, ValueError):
            continue
    return dict(lat)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_stats(lat: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per transaction type: ``n``, ``median``, ``p95`` and ``max`` seconds."""
    return {
        tx: {"n": len(v), "median": percentile(v, 0.5), "p95": percentile(v, 0.95), "max": max(v)}
        for tx, v in sorted(lat.items())
        if v
    }


def round_overhead(records: Iterable[dict], walls: dict[int, float]) -> dict[int, dict[str, float]]:
    """Where each federated round's wall time went, along its critical path.

    A round's phases run one after another: providers train, upload and submit; members fetch, score
    and vote; the publisher closes and records the aggregate; members recompute and confirm. So the
    round's cost in each kind of work is the slowest provider's plus the slowest member's plus the
    publisher's, from the records tagged with the round (``trained.seconds``, ``scored.seconds``,
    ``submitted.seconds`` = submit to commit, ``ipfs.seconds`` = one put or hash-checked get).
    ``other`` is what remains of ``walls[round]``: polling, settle windows, event delivery, decoding
    and aggregation compute, process start. ``overhead`` = (ledger + ipfs) / wall.
    """
    spent = _seconds_by_kind(
        records, {"trained": "compute", "scored": "compute", "submitted": "ledger", "ipfs": "ipfs"}
    )
    out = {}
    for r, wall in sorted(walls.items()):
        row = {"wall": float(wall)}
        for kind in ("compute", "ledger", "ipfs"):
            row[kind] = sum(
                max((a[kind] for a in spent[r][role].values()), default=0.0)
                for role in ("provider", "committee", "publisher")
            )
        row["other"] = max(0.0, row["wall"] - row["compute"] - row["ledger"] - row["ipfs"])
        row["overhead"] = (row["ledger"] + row["ipfs"]) / row["wall"] if row["wall"] > 0 else float("nan")
        out[r] = row
    return out


def round_work(records: Iterable[dict]) -> dict[int, dict[str, float]]:
    """Per federated round, the slowest agent's seconds of each kind of ML work: a provider's local
    training (``trained``), a member's scoring of the round's updates (``scored``) and a member's
    reference training (``reference``, which runs while the providers train, so it is not on the
    critical path ``round_overhead`` draws). Rounds where nobody logged such work are left out."""
    spent = _seconds_by_kind(records, {"trained": "training", "scored": "scoring", "reference": "reference"})
    roles = {"training": "provider", "scoring": "committee", "reference": "committee"}
    return {
        r: {
            kind: max((a[kind] for a in spent[r][role].values()), default=0.0) for kind, role in roles.items()
        }
        for r in sorted(spent)
    }


def _seconds_by_kind(records: Iterable[dict], kinds: dict[str, str]) -> dict:
    """round -> role -> agent -> kind -> seconds, summed over the records whose event ``kinds`` names
    (event -> kind) and that carry a round and a number of seconds."""
    spent: dict[int, dict[str, dict[str, dict[str, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    )
    for rec in records:
        kind = kinds.get(str(rec.get("event")))
        r, secs = rec.get("round"), rec.get("seconds")
        numeric = isinstance(secs, int | float) and not isinstance(secs, bool)
        if kind is None or not isinstance(r, int) or not numeric:
            continue
        spent[r][str(rec.get("role"))][str(rec.get("agent"))][kind] += float(secs)
    return spent


# ------------------------------------------------------------------ what needs a person
# Validation codes of a transaction that read a key another agent's transaction changed meanwhile:
# two agents acting on the same model at once. ``Agent.submit`` retries them, so one such record is
# normal operation; only giving up (``submit_gave_up``) needs a person. ENDORSEMENT_POLICY_FAILURE is
# retried too but is not here: peers disagreeing, or one down, is worth a look. The same set as
# ledger.errors.CONFLICT_CODES, written out so that reading logs does not load the gateway and grpc
# (tests/unit/test_log_levels.py holds the two equal).
RACE_CONFLICT_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})

# The contract's words for a verdict that came after the others had finalized the update (quorum is
# reached before the last member's batch commits) or that this member had already recorded (restart).
_VERDICT_RACES = ("not pending: verdicts are closed", "has already submitted a verdict")
# The contract's words for an update whose bytes were already submitted to the model: a replay (the
# free rider's behaviour). The contract records it as rejected on the spot (the update's ``refusal``).
_REPLAY = ("replay: sha256", "was already submitted")


# Column heads for people (report): each race kind ``expected_race`` returns.
RACE_WORDS = {
    "mvcc_retry": "MVCC conflicts retried",
    "verdict_after_close": "verdicts after quorum",
    "replay_refused": "replays refused",
}


def refusal_kind(reason: str) -> str:
    """A short name for the contract's reason for refusing an update (report table, counts)."""
    if reason.startswith(_REPLAY[0]) and _REPLAY[1] in reason:
        return "identical update resubmitted"
    if "already submitted an update to round" in reason:
        return "second update in a round"
    if "is not the open round" in reason or "updates are closed" in reason:
        return "round not open"
    if "deadline" in reason and "has passed" in reason:
        return "after the deadline"
    return reason.split(":")[0][:60] or "refused"


def expected_race(event: str, fields: dict) -> str | None:
    """The kind of expected protocol outcome a would-be warning reports, or None if it may need a person.

    Agents log these at info (``JsonLog`` downgrades them and counts them per round): they are
    concurrency the protocol is built to absorb, or the contract doing its job, and hundreds of them
    in a normal run drowned the warnings that matter.
    """
    if event == "conflict":
        return "mvcc_retry" if fields.get("code") in RACE_CONFLICT_CODES else None
    if event == "peer_lag":  # an endorsing peer behind ours; retried (Agent.submit)
        return "peer_lag"
    reason = str(fields.get("reason") or "")
    if event == "verdict_refused" and any(words in reason for words in _VERDICT_RACES):
        return "verdict_after_close"
    if event == "update_refused" and refusal_kind(reason) == "identical update resubmitted":
        return "replay_refused"
    return None


def race_counts(records: Iterable[dict]) -> dict[int, dict[str, int]]:
    """Per round, how many expected races the agents logged, by kind (records with a ``race`` field;
    a record without a round counts under round 0)."""
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        kind = rec.get("race")
        if not isinstance(kind, str):
            continue
        r = rec.get("round")
        r = r if isinstance(r, int) and not isinstance(r, bool) and r >= 0 else 0
        out[r][kind] += 1
    return {r: dict(v) for r, v in sorted(out.items())}


def contract_refusals(records: Iterable[dict]) -> dict[str, dict[str, int]]:
    """Per agent (a provider's config name), the updates the contract refused, by ``refusal_kind``."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        if rec.get("event") == "update_refused":
            out[str(rec.get("agent") or "?")][refusal_kind(str(rec.get("reason") or ""))] += 1
    return {a: dict(v) for a, v in sorted(out.items())}


def commit_times(records: Iterable[dict]) -> dict[str, float]:
    """txid -> when the submitting agent saw it committed (its clock, ``submitted.ts``, sub-second).
    The earliest wins where a txid was logged twice."""
    out: dict[str, float] = {}
    for rec in records:
        txid, ts = rec.get("txid"), rec.get("ts")
        if rec.get("event") != "submitted" or not isinstance(txid, str) or not isinstance(ts, int | float):
            continue
        if isinstance(ts, bool):
            continue
        out[txid] = min(float(ts), out.get(txid, float("inf")))
    return out
