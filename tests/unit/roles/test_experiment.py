"""Experiment configs: the shipped ones load, and every bad key is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedcommittee.experiment import ConfigError, data_split, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def small() -> dict:
    return yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if p.name != "connection-local.yaml"], ids=lambda p: p.name
)
def test_shipped_configs_load(path):
    exp = load_experiment(path, model_id="m-1")
    assert exp.model_id == "m-1"
    assert exp.providers and exp.committee
    assert 1 <= exp.effective_quorum <= len(exp.committee)


def test_default_config_has_an_attacker_and_a_free_rider():
    exp = load_experiment(ROOT / "configs" / "default.yaml")
    behaviours = {p.behaviour for p in exp.providers}
    assert "free_rider" in behaviours
    assert behaviours & {"label_flip", "sign_flip", "gaussian_noise", "scaling"}
    assert len({m.user.split("-")[0] for m in exp.committee}) == 3, "one committee member per org"
    assert exp.mode == "federated" and exp.data.source.startswith("fashion-mnist")


def error_for(doc) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_experiment(doc, source="t.yaml")
    return info.value


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["local"].update(stepz=3), "local.stepz"),
        (lambda d: d["local"].update(steps=0), "local.steps"),
        (lambda d: d["local"].update(lr="fast"), "local.lr"),
        (lambda d: d["local"].update(logit_adjust=-1), "local.logit_adjust"),
        (lambda d: d["local"].update(lr_decay=0), "local.lr_decay"),
        (lambda d: d["local"].update(lr_decay=1.2), "local.lr_decay"),
        (lambda d: d.update(model="resnet-9000"), "model"),
        (lambda d: d.update(mode="async"), "mode"),
        (lambda d: d["providers"][2].update(behaviour="evil"), "providers[2].behaviour"),
        (lambda d: d["providers"][1].update(user="bob"), "providers[1].user"),
        (lambda d: d["providers"][1].update(user="org1-user3"), "providers[1].user"),
        (lambda d: d["providers"][0].update(params={"factor": "x"}), "providers[0].params.factor"),
        (lambda d: d["committee"][0].update(user="org1-user3"), "committee[0].user"),
        (lambda d: d.update(quorum=4), "quorum"),
        (lambda d: d.update(aggregation="fedsgd"), "aggregation.name"),
        (
            lambda d: d.update(aggregation={"name": "fedavgm", "params": {"nesterov": 1}}),
            "aggregation.params.nesterov",
        ),
        (
            lambda d: d.update(aggregation={"name": "fedavgm", "params": {"momentum": 1.0}}),
            "aggregation.params.momentum",
        ),
        (lambda d: d.update(aggregation={"name": "krum", "params": {"f": 0.5}}), "aggregation.params.f"),
        (lambda d: d.update(aggregation={"name": "median", "param": {}}), "aggregation.param"),
        (lambda d: d.update(partition={"name": "dirichlet"}), "partition.params.alpha"),
        (lambda d: d.update(min_accepted=9), "min_accepted"),
        (lambda d: d["scoring"].update(rule="vibes"), "scoring.rule"),
        (lambda d: d.update(dp={"enabled": "yes"}), "dp.enabled"),
        (lambda d: d.update(partition={"name": "random"}), "partition.name"),
        (lambda d: d.update(model_id="bad id!"), "model_id"),
        (lambda d: d.pop("publisher"), "publisher"),
        (lambda d: d.update(providers=[]), "providers"),
        (
            lambda d: d["providers"][0].update(behaviour="honest", params={"factor": 2}),
            "providers[0].params.factor",
        ),
        (lambda d: d.update(allocation={"rule": "lottery", "k": 2}), "allocation.rule"),
        (lambda d: d.update(allocation={"rule": "random"}), "allocation.k"),
        (lambda d: d.update(allocation={"rule": "random", "k": 1}), "allocation.k"),  # below min_accepted
        (lambda d: d.update(allocation={"rule": "all", "k": 3}), "allocation.k"),
        (lambda d: d.update(allocation={"rule": "random", "k": 2}, mode="gossip"), "allocation"),
        (lambda d: d.update(stopping={}), "stopping"),
        (lambda d: d.update(stopping={"target": 1.5}), "stopping.target"),
        (lambda d: d.update(stopping={"patience": 9}), "stopping.patience"),
        (lambda d: d.update(stopping={"target": 0.9, "when": 1}), "stopping.when"),
        (lambda d: d.update(governance={"policy": "some"}), "governance.policy"),
        (lambda d: d.update(governance={"orgs": ["Org 1"]}), "governance.orgs"),
        (lambda d: d.update(compression="zip"), "compression"),
        (lambda d: d["providers"][1].update(compression="int8+topk:2"), "providers[1].compression"),
        (lambda d: d.update(compression="float16", mode="gossip"), "compression"),
        (lambda d: d["local"].update(lr_decay=0.9) or d.update(mode="gossip"), "local.lr_decay"),
        (
            lambda d: d.update(mode="gossip", gossip={"max_parents": 2, "min_parents": 3}),
            "gossip.min_parents",
        ),
        (lambda d: d.update(mode="gossip", gossip={"min_parents": 0}), "gossip.min_parents"),
        (lambda d: d.update(profile={"purpose": ""}), "profile.purpose"),
        (lambda d: d["data"].update(share_histogram="yes"), "data.share_histogram"),
        (lambda d: d.update(scoring={"rule": "trust", "probation_rounds": 1}), "scoring.probation_rounds"),
        (
            lambda d: d.update(
                scoring={
                    "rule": "effect",
                    "cos_floor": -0.2,
                    "probation_rounds": 1,
                    "probation_cos_floor": -0.3,
                }
            ),  # fmt: skip
            "scoring.probation_cos_floor",
        ),
        (
            lambda d: d.update(
                scoring={"rule": "effect", "sym_se": 3, "probation_rounds": 1, "probation_sym_se": 5}
            ),  # fmt: skip
            "scoring.probation_sym_se",
        ),
        (lambda d: d.update(scoring={"rule": "effect", "probation_rounds": -1}), "scoring.probation_rounds"),
        (
            lambda d: d.update(scoring={"rule": "effect", "probation_until_accepted": True}),
            "scoring.probation_until_accepted",
        ),
    ],
)
def test_bad_keys_are_named(mutate, key):
    doc = small()
    mutate(doc)
    err = error_for(doc)
    assert err.key == key, str(err)
    assert key in str(err) and "t.yaml" in str(err)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_experiment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)


def test_data_split_is_deterministic_and_disjoint():
    exp = load_experiment(ROOT / "configs" / "small.yaml")
    a, b = data_split(exp), data_split(exp.with_model_id("other"))
    assert a is b  # cached by content, not by model id
    parts = [set(p.tolist()) for p in a.partition]
    assert len(parts) == len(exp.providers)
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            assert not parts[i] & parts[j]
    assert len(a.val) > 0 and len(a.test) > 0


def test_every_registered_aggregation_can_be_chosen_with_its_parameters():
    from fedcommittee.ml.registry import STRATEGIES

    for name in STRATEGIES:
        assert parse_experiment({**small(), "aggregation": name}).aggregation == name
    exp = parse_experiment(
        {**small(), "aggregation": {"name": "fedadam", "params": {"server_lr": 0.1, "tau": 0.01}}}
    )
    assert (exp.aggregation, exp.aggregation_params) == ("fedadam", {"server_lr": 0.1, "tau": 0.01})


def test_scoring_rule_and_train_config_follow_the_config():
    from fedcommittee.policy import Policy

    exp = load_experiment(ROOT / "configs" / "small.yaml")
    rule = Policy.from_experiment(exp).scoring_rule()
    assert rule.name == exp.scoring.rule and rule.threshold is not None
    assert rule.reference.steps == exp.scoring.reference_steps
    cfg = exp.train_config(seed=5)
    assert cfg.seed == 5 and cfg.steps == exp.local.steps


def test_probation_reaches_the_scoring_rule():
    from fedcommittee.policy import Policy

    doc = {**small(), "scoring": {"rule": "effect", "cos_floor": -0.2, "sym_se": 10, "probation_rounds": 2,
                                  "probation_cos_floor": 0.01}}  # fmt: skip
    rule = Policy.from_experiment(parse_experiment(doc)).scoring_rule()
    assert rule.probation_rounds == 2
    assert rule.bars(on_probation=True) == (0.01, 1.0, 1.0)  # effect's own bars unless set
    assert rule.bars(on_probation=False) == (-0.2, 10.0, 1.0)


def test_gossip_takes_probation_on_the_providers_standing():
    gossip = {"updates_per_provider": 2, "max_parents": 2, "min_parents": 1}
    scoring = {"rule": "effect", "cos_floor": -0.2, "probation_rounds": 1, "probation_until_accepted": True}
    doc = {**small(), "mode": "gossip", "gossip": gossip, "scoring": scoring}
    exp = parse_experiment(doc)
    assert exp.mode == "gossip" and exp.scoring.probation_until_accepted


def test_lr_decay_shrinks_the_local_learning_rate_round_by_round():
    doc = small()
    assert parse_experiment(doc).train_config(seed=1, round_no=7).lr == doc["local"]["lr"]  # default: none
    doc["local"].update(lr=0.05, lr_decay=0.9)
    exp = parse_experiment(doc)
    assert exp.train_config(seed=1).lr == 0.05
    assert exp.train_config(seed=1, round_no=3).lr == pytest.approx(0.05 * 0.81)


def test_protocol_rules_parse_and_reach_the_spec():
    from fedcommittee.policy import Policy

    def protocol_rules(exp):
        return Policy.from_experiment(exp).optional_rules()

    doc = small()
    doc.update(
        allocation={"rule": "random", "k": 3},
        stopping={"target": 0.9, "patience": 2},
        governance={"policy": "all"},
        compression="INT8+topk:0.1",
    )
    doc["providers"][0]["compression"] = "float16"
    exp = parse_experiment(doc)
    assert exp.compression == "int8+topk:0.1"  # canonical name
    assert exp.provider_compression("honest1") == "float16"
    assert exp.provider_compression("honest2") == "int8+topk:0.1"
    # Governance orgs default to every org taking part (publisher, committee, providers).
    assert exp.governance_orgs() == ("Org1MSP", "Org2MSP", "Org3MSP")
    assert protocol_rules(exp) == {
        "allocation": {"rule": "random", "k": 3},
        "stopping": {"patience": 2, "minDelta": 0.0, "target": 0.9},
        "governance": {"policy": "all", "orgs": ["Org1MSP", "Org2MSP", "Org3MSP"]},
    }
    assert protocol_rules(parse_experiment(small())) == {}  # nothing asked, nothing sent


def test_providers_per_process_groups_providers_in_config_order():
    from fedcommittee.supervision import provider_groups

    doc = small()
    names = [p["name"] for p in doc["providers"]]
    assert provider_groups(parse_experiment(doc)) == [(n, [n]) for n in names]  # default: one each
    doc["providers_per_process"] = 2
    groups = provider_groups(parse_experiment(doc))
    assert [g for _, g in groups] == [names[i : i + 2] for i in range(0, len(names), 2)]
    assert all(child == (g[0] if len(g) == 1 else f"providers-{g[0]}..{g[-1]}") for child, g in groups)
    for bad in (0, -1, 1.5, "two"):
        doc["providers_per_process"] = bad
        with pytest.raises(ConfigError) as err:
            parse_experiment(doc)
        assert err.value.key == "providers_per_process"


def test_a_config_error_survives_the_trip_back_from_a_worker_process():
    import pickle

    from fedcommittee.experiment import ConfigError

    err = ConfigError("cfg.yaml", "rounds", "must be >= 1, got 0")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.key) == (ConfigError, str(err), "rounds")
