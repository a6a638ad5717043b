"""The protocol policy: round closing, scoring bounds and rules, the ledger's rule fields, and
aggregation whose state survives across rounds and is rebuilt by replay."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fedcommittee.experiment import parse_experiment
from fedcommittee.ml import aggregate as A
from fedcommittee.policy import SCORE_MAX, SCORE_MIN, Aggregator, Policy

ROOT = Path(__file__).resolve().parents[2]
ROUND = {"openedAt": 1000, "deadline": 1300}


def small(**changes) -> dict:
    doc = yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())
    doc.update(changes)
    return doc


# ----------------------------------------------------------------------------------- round closing


def ups(*statuses: str, at: int = 1010) -> list[dict]:
    return [{"id": f"u{i}", "status": s, "submittedAt": at} for i, s in enumerate(statuses)]


def closes(updates, providers, min_accepted, now):
    return Policy(min_accepted=min_accepted, settle_seconds=20).should_close(ROUND, updates, providers, now)


def test_everyone_final_and_enough_accepted_closes_at_once():
    assert closes(ups("accepted", "accepted", "rejected"), 3, 2, 1011) == (True, "everyone")


def test_pending_updates_hold_the_round_open():
    assert closes(ups("accepted", "accepted", "pending"), 3, 2, 1200) == (False, "waiting")


def test_everyone_final_closes_at_once_even_short_of_min_accepted():
    # Nothing can change the accepted set before the deadline: waiting for it would only idle.
    assert closes(ups("accepted", "rejected", "rejected"), 3, 2, 1011) == (True, "everyone")
    assert closes(ups("rejected", "rejected", "rejected"), 3, 2, 1011) == (True, "everyone")


def test_too_few_accepted_with_a_provider_missing_waits_for_the_deadline():
    assert closes(ups("accepted", "rejected"), 3, 2, 1200) == (False, "waiting")
    assert closes(ups("accepted", "rejected"), 3, 2, 1302) == (True, "deadline")


def test_a_round_that_expects_nobody_closes_only_at_the_deadline():
    assert closes([], 0, 1, 1200) == (False, "waiting")


def test_a_silent_provider_does_not_stall_the_round():
    two = ups("accepted", "accepted")
    assert closes(two, 3, 2, 1025)[0] is False
    assert closes(two, 3, 2, 1031) == (True, "quiet")


def test_the_next_close_check_is_when_the_quiet_window_or_deadline_runs_out():
    policy = Policy(min_accepted=2, settle_seconds=20)
    two = ups("accepted", "accepted")
    assert policy.next_close_check(ROUND, two, 1025) == pytest.approx(1030 - 1025 + 0.05)
    # Quiet already (closing then waits for an event: a verdict): the deadline is what is left.
    assert policy.next_close_check(ROUND, two, 1100) == pytest.approx(1301 - 1100 + 0.05)
    assert policy.next_close_check(ROUND, two, 1400) is None


def test_an_empty_round_closes_only_at_the_deadline():
    assert closes([], 3, 1, 1200)[0] is False
    assert closes([], 3, 1, 1400) == (True, "deadline")


# ------------------------------------------------------------------------- scoring and the ledger


def test_scores_are_clamped_to_the_recorded_bounds():
    assert Policy.clamp(float("nan")) == SCORE_MIN
    assert Policy.clamp(1e9) == SCORE_MAX and Policy.clamp(-1e9) == SCORE_MIN
    assert Policy.clamp(0.25) == 0.25


def test_ledger_rules_state_what_from_model_reads_back():
    exp = parse_experiment(small(acceptance="threshold", min_accepted=2, scoring={"rule": "damped"}))
    policy = Policy.from_experiment(exp)
    rules = policy.ledger_rules()
    assert rules["metric"]["name"] == "damped-loss"
    assert rules["acceptance"] == {"rule": "threshold", "scoreMin": SCORE_MIN, "scoreMax": SCORE_MAX,
                                   "threshold": 0.0}  # fmt: skip
    assert rules["roundRules"]["minAccepted"] == 2 and rules["quorum"] == exp.effective_quorum
    assert rules["aggregation"] == {"name": "fedavg", "params": {}}
    back = Policy.from_model(rules)  # a verifier with the record alone
    assert (back.scoring.rule, back.scoring.metric, back.min_accepted) == ("damped", "loss", 2)
    assert back.max_rounds == exp.rounds and back.deadline_seconds == exp.deadline_seconds


def test_the_recorded_aggregation_alone_rebuilds_a_stateful_strategy():
    exp = parse_experiment(small(aggregation={"name": "fedavgm", "params": {"momentum": 0.5}}))
    rules = Policy.from_experiment(exp).ledger_rules()
    assert rules["aggregation"] == {"name": "fedavgm", "params": {"momentum": 0.5}}
    back = Policy.from_model(rules)  # no config: the verifier's case
    assert (back.aggregation, back.aggregation_params) == ("fedavgm", {"momentum": 0.5})


def test_the_scoring_rule_takes_the_threshold_the_ledger_holds_now():
    policy = Policy.from_experiment(parse_experiment(small()))
    rule = policy.scoring_rule()
    assert rule.name == policy.scoring.rule and rule.reference.steps == policy.scoring.reference_steps
    assert policy.scoring_rule({"acceptance": {"threshold": 0.5}}).threshold == 0.5


def test_the_reference_trains_with_the_providers_loss():
    doc = small()
    doc["local"] = {**doc.get("local", {}), "logit_adjust": 1.0, "momentum": 0.5}
    exp = parse_experiment(doc)
    reference = Policy.from_experiment(exp).scoring_rule().reference
    assert (reference.logit_adjust, reference.momentum) == (1.0, 0.5)
    assert exp.train_config(seed=3).logit_adjust == 1.0


def test_optional_rules_reach_the_spec_only_when_asked():
    asked = {"allocation": {"rule": "random", "k": 3}, "stopping": {"target": 0.9, "patience": 2},
             "governance": {"policy": "all"}}  # fmt: skip
    exp = parse_experiment(small(**asked))
    assert Policy.from_experiment(exp).optional_rules() == {
        "allocation": {"rule": "random", "k": 3},
        "stopping": {"patience": 2, "minDelta": 0.0, "target": 0.9},
        "governance": {"policy": "all", "orgs": ["Org1MSP", "Org2MSP", "Org3MSP"]},
    }
    assert Policy.from_experiment(parse_experiment(small())).optional_rules() == {}
    with pytest.raises(ValueError, match="config"):
        Policy().ledger_rules()  # a policy read from the ledger cannot publish


def test_a_recorded_aggregation_is_used_and_must_agree_with_the_config():
    exp = parse_experiment(small(aggregation={"name": "fedavgm", "params": {"momentum": 0.5}}))
    assert Policy.from_model({}, exp).aggregation == "fedavgm"  # not recorded: the config's
    recorded = {"aggregation": {"name": "fedavgm", "params": {"momentum": 0.5}}}
    assert Policy.from_model(recorded).aggregation_params == {"momentum": 0.5}
    with pytest.raises(ValueError, match="ledger aggregates with fedavg"):
        Policy.from_model({"aggregation": {"name": "fedavg"}}, exp)


# ------------------------------------------------------------------------------------ aggregation


def rounds_of_updates(n_rounds: int = 3):
    gen = torch.Generator().manual_seed(7)
    g0 = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    per_round = [
        [({k: torch.randn(v.shape, generator=gen) * 0.1 for k, v in g0.items()}, 5 + i) for i in range(3)]
        for _ in range(n_rounds)
    ]
    return g0, per_round


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def in_process(strategy, g0, per_round):
    """One strategy object applied round after round: the reference result."""
    globals_, g = [g0], g0
    for updates in per_round:
        g = strategy.aggregate(g, updates)
        globals_.append(g)
    return globals_


def test_fedavgm_over_three_rounds_equals_one_object_applied_three_times_and_its_replay():
    g0, per_round = rounds_of_updates()
    expected = in_process(A.FedAvgM(server_lr=1.0, momentum=0.9), g0, per_round)
    assert not same(expected[3], in_process(A.FedAvg(), g0, per_round)[3])  # momentum matters here

    def earlier(k: int):
        return expected[k - 1], per_round[k - 1]

    policy = Policy(aggregation="fedavgm", aggregation_params={"server_lr": 1.0, "momentum": 0.9})
    for r in (1, 2, 3):
        assert same(policy.aggregate(r, expected[r - 1], per_round[r - 1], earlier), expected[r])
    assert same(policy.aggregate(3, expected[2], per_round[2], earlier), expected[3])  # recomputed

    asked: list[int] = []

    def recorded(k: int):
        asked.append(k)
        return earlier(k)

    fresh = Policy(aggregation="fedavgm", aggregation_params={"server_lr": 1.0, "momentum": 0.9})
    assert same(fresh.aggregate(3, expected[2], per_round[2], recorded), expected[3])
    assert asked == [1, 2]  # replayed what it had not seen, once


@pytest.mark.parametrize("name", ["fedadam", "fedavgm"])
def test_a_stateful_strategy_replays_skipped_rounds_and_goes_back_in_time(name):
    g0, per_round = rounds_of_updates(4)
    per_round[1] = []  # round 2 skipped: nothing accepted, state and model carry over
    strategy, globals_ = A.get_strategy(name), [g0]
    for updates in per_round:
        globals_.append(strategy.aggregate(globals_[-1], updates) if updates else globals_[-1])
    agg = Aggregator(name)

    def earlier(k):
        return globals_[k - 1], per_round[k - 1]

    assert same(agg.aggregate(4, globals_[3], per_round[3], earlier), globals_[4])
    assert same(agg.aggregate(1, g0, per_round[0], earlier), globals_[1])  # an auditor starting over
    assert same(agg.aggregate(3, globals_[2], per_round[2], earlier), globals_[3])


def test_a_stateless_strategy_never_reads_earlier_rounds():
    g0, per_round = rounds_of_updates()

    def earlier(k):
        raise AssertionError("a stateless strategy needs no replay")

    out = Policy(aggregation="median").aggregate(3, g0, per_round[2], earlier)
    assert same(out, A.Median().aggregate(g0, per_round[2]))
    assert Policy().aggregate(2, g0, [], earlier) is g0  # nothing accepted: the global carries over


def test_strategy_parameters_are_checked():
    with pytest.raises(ValueError, match="momentum"):
        Aggregator("fedavgm", {"momentum": 1.5})
    with pytest.raises(ValueError, match="unknown parameter"):
        Aggregator("median", {"beta": 0.1})
    with pytest.raises(ValueError, match="unknown aggregation strategy"):
        Aggregator("fedsgd")


def test_the_effect_rule_and_its_margins_reach_the_committee_from_a_config():
    doc = {"rule": "effect", "sym_se": 2.0, "loo_se": 3.0, "guard_se": 4, "twin_ratio": 0.2}
    rule = Policy.from_experiment(parse_experiment(small(scoring=doc))).scoring_rule()
    assert (rule.name, rule.sym_se, rule.loo_se, rule.cos_floor) == ("effect", 2.0, 3.0, 0.01)
    assert (rule.guard_se, rule.twin_ratio) == (4.0, 0.2)
    plain = Policy.from_experiment(parse_experiment(small())).scoring_rule()
    assert (plain.loo_se, plain.guard_se, plain.twin_ratio) == (float("inf"), float("inf"), 0.0)
    with pytest.raises(ValueError, match=r"scoring\.twin_ratio: must be in \[0, 0\.4\], got 0\.6"):
        parse_experiment(small(scoring={"rule": "effect", "twin_ratio": 0.6}))
    with pytest.raises(ValueError, match=r"scoring\.twin_ratio.*effect rule's, not 'trust'"):
        parse_experiment(small(scoring={"rule": "trust", "twin_ratio": 0.1}))
    with pytest.raises(ValueError, match=r"scoring\.sym_se"):
        parse_experiment(small(scoring={"rule": "effect", "sym_se": -1}))
    with pytest.raises(ValueError, match=r"scoring\.guard_se"):
        parse_experiment(small(scoring={"rule": "effect", "guard_se": "high"}))
    with pytest.raises(ValueError, match=r"scoring\.guard_se.*effect rule's, not 'trust'"):
        parse_experiment(small(scoring={"rule": "trust", "guard_se": 3}))


def test_round_aware_attacks_are_configurable_and_their_parameters_checked():
    doc = small()
    doc["providers"][0].update(behaviour="adaptive", params={"rule": "trust", "margin": 0.1})
    assert parse_experiment(doc).providers[0].params == {"rule": "trust", "margin": 0.1}
    doc["providers"][0]["params"] = {"rule": "cosine"}
    with pytest.raises(ValueError, match=r"providers\[0\]\.params\.rule: must be one of"):
        parse_experiment(doc)
