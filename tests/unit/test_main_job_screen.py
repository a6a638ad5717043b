"""Offline screening of the committee's rules on recorded statistics (benchmarks/ml/main_job.py):
the class-wise reading of the symmetric test, and runs recorded before it had its statistics."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "ml"))

import main_job  # noqa: E402


def _stat(class_means: list[float], cos: float = 0.1) -> list:
    # (t of the symmetric test, t of leave-one-out, cosine, per class [mean, se])
    return [0.0, 0.0, cos, [[m, 0.01] for m in class_means]]


def test_classwise_weighs_the_largest_help_against_the_largest_harm():
    helps_its_class = _stat([-0.9, 0.2, 0.1])  # loss with it below its negation's on class 0
    harms_a_class = _stat([0.9, -0.2, -0.1])
    assert main_job.classwise_stat_score(helps_its_class, harm_ratio=1.0) > 0
    assert main_job.classwise_stat_score(harms_a_class, harm_ratio=1.0) < 0
    # 0.9 of help against 1.5 x 0.7 of harm: rejected at the stricter ratio only.
    close = _stat([-0.9, 0.7])
    assert main_job.classwise_stat_score(close, 1.0) > 0 > main_job.classwise_stat_score(close, 1.5)
    assert main_job.classwise_stat_score(None, 1.0) < -1  # a norm violator


def _run(stats_per_member: list[list]) -> dict:
    return {"doc": {"seed": 0}, "honest": [True, False], "rounds": [{"t_stats": stats_per_member}]}


def test_variants_table_reads_old_screens_without_the_classwise_rows():
    old = _run([[[0.0, 0.0, 0.2], [5.0, 0.0, -0.3]]] * 3)  # recorded before per-class statistics
    new = _run([[_stat([-0.5, 0.1], 0.2), _stat([0.5, -0.1], -0.3)]] * 3)
    assert "classwise" not in main_job.variants_table([old])
    table = main_job.variants_table([new])
    row = next(line for line in table.splitlines() if line.startswith("| classwise harm_ratio=1 "))
    assert "1.000 / 1.000" in row  # the honest update kept, the other rejected


def test_history_judges_a_provider_rejected_lately_at_the_strict_bars():
    # Provider 1 points away and loses to its negation in round 1 (rejected at the base bars), then
    # points along and loses by 2 standard errors: within sym_se 10, past the strict 1.
    round1 = [[0.0, 0.0, 0.3], [5.0, 0.0, -0.3]]
    round2 = [[0.0, 0.0, 0.3], [2.0, 0.0, 0.3]]
    run = {
        "doc": {"seed": 0},
        "honest": [True, False],
        "rounds": [{"t_stats": [r] * 3} for r in (round1, round2)],
    }
    base = {"cos_floor": -0.05, "sym_se": 10, "rescue_se": 1}
    strict = {"strict_cos_floor": 0.01, "strict_sym_se": 1, "strict_rescue_se": 1}
    assert main_job.offline(run, "effect", **base) == [[True, False], [True, True]]
    assert main_job.offline(run, "effect_history", **base, **strict, memory=1) == [
        [True, False],
        [True, False],
    ]
    # Honest provider 0 is never rejected, so it never meets the strict bars.
    assert main_job.history_bars({**base, **strict}, rejected_lately=False) == (-0.05, 10, 1)
