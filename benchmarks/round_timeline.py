"""Where each federated round's wall time goes, read from a run's agent logs (``*.jsonl``).

For every round it prints the milestones of the critical path, in seconds after the round opened:

    open        the last ConfirmAggregate of the previous round committed (round 1: the last ApproveModel)
    train       the first provider began training (its global model fetched, or prefetched before)
    trained     the last provider finished training and uploading (``trained``)
    submitted   the last SubmitUpdate committed
    judge       the first member began scoring (its fetches may be earlier, as the updates arrive)
    scored      the last member finished scoring (``scored``)
    verdicts    the last SubmitVerdicts committed
    close       the publisher decided to close (``close_round``)
    closed      CloseRound committed (or CloseRoundWithAggregate)
    recorded    RecordAggregate committed (or CloseRoundWithAggregate: then equal to ``closed``)
    confirmed   the last ConfirmAggregate committed (= the next round's ``open``)

and the gaps between consecutive milestones, with the work done inside each (training, scoring,
submit-to-commit) so that idle time (a timer, a poll, a settle window) stands out as ``idle``: the
gap minus the work of the slowest agent in it. A median row closes the table.

    .venv/bin/python benchmarks/round_timeline.py RUN_DIR/logs
    .venv/bin/python benchmarks/round_timeline.py reports/<model id>/logs --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.logs import read_logs  # noqa: E402

MILESTONES = ("open", "train", "trained", "submitted", "judge", "scored", "verdicts", "close", "closed",
              "recorded", "confirmed")  # fmt: skip


def _committed(recs: list[dict], tx: str) -> list[float]:
    return [r["ts"] for r in recs if r.get("event") == "submitted" and r.get("tx") == tx]


def _started(recs: list[dict], event: str) -> list[float]:
    """When each ``event`` record's timed work began (its ts less its seconds)."""
    return [x["ts"] - float(x.get("seconds") or 0) for x in recs if x.get("event") == event]


def _first(values: list[float]) -> float | None:
    return min(values) if values else None


def _last(values: list[float]) -> float | None:
    return max(values) if values else None


def milestones(by_round: dict[int, list[dict]], r: int, opened: float | None) -> dict[str, float | None]:
    """The absolute times of one round's milestones (None where the logs have no record of it)."""
    recs = by_round.get(r, [])
    role = defaultdict(list)
    for rec in recs:
        role[rec.get("role")].append(rec)
    prov, mem, pub = role["provider"], role["committee"], role["publisher"]
    close = _first([x["ts"] for x in pub if x.get("event") == "close_round"])
    both = _committed(pub + mem, "CloseRoundWithAggregate")  # the close that records the aggregate
    return {
        "open": opened,
        "train": _first(_started([x for x in prov if "seconds" in x], "trained")),
        "trained": _last([x["ts"] for x in prov if x.get("event") == "trained" and "seconds" in x]),
        "submitted": _last(_committed(prov, "SubmitUpdate")),
        "judge": _first(_started(mem, "scored")),
        "scored": _last([x["ts"] for x in mem if x.get("event") == "scored"]),
        "verdicts": _last(_committed(mem, "SubmitVerdicts") + _committed(mem, "SubmitVerdict")),
        "close": close,
        "closed": _last(_committed(pub + mem, "CloseRound") + both),
        "recorded": _first(_committed(pub + mem, "RecordAggregate") + both),
        "confirmed": _last(_committed(mem, "ConfirmAggregate")),
    }


def work(by_round: dict[int, list[dict]], r: int) -> dict[str, float]:
    """The slowest agent's training and scoring seconds in round ``r``."""
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in by_round.get(r, []):
        if rec.get("event") in ("trained", "scored") and isinstance(rec.get("seconds"), int | float):
            per[rec["event"]][rec["agent"]] += float(rec["seconds"])
    return {k: max(v.values()) for k, v in per.items()}


def timeline(records: list[dict]) -> list[dict]:
    """Per round: milestone offsets from its opening, the gaps between them, and the round's idle
    seconds (wall minus the slowest provider's training and the slowest member's scoring)."""
    by_round: dict[int, list[dict]] = defaultdict(list)
    for rec in records:
        if isinstance(rec.get("round"), int) and isinstance(rec.get("ts"), int | float):
            by_round[rec["round"]].append(rec)
    approvals = _committed(records, "ApproveModel")
    opened = _last(approvals)
    rows = []
    for r in sorted(k for k in by_round if k >= 1):
        ms = milestones(by_round, r, opened)
        if ms["open"] is None or ms["confirmed"] is None:
            opened = ms["confirmed"]
            continue
        t0 = ms["open"]
        offsets = {k: (None if v is None else round(v - t0, 3)) for k, v in ms.items()}
        w = work(by_round, r)
        wall = ms["confirmed"] - t0
        rows.append({"round": r, "wall": round(wall, 3), "train": round(w.get("trained", 0.0), 3),
                     "score": round(w.get("scored", 0.0), 3),
                     "idle": round(wall - w.get("trained", 0.0) - w.get("scored", 0.0), 3),
                     "at": offsets, "gaps": _gaps(offsets)})  # fmt: skip
        opened = ms["confirmed"]
    return rows


def _gaps(offsets: dict[str, float | None]) -> dict[str, float]:
    known = [(k, v) for k, v in offsets.items() if v is not None]
    return {f"{a}->{b}": round(tb - ta, 3) for (a, ta), (b, tb) in zip(known, known[1:], strict=False)}


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("no complete federated round in these logs")
        return
    gaps = list(dict.fromkeys(g for row in rows for g in row["gaps"]))
    head = ["round", "wall", "train", "score", "idle", *gaps]
    print(" ".join(f"{h:>10}" if i < 5 else f"{h:>19}" for i, h in enumerate(head)))
    for row in rows:
        vals = [row["round"], row["wall"], row["train"], row["score"], row["idle"],
                *(row["gaps"].get(g, float("nan")) for g in gaps)]  # fmt: skip
        print(" ".join(f"{v:>10}" if i < 5 else f"{v:>19.3f}" for i, v in enumerate(vals)))
    med = [statistics.median(r[k] for r in rows) for k in ("wall", "train", "score", "idle")]
    med += [statistics.median([r["gaps"][g] for r in rows if g in r["gaps"]]) for g in gaps]
    print(" ".join(f"{'median':>10}" if i == 0 else (f"{v:>10.3f}" if i < 5 else f"{v:>19.3f}")
                   for i, v in enumerate(["median", *med])))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", type=Path, help="a run's logs folder (the agents' *.jsonl)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if not args.logs.is_dir():
        raise SystemExit(f"{args.logs}: not a folder of agent logs")
    rows = timeline(read_logs(args.logs))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
