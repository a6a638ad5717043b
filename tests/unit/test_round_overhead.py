"""Where a round's time went: the critical-path breakdown the report draws from the agents' logs."""

from __future__ import annotations

import math

import pytest

from fedcommittee.logs import round_overhead, round_work
from fedcommittee.report import overhead_summary, round_walls, work_summary


def rec(agent: str, role: str, event: str, round_: int, seconds, **extra) -> dict:
    return {
        "ts": 0,
        "agent": agent,
        "role": role,
        "event": event,
        "round": round_,
        "seconds": seconds,
        **extra,
    }


RECORDS = [
    # round 1: two providers, two members, the publisher
    rec("p1", "provider", "trained", 1, 4.0),
    rec("p2", "provider", "trained", 1, 6.0),  # the slowest trainer
    rec("p1", "provider", "ipfs", 1, 0.2, op="get"),
    rec("p1", "provider", "ipfs", 1, 0.3, op="put"),  # p1's IPFS: 0.5, the most
    rec("p2", "provider", "ipfs", 1, 0.1, op="put"),
    rec("p1", "provider", "submitted", 1, 0.05, tx="SubmitUpdate"),
    rec("p2", "provider", "submitted", 1, 0.07, tx="SubmitUpdate"),
    rec("m1", "committee", "scored", 1, 1.5),
    rec("m2", "committee", "scored", 1, 2.0),
    rec("m1", "committee", "submitted", 1, 0.06, tx="SubmitVerdict"),
    rec("m1", "committee", "submitted", 1, 0.06, tx="SubmitVerdict"),
    rec("m1", "committee", "submitted", 1, 0.08, tx="ConfirmAggregate"),  # m1's ledger: 0.20
    rec("m2", "committee", "submitted", 1, 0.10, tx="SubmitVerdict"),
    rec("m2", "committee", "ipfs", 1, 0.4, op="get"),
    rec("publisher", "publisher", "submitted", 1, 0.05, tx="CloseRound"),
    rec("publisher", "publisher", "submitted", 1, 0.05, tx="RecordAggregate"),
    rec("publisher", "publisher", "ipfs", 1, 0.1, op="put"),
    # round 2: only one provider logged anything
    rec("p1", "provider", "trained", 2, 3.0),
    # not counted: no round, a bool, a string, an unrelated event
    {"agent": "p1", "role": "provider", "event": "submitted", "seconds": 9.0},
    rec("p1", "provider", "submitted", 1, True),
    rec("p1", "provider", "submitted", 1, "slow"),
    rec("p1", "provider", "verdict", 1, 9.0),
]


def test_the_critical_path_takes_the_slowest_of_each_role():
    ov = round_overhead(RECORDS, {1: 12.0, 2: 5.0})
    r1 = ov[1]
    assert r1["compute"] == pytest.approx(6.0 + 2.0)  # slowest trainer + slowest scorer
    assert r1["ledger"] == pytest.approx(0.07 + 0.20 + 0.10)  # p2 + m1 (three txs) + publisher
    assert r1["ipfs"] == pytest.approx(0.5 + 0.4 + 0.1)
    assert r1["other"] == pytest.approx(12.0 - 8.0 - 0.37 - 1.0)
    assert r1["overhead"] == pytest.approx((0.37 + 1.0) / 12.0)
    assert ov[2] == {"wall": 5.0, "compute": 3.0, "ledger": 0.0, "ipfs": 0.0, "other": 2.0, "overhead": 0.0}


def test_other_never_goes_negative_and_a_zero_wall_is_not_a_share():
    ov = round_overhead(RECORDS, {1: 3.0, 3: 0.0})
    assert ov[1]["other"] == 0.0
    assert math.isnan(ov[3]["overhead"])


def test_round_walls_from_the_ledger_records():
    rounds = [
        {"number": 1, "status": "done", "openedAt": 100, "closedAt": 108, "confirmedAt": 110},
        {"number": 2, "status": "skipped", "openedAt": 110, "closedAt": 130},
        {"number": 3, "status": "open", "openedAt": 130},
        {"number": 4, "status": "closed", "openedAt": 140, "closedAt": 150},
    ]
    assert round_walls(rounds) == {1: 10.0, 2: 20.0}  # open and closed rounds have not ended


def test_overhead_summary():
    ov = round_overhead(RECORDS, {1: 12.0, 2: 5.0})
    s = overhead_summary(ov)
    assert s["round_seconds_median"] == pytest.approx(8.5)
    assert s["round_breakdown_median_seconds"]["compute"] == pytest.approx(5.5)
    assert s["ledger_ipfs_share_of_round_time"] == pytest.approx(round(1.37 / 17.0, 4))
    assert overhead_summary({}) == {}


def test_round_work_takes_the_slowest_agent_of_each_kind_of_work():
    records = [
        *RECORDS,
        rec("m1", "committee", "reference", 1, 3.0),
        rec("m2", "committee", "reference", 1, 2.5),
        rec("m1", "committee", "reference", 3, 1.0),  # a round with only a reference in it
        rec("p1", "provider", "reference", 1, 99.0),  # a provider's record of that name is not a member's
    ]
    work = round_work(records)
    assert work[1] == {"training": 6.0, "scoring": 2.0, "reference": 3.0}
    assert work[2] == {"training": 3.0, "scoring": 0.0, "reference": 0.0}
    assert work[3] == {"training": 0.0, "scoring": 0.0, "reference": 1.0}
    # training + scoring is the critical path's compute
    ov = round_overhead(records, {1: 12.0, 2: 5.0})
    assert work[1]["training"] + work[1]["scoring"] == pytest.approx(ov[1]["compute"])
    assert work_summary(work) == {"training": 3.0, "reference": 1.0, "scoring": 0.0}
    assert round_work([]) == {} and work_summary({}) == {}
