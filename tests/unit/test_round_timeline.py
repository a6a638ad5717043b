"""benchmarks/round_timeline.py: a round's milestones and idle time from agent log records."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import round_timeline  # noqa: E402


def rec(ts, agent, role, event, **fields):
    return {"ts": ts, "agent": agent, "role": role, "event": event, **fields}


def one_round() -> list[dict]:
    return [
        rec(100.0, "m1", "committee", "submitted", tx="ApproveModel"),
        rec(102.5, "p1", "provider", "trained", round=1, seconds=2.0),
        rec(102.6, "p1", "provider", "submitted", tx="SubmitUpdate", round=1, seconds=0.1),
        rec(106.0, "m1", "committee", "scored", round=1, seconds=1.0),  # began at 105: 2.4 s settle
        rec(106.2, "m1", "committee", "submitted", tx="SubmitVerdicts", round=1, seconds=0.1),
        rec(106.3, "pub", "publisher", "close_round", round=1),
        rec(106.4, "pub", "publisher", "submitted", tx="CloseRound", round=1, seconds=0.1),
        rec(106.6, "pub", "publisher", "submitted", tx="RecordAggregate", round=1, seconds=0.1),
        rec(107.0, "m1", "committee", "submitted", tx="ConfirmAggregate", round=1, seconds=0.1),
    ]


def test_a_round_is_split_into_its_milestones_and_idle_time():
    (row,) = round_timeline.timeline(one_round())
    assert row["round"] == 1 and row["wall"] == 7.0
    assert (row["train"], row["score"], row["idle"]) == (2.0, 1.0, 4.0)
    assert row["at"]["train"] == 0.5 and row["at"]["judge"] == 5.0
    assert row["gaps"]["submitted->judge"] == 2.4  # the settle window, visible as a gap
    assert row["gaps"]["recorded->confirmed"] == 0.4


def test_a_round_that_never_finished_is_left_out():
    assert round_timeline.timeline(one_round()[:-1]) == []


def test_a_close_that_records_the_aggregate_is_both_milestones():
    recs = [r for r in one_round() if r.get("tx") not in ("CloseRound", "RecordAggregate")]
    both = rec(106.5, "pub", "publisher", "submitted", tx="CloseRoundWithAggregate", round=1, seconds=0.1)
    recs.append(both)
    (row,) = round_timeline.timeline(recs)
    assert row["at"]["closed"] == row["at"]["recorded"] == 6.5
    assert row["gaps"]["closed->recorded"] == 0.0 and row["gaps"]["recorded->confirmed"] == 0.5
