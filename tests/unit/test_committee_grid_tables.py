"""The committee grid's tables: mean and sd over seeds, the drop from the same rule's clean run of the
same seed, and the target checks, computed from a small cache of made-up runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "ml"))

import committee_grid as grid  # noqa: E402

HONEST = [True] * 7 + [False] * 3


def _write(out: Path, attack: str, rule: str, seed: int, final: float, accepted: list[bool], **extra) -> None:
    frac = 0.0 if attack == "honest" else 0.3
    honest = [True] * 10 if attack == "honest" else HONEST
    rounds = [
        {
            "round": r,
            "accepted": accepted,
            "shadow": {},
            "score_s": 0.5,
            "train_s": 0.1,
            "accuracy": None if r < 3 else final - 0.01 * (5 - r),
        }  # fmt: skip
        for r in range(1, 6)
    ]
    rounds[-1].update(extra)
    setting = {"partition": "dir0.5", "attack": attack, "attack_fraction": frac, "rounds": 5, "seed": seed}
    run = {"setting": setting, "rule": rule, "honest": honest, "rounds": rounds}
    (out / f"{grid.run_key('dir0.5', attack, frac, rule, seed, 5)}.json").write_text(json.dumps(run))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    everyone = [True] * 10
    for seed, final in enumerate([0.80, 0.82, 0.84]):
        _write(tmp_path, "honest", "effect", seed, final, everyone)
    stops_two = [True] * 7 + [False, False, True]  # honest all in, 2 of the 3 attackers out
    for seed, final in enumerate([0.78, 0.79, 0.81]):
        _write(tmp_path, "sign_flip", "effect", seed, final, stops_two)
    # seed 5 has no clean run: no drop for it
    for seed, final in [(0, 0.30), (5, 0.40)]:
        _write(tmp_path, "backdoor", "effect", seed, final, [True] * 10, backdoor_success=0.5 + seed / 10)
    return tmp_path


def _row(lines: list[str], attack: str) -> dict[str, str]:
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == attack:
            return dict(zip(head, cells, strict=True))
    raise AssertionError(f"no row for {attack}")


def test_mean_sd_and_paired_drop(cache):
    groups = grid.load_runs(cache, 5)
    runs = grid.with_drops(groups[("dir0.5", "sign_flip", 0.3, 5, "effect")],
                           groups[("dir0.5", "honest", 0.0, 5, "effect")])  # fmt: skip
    assert [round(r["drop"], 6) for r in runs.values()] == [2.0, 3.0, 3.0]
    row = _row(grid.attack_tables(groups, "dir0.5", 5)[0.3], "sign_flip")
    assert row["seeds"] == "3"
    assert row["final acc"] == "0.793 ± 0.015"  # mean 0.79333, sd 0.01528
    assert row["tail-3 mean"] == "0.783 ± 0.015"  # each run's last three: final - 0.02, - 0.01, + 0
    assert row["drop (points)"] == "2.7 ± 0.6"  # 2, 3, 3 points
    assert row["honest recall"] == "1.00 ± 0.00"
    assert row["malicious rejected"] == "0.67 ± 0.00"
    assert row["precision"] == "0.88 ± 0.00"  # 7 honest of 8 accepted
    assert row["backdoor success"] == "-"


def test_fewer_seeds_are_named_and_unpaired_seeds_have_no_drop(cache):
    row = _row(grid.attack_tables(grid.load_runs(cache, 5), "dir0.5", 5)[0.3], "backdoor")
    assert row["seeds"] == "2 (seeds 0, 5)"
    assert row["final acc"] == "0.350 ± 0.071"
    assert row["drop (points)"] == "50.0"  # seed 0 only: 0.80 - 0.30
    assert row["backdoor success"] == "0.75 ± 0.35"  # 0.5 and 1.0


def test_clean_table_and_target_misses(cache):
    groups = grid.load_runs(cache, 5)
    assert _row(grid.clean_table(groups, 5), "dir0.5")["final acc"] == "0.820 ± 0.020"
    misses = grid.target_misses(groups, "dir0.5", 5, 0.3, "effect")
    assert any(m.startswith("sign_flip: drop (points) 2.7 ± 0.6") for m in misses)
    assert any(m.startswith("sign_flip: malicious rejected 0.67") for m in misses)
    assert any(m.startswith("backdoor: backdoor success 0.75") for m in misses)
    assert not any("recall" in m for m in misses)
    assert grid.seeds_cell([2]) == "1 (seed 2)" and grid.cell([], 2) == "-"


def test_la_rule_names_train_with_logit_adjustment():
    assert grid.training_of("effect_mainjob+la") == ("effect_mainjob", 1.0)
    assert grid.training_of("fedavg+la") == ("fedavg", 1.0)
    assert grid.training_of("effect") == ("effect", 0.0)


def test_the_near_copy_variant_is_the_main_jobs_committee():
    import yaml

    scoring = yaml.safe_load((grid.ROOT / "configs" / "default.yaml").read_text())["scoring"]
    rule, params = grid.RULE_VARIANTS["effect_probation_start_sym1_guard3_twin20"]
    assert rule == scoring["rule"]
    bars = {"cos_floor", "sym_se", "rescue_se", "probation_rounds", "probation_cos_floor", "probation_sym_se",
            "probation_rescue_se", "probation_until_accepted", "guard_se", "twin_ratio"}  # fmt: skip
    assert params == {k: v for k, v in scoring.items() if k in bars}
    # effect_probation_start_sym1_guard3 is the committee before the near-copy screen.
    assert grid.RULE_VARIANTS["effect_probation_start_sym1_guard3"] == (
        rule,
        {k: v for k, v in params.items() if k != "twin_ratio"},
    )
    params = grid.RULE_VARIANTS["effect_probation_start_sym1_guard3"][1]
    # effect_probation_start is the committee before the guard (the runs cached under its name).
    assert grid.RULE_VARIANTS["effect_probation_start"] == (
        rule,
        {**{k: v for k, v in params.items() if k != "guard_se"}, "probation_sym_se": 10.0},
    )
    params = grid.RULE_VARIANTS["effect_probation_start"][1]
    # effect_probation is the same committee without probation until the first acceptance (the main
    # job's before it; the runs cached under its name).
    assert grid.RULE_VARIANTS["effect_probation"] == (
        rule,
        {k: v for k, v in params.items() if k != "probation_until_accepted"},
    )
    # effect_mainjob keeps the main job's bars from before probation (the runs cached under its name).
    assert grid.RULE_VARIANTS["effect_mainjob"] == ("effect", {"cos_floor": -0.05, "sym_se": 10.0})


def test_the_mainjob_norm2_variant_is_the_main_jobs_bars_with_the_2x_band():
    rule, params = grid.RULE_VARIANTS["effect_mainjob_norm2"]
    base_rule, base = grid.RULE_VARIANTS["effect_mainjob"]
    assert rule == base_rule
    assert params == {**base, "max_norm_ratio": 2.0}
