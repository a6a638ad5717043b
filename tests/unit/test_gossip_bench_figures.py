"""The gossip benchmark's per-provider verdict string: which attacker got in, with which update."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import gossip_bench  # noqa: E402


def test_verdicts_by_provider_in_submission_order():
    report = {
        "participants": {"h1": {"behaviour": "honest"}, "lf": {"behaviour": "label_flip"}},
        "updates": [
            {"id": "b", "provider": "lf", "status": "rejected", "submittedAt": 20},
            {"id": "a", "provider": "lf", "status": "accepted", "submittedAt": 10},
            {"id": "c", "provider": "h1", "status": "accepted", "submittedAt": 10},
            {"id": "d", "provider": "h1", "status": "pending", "submittedAt": 30},
            {"id": "e", "provider": "ghost", "status": "rejected", "submittedAt": None},
        ],
    }
    assert gossip_bench.verdicts_by_provider(report) == {
        "ghost (?)": "r",
        "lf (label_flip)": "Ar",
        "h1 (honest)": "Ap",
    }
