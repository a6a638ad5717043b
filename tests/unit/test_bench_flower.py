"""The Flower comparison's shared pieces: settings, the configs they make, the verdicts the report draws."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "flower"
sys.path.insert(0, str(HERE))

import fc_side  # noqa: E402
import report  # noqa: E402
from setting import ORGS, Setting, experiment_doc, rounds_to, users_needed  # noqa: E402

from fedcommittee.experiment import parse_experiment  # noqa: E402


@pytest.mark.parametrize(
    "s",
    [
        Setting(),
        Setting(partition="onecls", attack="sign_flip", attack_fraction=0.3),
        Setting(partition="dir0.1", providers=50, members=5),
        Setting(partition="dir0.5", providers=25, members=3, attack="free_rider", attack_fraction=0.4),
    ],
)
def test_experiment_doc_is_a_valid_config_with_distinct_identities(s):
    doc = experiment_doc(s)
    exp = parse_experiment(doc, "<test>")
    assert len(exp.providers) == s.providers and len(exp.committee) == s.members
    users = [exp.publisher] + [m.user for m in exp.committee] + [p.user for p in exp.providers]
    assert len(set(users)) == len(users)
    per_org = Counter(u.split("-")[0] for u in users)
    assert set(per_org) <= set(ORGS)
    # user numbers never exceed what users_needed asks the network for
    assert max(int(u.split("user")[1]) for u in users) <= users_needed(s)
    assert sum(p.behaviour != "honest" for p in exp.providers) == s.n_attackers


def test_attackers_are_a_seeded_draw_of_the_right_size():
    s = Setting(attack="label_flip", attack_fraction=0.3)
    assert s.attackers() == Setting(attack="label_flip", attack_fraction=0.3).attackers()
    assert len(s.attackers()) == 3 and all(0 <= i < 10 for i in s.attackers())
    assert Setting(attack="honest", attack_fraction=0.3).attackers() == []
    assert s.behaviours().count("label_flip") == 3 and s.clean().behaviours() == ["honest"] * 10
    assert s.tag() != s.clean().tag()


def test_setting_round_trips_and_rejects_bad_values():
    s = Setting(partition="dir0.5", rounds=7, attack="scaling", attack_fraction=0.2)
    assert Setting.from_json(s.to_json()) == s
    with pytest.raises(ValueError, match="unknown partition 'zipf'"):
        Setting(partition="zipf")
    with pytest.raises(ValueError, match="attack_fraction"):
        Setting(attack_fraction=1.0)
    with pytest.raises(ValueError, match="unknown committee 'krum'"):
        Setting(committee="krum")


def test_committee_and_seed_name_their_results_and_flower_ignores_the_committee():
    first = Setting(partition="dir0.5")  # the comparison's first runs: trust, seed 0
    assert first.tag() == "dir0.5-cnn-small-p10-m3-r30-s20"
    s = replace(first, committee="effect_mainjob", seed=2)
    assert s.tag() == "dir0.5-cnn-small-p10-m3-r30-s20-effect_mainjob-seed2"
    assert s.without_committee().tag() == "dir0.5-cnn-small-p10-m3-r30-s20-seed2"
    scoring = parse_experiment(experiment_doc(s), "<test>").scoring
    assert (scoring.rule, scoring.cos_floor, scoring.sym_se) == ("effect", -0.05, 10.0)


def test_model_ids_fit_the_contracts_limit_and_stay_distinct():
    short = Setting(partition="dir0.5")
    assert fc_side.model_id_of(short, 1_234_567.9) == f"{short.tag()}-234567"
    long = Setting(partition="onecls", rounds=100, steps=1, committee="effect_mainjob", aggregation="fedavgm")
    ids = {fc_side.model_id_of(replace(long, seed=k), 1_234_567) for k in (1, 2)}
    assert len(ids) == 2 and all(len(i) == fc_side.MODEL_ID_MAX and i.startswith("onecls-") for i in ids)


def test_users_needed_covers_the_largest_settings():
    assert users_needed(Setting(providers=100, members=5)) == 37  # org1: publisher, 2 members, 34 providers
    assert users_needed(Setting(providers=100, members=3)) == 36
    assert users_needed(Setting()) == 6  # org1: publisher, member, providers 0, 3, 6, 9


def test_rounds_to():
    assert rounds_to([0.5, 0.79, 0.8, 0.9], 0.8) == 3
    assert rounds_to([0.5, 0.6], 0.8) is None


def test_acceptance_counts_against_behaviours():
    rep = {
        "updates": [
            {"provider": "a", "status": "accepted"},
            {"provider": "a", "status": "rejected"},
            {"provider": "bad", "status": "rejected"},
            {"provider": "bad", "status": "accepted"},
            {"provider": "bad", "status": "rejected"},
            {"provider": "a", "status": "pending"},
        ]
    }
    a = fc_side._acceptance(rep, {"a": "honest", "bad": "sign_flip"})
    assert a["counts"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 2}
    assert (a["precision"], a["recall"], a["attackers_rejected"]) == (0.5, 0.5, round(2 / 3, 4))


def _result(
    tmp: Path, section: str, system: str, s: Setting, acc: list[float], file: str | None = None, **extra
) -> None:
    d = tmp / section
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "system": system,
        "setting": json.loads(s.to_json()),
        "accuracy": acc,
        "wall_seconds": 1.0,
        "round_seconds": [2.0] * len(acc),
        **extra,
    }
    (d / f"{file or system}__{s.tag()}.json").write_text(json.dumps(doc))


def test_report_draws_the_target_verdicts_from_the_numbers(tmp_path):
    s = Setting(rounds=3)
    fc_extra = {
        "acceptance": {"precision": 1.0, "recall": 0.9, "attackers_rejected": None},
        "accepted": 9,
        "rejected": 1,
        "ledger_ipfs_share": 0.12,
        "breakdown_median": {},
    }
    # Accuracy: the target is checked for the current committee, on the seeds both sides ran; the
    # old rule's row is shown, not checked.
    cur = replace(s, committee="effect_mainjob")
    _result(tmp_path, "accuracy", "fedcommittee", cur, [0.5, 0.7, 0.81], **fc_extra)
    _result(tmp_path, "accuracy", "fedcommittee", replace(cur, seed=1), [0.5, 0.7, 0.79], **fc_extra)
    _result(tmp_path, "accuracy", "fedcommittee", replace(cur, seed=2), [0.5, 0.7, 0.99], **fc_extra)
    _result(tmp_path, "accuracy", "flower-fedavg", s, [0.5, 0.7, 0.83])
    _result(tmp_path, "accuracy", "flower-fedavg", replace(s, seed=1), [0.5, 0.7, 0.75])
    _result(tmp_path, "accuracy", "fedcommittee", s, [0.5, 0.7, 0.99], **fc_extra)  # trust, seed 0
    # One class per client at its own budget, fedcommittee with server momentum: above FedAvg and
    # FedProx on every seed is checked; Flower's FedAvgM is shown beside it.
    one = Setting(partition="onecls", rounds=4, steps=1, committee="effect_mainjob", aggregation="fedavgm")
    for seed, mine, fedavg, fedprox, fedavgm in ((0, 0.70, 0.40, 0.41, 0.71), (1, 0.60, 0.50, 0.61, 0.60)):
        _result(
            tmp_path, "accuracy", "fedcommittee", replace(one, seed=seed), [0.1, 0.2, 0.3, mine], **fc_extra
        )
        for system, acc in (
            ("flower-fedavg", fedavg),
            ("flower-fedprox", fedprox),
            ("flower-fedavgm", fedavgm),
        ):
            _result(
                tmp_path,
                "accuracy",
                system,
                replace(one, seed=seed).without_committee(),
                [0.1, 0.2, 0.3, acc],
            )
    s2 = Setting(rounds=3, partition="dir0.5", committee="effect_mainjob")
    _result(tmp_path, "accuracy", "fedcommittee", s2, [0.5, 0.7, 0.84], **fc_extra)
    _result(tmp_path, "accuracy", "flower-fedavg", s2.without_committee(), [0.5, 0.7, 0.83])
    att = Setting(rounds=3, attack="sign_flip", attack_fraction=0.3)
    _result(tmp_path, "robustness", "fedcommittee", s, [0.5, 0.7, 0.80], **fc_extra)
    _result(tmp_path, "robustness", "flower-fedavg", s, [0.5, 0.7, 0.80])
    fc_att = {**fc_extra, "acceptance": {"precision": 1.0, "recall": 1.0, "attackers_rejected": 1.0}}
    _result(tmp_path, "robustness", "fedcommittee", att, [0.5, 0.6, 0.77], **fc_att)
    _result(tmp_path, "robustness", "flower-fedavg", att, [0.3, 0.2, 0.40])
    # The current committee's runs of the same settings: a column and verdict rows of their own.
    cur_att = replace(att, committee="effect_mainjob")
    _result(tmp_path, "robustness", "fedcommittee", replace(s, committee="effect_mainjob"), [0.5, 0.7, 0.82],
            **fc_extra)  # fmt: skip
    fc_cur = {**fc_extra, "acceptance": {"precision": 1.0, "recall": 1.0, "attackers_rejected": 0.9}}
    _result(tmp_path, "robustness", "fedcommittee", cur_att, [0.5, 0.7, 0.81], **fc_cur)
    bd = replace(s, attack="backdoor", attack_fraction=0.3)
    _result(tmp_path, "robustness", "fedcommittee", replace(bd, committee="effect_mainjob"), [0.5, 0.7, 0.8],
            backdoor_success=0.04, **fc_cur)  # fmt: skip
    _result(tmp_path, "robustness", "flower-fedavg", bd, [0.5, 0.7, 0.8], backdoor_success=0.9)
    _result(tmp_path, "robustness", "flower-fedmedian", bd, [0.5, 0.7, 0.8], backdoor_success=0.2)
    # A run of another seed without its clean run counts in its column's mean but has no drop, and the
    # committee's target compares with FedAvg on the committee's seeds: seed 0's 40 points.
    _result(tmp_path, "robustness", "flower-fedavg", replace(att, seed=1), [0.9, 0.9, 0.9])
    out = tmp_path / "B.md"
    report.write(tmp_path, out)
    text = out.read_text()
    # dominant, seeds 0 and 1: (0.81 + 0.79) / 2 against (0.83 + 0.75) / 2; seed 2 has no FedAvg run
    fc_vs_fedavg = "- dominant, `effect_mainjob`: fedcommittee 0.8000 vs Flower FedAvg 0.7900 (+0.0100;"
    assert f"{fc_vs_fedavg} at least level on 1 of 2 seeds): met" in text
    assert (
        "- dir0.5, `effect_mainjob`: fedcommittee 0.8400 vs Flower FedAvg 0.8300 (+0.0100; at least level"
        " on 1 of 1 seed): met" in text
    )
    assert "| dominant | fedcommittee, `effect_mainjob` | 3 | 0.8633 ± 0.1102 |" in text
    one_row = "onecls: 1 local step, 4 rounds, lr 0.03, momentum 0.9"
    fc_momentum = "fedcommittee, `effect_mainjob`, server momentum 0.9"
    assert f"| {one_row} | {fc_momentum} | 2 (seeds 0, 1) | 0.6500 ± 0.0707 |" in text
    mine = f"- {one_row}, fedcommittee, `effect_mainjob`, server momentum 0.9: fedcommittee 0.6500"
    assert (
        f"{mine} vs Flower FedAvg 0.4500 (+0.2000; at least level on 2 of 2 seeds): above on every seed"
        in text
    )
    assert (
        f"{mine} vs Flower FedProx 0.5100 (+0.1400; at least level on 1 of 2 seeds): not above on every seed"
        in text
    )
    assert (
        f"{mine} vs Flower FedAvgM (the same aggregator) 0.6550 (-0.0050; at least level on 1 of 2 seeds)"
        in text
    )
    assert (tmp_path / "accuracy_onecls-r4-s1.png").exists()
    assert "| dominant | fedcommittee, `trust` (the old rule) | 1 (seed 0) | 0.9900 |" in text
    assert "| dominant | flower-fedavg | 2 (seeds 0, 1) | 0.7900 ± 0.0566 |" in text
    assert (
        "sign_flip 30 % (last round, 1 seed): fedcommittee `trust` drops 3.0 points"
        " (Flower FedAvg drops 40.0 points): missed by 1.0" in text
    )
    # last-3 means: clean (0.5+0.7+0.8)/3, attacked (0.5+0.6+0.77)/3 -> 4.3 points; FedAvg 36.7
    assert (
        "sign_flip 30 % (last-3 mean, 1 seed): fedcommittee `trust` drops 4.3 points"
        " (Flower FedAvg drops 36.7 points): missed by 2.3" in text
    )
    assert "sign_flip 30 % (last round, 1 seed): fedcommittee `effect_mainjob` drops 1.0 points" in text
    assert "sign_flip 30 %: fedcommittee `effect_mainjob` rejects 0.900 of the malicious updates" in text
    assert "| attack | share | fedcommittee `effect_mainjob` | fedcommittee `trust` | flower-fedavg |" in text
    # last round, then the last-3 means; FedAvg's cell averages seeds 0 and 1, its drop is seed 0's
    assert "| sign_flip | 30% | 0.8100 (+1.0) | 0.7700 (+3.0) | 0.6500 ± 0.3536 (+40.0) |" in text
    assert "| sign_flip | 30% | 0.6700 (+0.3) | 0.6233 (+4.3) |" in text
    assert (
        "| sign_flip | 30% | `effect_mainjob` | 1 (seed 0) | 1.00 | 1.00 | 0.90 | 9 / 1 | Fabric v3.1.5 |"
        in text
    )
    assert "| share | fedcommittee `effect_mainjob` | flower-fedavg | flower-fedmedian |" in text
    assert "| 30% | 0.040 | 0.900 | 0.200 |" in text
    assert (
        "- backdoor 30%: fedcommittee `effect_mainjob` 0.040 (Flower FedAvg / FedMedian: 0.900 / 0.200): met"
        in text
    )
    assert "No overhead results yet" in text
    _result(tmp_path, "overhead", "fedcommittee", s, [0.5], **{**fc_extra, "ledger_ipfs_share": 0.08})
    _result(tmp_path, "overhead", "in-process", s, [0.5])
    # Each backend's row pairs with the baseline measured beside it; a result without a backend is
    # an older Fabric one.
    dev = {**fc_extra, "ledger_ipfs_share": 0.15, "ledger_backend": "embedded ledger", "round_seconds": [1.5]}
    _result(tmp_path, "overhead", "fedcommittee", s, [0.5], file="fedcommittee-dev", **dev)
    _result(tmp_path, "overhead", "in-process", s, [0.5], file="in-process-dev", round_seconds=[0.5],
            measured_beside="embedded ledger")  # fmt: skip
    # Another committee's pair on the same backend is a row of its own, not a replacement.
    new = replace(s, committee="effect_mainjob")
    dev_new = {**dev, "ledger_ipfs_share": 0.05, "round_seconds": [0.6]}
    _result(tmp_path, "overhead", "fedcommittee", new, [0.5], file="fedcommittee-dev", **dev_new)
    _result(tmp_path, "overhead", "in-process", new, [0.5], file="in-process-dev", round_seconds=[0.5],
            measured_beside="embedded ledger")  # fmt: skip
    report.write(tmp_path, out)
    text = out.read_text()
    old_fabric = "Fabric v3.1.5 (older run, before the round-waiting changes)"
    assert (
        f"- {old_fabric}, `trust` (the old rule), 20 local steps: ratio 1.00 (met), share 8.0% (met)" in text
    )
    assert (
        "- embedded ledger, `trust` (the old rule), 20 local steps: ratio 3.00 (missed by 1.70),"
        " share 15.0% (missed by 5.0 points)" in text
    )
    assert "| embedded ledger | `trust` (the old rule) | 20 | 0.50 | 1.50 | 3.00 |" in text
    assert "| embedded ledger | `effect_mainjob` | 20 | 0.50 | 0.60 | 1.20 |" in text
    assert "- embedded ledger, `effect_mainjob`, 20 local steps: ratio 1.20 (met), share 5.0% (met)" in text
    assert (tmp_path / "accuracy_dominant.png").exists()
    assert "No scale results yet" in text


def _scale_logs() -> tuple[dict, list[dict]]:
    """A 2-round run of 3 providers: round 2 allocated two, one update of round 2 still pending."""
    report_doc = {
        "rounds": [{"number": 2, "allocated": ["a", "b"]}, {"number": 1}],
        "updates": [{"round": 1, "status": "accepted"}] * 3
        + [{"round": 2, "status": "rejected"}, {"round": 2, "status": "pending"}],
    }
    sub = {"event": "submitted", "tx": "SubmitUpdate"}
    records = [
        {**sub, "round": 0, "seconds": 0.5},
        *({**sub, "round": 1, "seconds": s} for s in (0.1, 0.2, 0.3, 0.4, 1.4)),
        {**sub, "round": 2, "seconds": 0.2},
        {"event": "conflict", "race": "mvcc_retry", "round": 1},
        {"event": "conflict", "race": "mvcc_retry", "round": 1},
        {"event": "verdict_refused", "race": "verdict_after_close", "round": 2},
        {"event": "submit_gave_up", "round": 2, "tx": "SubmitVerdicts"},
    ]
    return report_doc, records


def test_round_counts_per_round_from_report_and_logs():
    counts = fc_side.round_counts(*_scale_logs(), providers=3)
    assert counts["allocated"] == [3, 2] and counts["recorded"] == [3, 2] and counts["judged"] == [3, 1]
    assert counts["transactions"] == [5, 1] and counts["given_up"] == [0, 1]
    assert counts["mvcc_conflicts"] == [2, 0]  # a verdict after quorum is a race, not a conflict
    # p95 of (0.1, 0.2, 0.3, 0.4, 1.4): 0.4 + 0.8 * (1.4 - 0.4)
    assert counts["commit_p95_s"] == [1.2, 0.2]
    assert counts["setup"] == {"transactions": 1, "given_up": 0, "mvcc_conflicts": 0, "commit_p95_s": 0.5}


def test_scale_report_checks_every_target(tmp_path):
    s = Setting(providers=3, rounds=2, model="linear-fmnist", settle_seconds=600, deadline_seconds=900)
    counts = fc_side.round_counts(*_scale_logs(), providers=3)
    memory = {
        "agents_peak_mb": 900,
        "agent_max_mb": 400,
        "provider_processes_peak_mb": 300,
        "network_peak_mb": 50,
    }
    extra = {"per_round": counts, "memory": memory, "ledger_backend": "embedded ledger", "accepted": 3}
    _result(tmp_path, "scale", "fedcommittee", s, [0.5, 0.6], transactions_per_round_median=3, **extra)
    text = "\n".join(report.scale_section(tmp_path, tmp_path))
    assert "| embedded ledger | `linear-fmnist`, 20 | 3 | 3 | 1 | 2.0 | 3, 2 | 3/3, 1/2 | 5, 1 | 1 |" in text
    assert "every allocated update recorded and judged in every round: missed" in text
    assert "transactions given up 1 (target 0): missed" in text
    assert "most MVCC conflicts in a round 2 (target < 0.3): missed" in text
    assert "| 300 (100.0) |" in text and (tmp_path / "scale.png").exists()


def _grid_run(out: Path, attack: str, seed: int, final: float) -> None:
    """A cached committee-grid run of the perfect committee on the dominant partition, 3 rounds."""
    frac = 0.0 if attack == "honest" else 0.3
    honest = [True] * (10 if attack == "honest" else 7)
    rounds = [{"accuracy": final, "accepted": honest, "shadow": {}, "score_s": 0.0, "train_s": 0.1}] * 3
    setting = {"partition": "dominant", "attack": attack, "attack_fraction": frac, "rounds": 3, "seed": seed}
    run = {"setting": setting, "rule": "oracle", "honest": honest, "rounds": rounds}
    (out / f"{attack}-{seed}.json").write_text(json.dumps(run))


def test_robustness_tables_average_seeds_and_pair_each_drop_with_its_own_clean_run(tmp_path):
    cur = Setting(rounds=3, committee="effect_mainjob")
    att = replace(cur, attack="sign_flip", attack_fraction=0.3)
    for seed, clean, hit, rejected in ((0, 0.80, 0.77, 0.9), (1, 0.70, 0.69, 1.0), (2, 0.75, 0.70, 0.95)):
        verdicts = {"acceptance": {"precision": 1.0, "recall": 1.0, "attackers_rejected": rejected},
                    "accepted": 7, "rejected": 3, "ledger_backend": "embedded ledger"}  # fmt: skip
        _result(
            tmp_path, "robustness", "fedcommittee", replace(cur, seed=seed), [0.5, 0.6, clean], **verdicts
        )
        _result(tmp_path, "robustness", "fedcommittee", replace(att, seed=seed), [0.5, 0.6, hit], **verdicts)
        for s, acc in ((cur, 0.8), (att, 0.4)):
            _result(tmp_path, "robustness", "flower-fedavg", replace(s, seed=seed).without_committee(),
                    [0.5, 0.6, acc])  # fmt: skip
    grid = tmp_path / "grid"
    grid.mkdir()
    for seed, clean, hit in ((0, 0.70, 0.66), (1, 0.72, 0.70), (2, 0.74, 0.69)):
        _grid_run(grid, "honest", seed, clean)
        _grid_run(grid, "sign_flip", seed, hit)
    text = "\n".join(report.robustness_section(tmp_path, grid))
    # drops 3, 1 and 5 points: mean 3.0, sd 2.0; the last-3 means drop by a third of that
    assert "| sign_flip | 30% | 0.7200 ± 0.0436 (+3.0 ± 2.0) | 0.4000 ± 0.0000 (+40.0 ± 0.0) |" in text
    assert "| sign_flip | 30% | 0.6067 ± 0.0145 (+1.0 ± 0.7) |" in text
    assert "| none (clean) | 0 | 0.7500 ± 0.0500 | 0.8000 ± 0.0000 |" in text
    assert "fedcommittee `effect_mainjob`: 3; flower-fedavg: 3." in text
    assert (
        "- sign_flip 30 % (last round, 3 seeds): fedcommittee `effect_mainjob` drops 3.0 points"
        " (Flower FedAvg drops 40.0 points): missed by 1.0" in text
    )
    assert (
        "- sign_flip 30 %: fedcommittee `effect_mainjob` rejects 0.950 ± 0.050 of the malicious updates"
        " (target >= 0.95): met" in text
    )
    assert (
        "| sign_flip | 30% | `effect_mainjob` | 3 | 1.00 ± 0.00 | 1.00 ± 0.00 | 0.95 ± 0.05 | 21 / 9 |"
        in text
    )
    # the perfect committee in process: 0.72 clean, 0.6833 attacked, drops 4, 2 and 5 points
    assert "ends at 0.7200 ± 0.0200 clean and at 0.6833 ± 0.0208 with the 30 % attackers'" in text
    assert "a drop of +3.7 ± 1.5 points with every verdict right" in text
