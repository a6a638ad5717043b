"""Protocol rules as the agents apply them (pure): the publisher's profile, the providers' data
registrations, the committee's approval check, and the auditor's recomputation of an allocation."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from fedcommittee.experiment import load_experiment
from fedcommittee.ledger import FedcommitteeClient
from fedcommittee.ml.models import num_parameters
from fedcommittee.roles.auditor import POOL_SLACK_S, Pool, allocation_pool, allocation_problems
from fedcommittee.roles.data import data_kind, data_registration, declared_profile
from fedcommittee.roles.protocol import (
    choose_parents,
    expected_providers,
    final_candidates,
    final_choice,
    final_mix,
    fresh,
    generations,
    model_rank,
    parent_candidates,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def exp():
    return load_experiment(ROOT / "configs" / "small.yaml", model_id="m")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ profile, registrations


def test_declared_profile_matches_the_registry_and_the_split(exp):
    from fedcommittee import ml
    from fedcommittee.experiment import data_split

    prof = declared_profile(exp)
    layout = ml.state_layout("mlp")
    assert prof["parameters"] == num_parameters("mlp") == sum(int(np.prod(s)) for s, _ in layout.values())
    assert (prof["dataType"], prof["dataFormat"]) == ("image", "float32-1x8x8")
    sizes = sorted(len(p) for p in data_split(exp).partition)
    assert prof["trainingSamples"] == sum(sizes[: exp.min_accepted]) < sum(sizes)
    assert prof["purpose"]


def test_registration_shares_the_histogram_only_with_consent(exp):
    from dataclasses import replace

    labels = np.array([0, 0, 3, 3, 3, 9])
    doc = data_registration(exp, labels, 10)
    assert doc == {"numSamples": 6, "dataType": "image", "format": "float32-1x8x8", "shareHistogram": False}
    consenting = replace(exp, data=replace(exp.data, share_histogram=True))
    doc = data_registration(consenting, labels, 10)
    assert doc["labelHistogram"] == {"0": 2, "3": 3, "9": 1}  # empty bins left out
    assert doc["shareHistogram"] is True


def test_expected_providers_follows_the_allocation(exp):
    assert expected_providers(exp, {"allocated": None}) == len(exp.providers)
    assert expected_providers(exp, {}) == len(exp.providers)
    assert expected_providers(exp, {"allocated": ["a", "b"]}) == 2
    assert expected_providers(exp, {"allocated": []}) == 0


# ------------------------------------------------------------------------------ committee approval


class Registrations(FedcommitteeClient):
    """The real client answering ListDataRegistrations from a list."""

    def __init__(self, regs):
        super().__init__(contract=None)
        self.regs = regs

    def list_data_registrations(self, model_id, page_size=None, bookmark=""):
        return {"items": self.regs, "bookmark": ""}


def member_with(exp, regs):
    from fedcommittee.policy import Policy
    from fedcommittee.roles.committee import Member

    agent = type("A", (), {})()
    agent.exp, agent.model_id = exp, "m"
    agent.policy = Policy.from_experiment(exp)
    agent.client = Registrations(regs)
    agent.log = lambda *a, **k: None
    return Member(agent, "member1")


def model_with(exp, **changes):
    prof = dict(declared_profile(exp), **changes)
    return {"id": "m", "architecture": {"name": "mlp"}, "profile": prof}


def test_member_approves_a_sound_profile_once_the_data_is_registered(exp):
    want = declared_profile(exp)["trainingSamples"]
    kind = dict(zip(("dataType", "format"), data_kind("mlp"), strict=True))
    half = [{"numSamples": want // 2, **kind}]
    m = member_with(exp, half)
    m.proposal_seen = 1e18  # just seen: still inside the wait (deadline_seconds)
    assert m.check_profile(model_with(exp)) == ""  # wait for more registrations
    m.proposal_seen = 0.0  # long ago: the shortfall is final
    reason = m.check_profile(model_with(exp))
    assert f"declared {want} training samples" in reason and f"hold {want // 2}" in reason
    # Registrations of another kind of data do not count.
    other = member_with(exp, [{"numSamples": want, "dataType": "tabular", "format": "csv"}])
    other.proposal_seen = 0.0
    assert "hold 0" in other.check_profile(model_with(exp))
    full = member_with(exp, half + [{"numSamples": want - want // 2, **kind}])
    assert full.check_profile(model_with(exp)) is None


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"purpose": " "}, "purpose is empty"),
        ({"parameters": 12}, "profile.parameters 12"),
        ({"dataFormat": "float32-3x32x32"}, "does not fit mlp"),
    ],
)
def test_member_rejects_an_unsound_profile(exp, changes, needle):
    assert needle in member_with(exp, []).check_profile(model_with(exp, **changes))


def test_member_rejects_a_model_without_profile(exp):
    assert "no profile" in member_with(exp, []).check_profile({"architecture": {"name": "mlp"}})


# ------------------------------------------------------------------------------ auditor: allocation

IDS = [f"Org{i % 3 + 1}MSP/p{i}" for i in range(5)]
POOL = Pool(sure=IDS, maybe=[])


def random_allocation(model, round_no, k):
    round_seed = sha(f"{model['id']}|{round_no}|{model['allocationSeed']}")
    draws = sorted((sha(f"{round_seed}|{p}"), p) for p in IDS)[:k]
    return {
        "rule": "random",
        "eligible": len(IDS),
        "roundSeed": round_seed,
        "providers": [p for _, p in draws],
        "ranking": [{"provider": p, "draw": d} for d, p in draws],
    }


def test_a_correct_random_allocation_has_no_problems():
    model = {"id": "m", "allocation": {"rule": "random", "k": 2}, "allocationSeed": "tx123"}
    alloc = random_allocation(model, 3, 2)
    ups = [{"id": "u1", "provider": alloc["providers"][0]}]
    assert allocation_problems(model, 3, alloc, ups, POOL) == []


def test_allocation_tampering_is_found():
    model = {"id": "m", "allocation": {"rule": "random", "k": 2}, "allocationSeed": "tx123"}
    alloc = random_allocation(model, 3, 2)
    outsider = next(p for p in IDS if p not in alloc["providers"])
    # A provider not drawn submitted anyway.
    problems = allocation_problems(model, 3, alloc, [{"id": "u9", "provider": outsider}], POOL)
    assert problems == ["update u9 comes from a provider not allocated to the round"]
    # The record names someone other than the k smallest draws.
    swapped = dict(alloc, providers=[alloc["providers"][0], outsider])
    assert any("k smallest draws" in p for p in allocation_problems(model, 3, swapped, [], POOL))
    # A draw that is not sha256(roundSeed|identity), and a seed from another round.
    forged = dict(alloc, ranking=[dict(alloc["ranking"][0], draw="0" * 64), alloc["ranking"][1]])
    assert any("draw of" in p for p in allocation_problems(model, 3, forged, [], POOL))
    assert any("roundSeed" in p for p in allocation_problems(model, 4, alloc, [], POOL))


def test_the_pool_leaves_registrations_near_the_opening_undecided():
    """Timestamps are proposal times: within POOL_SLACK_S of the opening, on either side, a
    registration may or may not have been in the pool the contract drew from."""
    at, w = 1000, POOL_SLACK_S
    regs = [{"provider": "b", "registeredAt": at - w - 1}, {"provider": "a", "registeredAt": at - w},
            {"provider": "c", "registeredAt": at + w}, {"provider": "d", "registeredAt": 50},
            {"provider": "e", "registeredAt": at + w + 1}]  # fmt: skip
    assert allocation_pool(regs, {"timestamp": at}) == Pool(sure=["b", "d"], maybe=["a", "c"])


def test_a_same_second_registration_may_or_may_not_have_been_drawn():
    """A provider registered about when the round opened may have come after the draw. Leaving it
    out is fine; leaving out one registered well before is not."""
    model = {"id": "m", "allocation": {"rule": "random", "k": 2}, "allocationSeed": "tx123"}
    round_seed = sha("m|1|tx123")
    ranked = [p for _, p in sorted((sha(f"{round_seed}|{p}"), p) for p in IDS)]
    late, rest = ranked[0], [p for p in IDS if p != ranked[0]]
    alloc = {"rule": "random", "roundSeed": round_seed, "eligible": 4, "providers": ranked[1:3],
             "ranking": [{"provider": p, "draw": sha(f"{round_seed}|{p}")} for p in ranked[1:3]]}  # fmt: skip
    assert allocation_problems(model, 1, alloc, [], Pool(sure=rest, maybe=[late])) == []
    # Had it registered a second earlier, it had the smallest draw and was passed over.
    problems = allocation_problems(model, 1, alloc, [], Pool(sure=IDS, maybe=[]))
    assert any("eligible 4 does not fit" in p for p in problems)
    assert any("k smallest draws" in p for p in problems)


def test_reputation_allocation_takes_the_first_k_of_the_ranking():
    model = {"id": "m", "allocation": {"rule": "reputation", "k": 1}}
    ranking = [{"provider": "Org1MSP/a", "reputation": 0.9}, {"provider": "Org2MSP/b", "reputation": 0.5}]
    ok = {"rule": "reputation", "providers": ["Org1MSP/a"], "ranking": ranking[:1]}
    assert allocation_problems(model, 1, ok, [], POOL) == []
    bad = dict(ok, providers=["Org2MSP/b"])
    assert allocation_problems(model, 1, bad, [], POOL) == [
        "allocated providers are not the first k of the reputation ranking"
    ]


def gossip_update(
    uid: str, provider: str, score: float, quality: float | None, at: int = 0, parents: tuple = ()
) -> dict:
    u = {"id": uid, "provider": provider, "medianScore": score, "submittedAt": at, "parents": list(parents)}
    if quality is not None:
        u["medianQuality"] = quality
    return u


def test_gossip_models_rank_by_measured_quality_not_by_score():
    early = gossip_update("a", "p1", score=0.9, quality=0.31, at=1)  # big effect on a weak base
    later = gossip_update("b", "p2", score=0.2, quality=0.52, at=2)
    unmeasured = gossip_update("c", "p3", score=0.95, quality=None, at=3)
    ranked = sorted([early, later, unmeasured], key=model_rank, reverse=True)
    assert [u["id"] for u in ranked] == ["b", "a", "c"]
    # Equal quality: the score, then the newer one decides.
    tie = gossip_update("d", "p4", score=0.2, quality=0.52, at=5)
    assert max([later, tie], key=model_rank)["id"] == "d"


def test_parents_are_the_best_models_at_most_one_per_provider():
    ups = [
        gossip_update("u1", "skewed", 0.5, 0.60),
        gossip_update("u2", "skewed", 0.5, 0.59),  # second best, but the same provider's chain
        gossip_update("u3", "other", 0.5, 0.55),
        gossip_update("u4", "third", 0.5, 0.40),
    ]
    assert choose_parents(ups, 2) == ["u1", "u3"]
    assert choose_parents(ups, 5) == ["u1", "u3", "u4"]
    assert choose_parents([], 3) == []


def test_the_final_mix_is_every_providers_best_model():
    ups = [
        gossip_update("u1", "p1", 0.5, 0.60),
        gossip_update("u2", "p1", 0.5, 0.70),
        gossip_update("u3", "p2", 0.5, 0.55),
        gossip_update("u4", "p3", 0.5, 0.40),
        gossip_update("u5", "p3", 0.5, 0.45),
    ]
    assert final_mix(ups) == ["u2", "u3", "u5"]


def test_the_final_candidates_are_every_accepted_model_best_first():
    ups = [
        gossip_update("u1", "p1", 0.5, 0.60),
        gossip_update("u2", "p1", 0.5, 0.70),
        gossip_update("u3", "p2", 0.9, 0.55),
    ]
    assert final_candidates(ups) == ["u2", "u1", "u3"]
    many = [gossip_update(f"v{i:03d}", f"p{i}", 0.5, i / 1000) for i in range(300)]
    assert final_candidates(many) == [f"v{i:03d}" for i in range(299, 43, -1)]  # the best 256


def test_the_committee_finishes_on_the_entry_with_the_best_median_quality():
    prop = {"mix": ["a", "b"], "candidates": ["a", "b"], "judgments": [
        {"member": "m1", "qualities": [0.50, 0.70, 0.40]},
        {"member": "m2", "qualities": [0.60, 0.55, 0.90]},
        {"member": "m3", "qualities": [0.55, 0.60, 0.10]},
    ]}  # fmt: skip
    assert final_choice(prop) == ("a", [0.55, 0.60, 0.40])  # medians, the mix first
    prop["judgments"][2]["qualities"][1] = 0.55  # a tie with the mix: the mix
    assert final_choice(prop) == (None, [0.55, 0.55, 0.40])
    prop["candidates"], prop["judgments"] = ["a", "b"], [{"member": "m1", "qualities": [0.1, 0.3, 0.3]}]
    assert final_choice(prop) == ("a", [0.1, 0.3, 0.3])  # a tie between candidates: the earlier


def test_generations_count_the_deepest_chain_of_parents():
    ups = [
        gossip_update("a0", "p1", 0.5, 0.1),
        gossip_update("b0", "p2", 0.5, 0.1),
        gossip_update("a1", "p1", 0.5, 0.3, parents=("a0", "b0")),
        gossip_update("b1", "p2", 0.5, 0.3, parents=("b0",)),
        gossip_update("a2", "p1", 0.5, 0.4, parents=("b0", "a1")),  # one old parent, one new
        gossip_update("x", "p3", 0.5, 0.4, parents=("gone",)),  # a parent not listed counts as none
    ]
    assert generations(ups) == {"a0": 0, "b0": 0, "a1": 1, "b1": 1, "a2": 2, "x": 0}
    # A chain longer than Python's recursion limit.
    chain = [gossip_update("c0", "p1", 0.5, 0.1)]
    chain += [gossip_update(f"c{i}", "p1", 0.5, 0.1, parents=(f"c{i - 1}",)) for i in range(1, 3000)]
    assert generations(reversed(chain))["c2999"] == 2999


def test_stale_models_leave_the_parents_and_the_final_mix():
    # The label flipper's first update got in; all its later ones were rejected. Built on the
    # initial weights, it stays its provider's only (and so best) model: without freshness it would
    # be in every later mix.
    ups = [
        gossip_update("h1", "honest1", 0.5, 0.30, at=1),
        gossip_update("h2", "honest2", 0.5, 0.30, at=1),
        gossip_update("lf", "flipper", 0.5, 0.90, at=1),  # even measured best
        gossip_update("h1b", "honest1", 0.5, 0.40, at=2, parents=("h1", "h2", "lf")),
        gossip_update("h2b", "honest2", 0.5, 0.41, at=2, parents=("h1", "h2", "lf")),
    ]
    assert [u["id"] for u in fresh(ups)] == ["h1", "h2", "lf", "h1b", "h2b"]  # generations 0 and 1
    assert final_mix(ups) == ["h1b", "h2b", "lf"]
    ups += [
        gossip_update("h1c", "honest1", 0.5, 0.45, at=3, parents=("h1b", "h2b")),
        gossip_update("h2c", "honest2", 0.5, 0.20, at=3, parents=("h1b", "h2b")),
    ]
    assert final_mix(ups) == ["h1c", "h2b"]  # generation 0 is stale; honest2's better model is one older
    assert choose_parents(parent_candidates(ups, recency=2), 4) == ["h1c", "h2c"]  # the newest two
    assert [u["id"] for u in parent_candidates(ups, recency=10)] == ["h1b", "h2b", "h1c", "h2c"]


def test_a_model_measured_far_below_the_other_providers_stays_out_of_the_mix():
    # A label flip that slipped through the committee on a good base: its provider's only fresh
    # model, measured far below the honest ones (seed 1 of configs/gossip-fmnist.yaml).
    ups = [
        gossip_update("h1", "honest1", 0.5, 0.48),
        gossip_update("h2", "honest2", 0.5, 0.44),
        gossip_update("h3", "honest3", 0.5, 0.39),
        gossip_update("lf", "flipper", 1.0, 0.16),
    ]
    assert final_mix(ups) == ["h1", "h2", "h3"]
    assert choose_parents(ups, 4) == ["h1", "h2", "h3"]
    # Honest models that differ as honest ones do all stay, and with two there is no telling.
    spread = [gossip_update("a", "p1", 0.5, 0.60), gossip_update("b", "p2", 0.5, 0.55),
              gossip_update("c", "p3", 0.5, 0.40)]  # fmt: skip
    assert final_mix(spread) == ["a", "b", "c"]
    assert final_mix(ups[:1] + ups[3:]) == ["h1", "lf"]
    # Near ties: the floor on the spread keeps a model 0.05 below two equal ones.
    ties = [gossip_update("a", "p1", 0.5, 0.42), gossip_update("b", "p2", 0.5, 0.42),
            gossip_update("c", "p3", 0.5, 0.37)]  # fmt: skip
    assert final_mix(ties) == ["a", "b", "c"]


def test_probation_reads_recent_rejections_and_earlier_acceptances():
    from fedcommittee.roles.protocol import rejected_or_unproven

    last = [{"provider": "a", "status": "rejected"}, {"provider": "b", "status": "accepted"},
            {"provider": "c", "status": "pending"}]  # fmt: skip
    before = [{"provider": "b", "status": "rejected"}, {"provider": "a", "status": "accepted"}]
    who = ["a", "b", "c", "d"]
    assert rejected_or_unproven([last], [], who) == ([True, False, False, False], [True] * 4)
    assert rejected_or_unproven([before, last], [before, last], who) == (
        [True, True, False, False],
        [False, False, True, True],  # c's update is pending, d has none: neither accepted yet
    )
    assert rejected_or_unproven([], [], ["a"]) == ([False], [True])


# ------------------------------------------------------------------------------ gossip standing


def test_gossip_standing_folds_each_verdict_in_as_the_contract_does():
    """The sequence of chaincode/fedcommittee/update_test.go's gossipStanding, recomputed."""
    from fedcommittee.roles.protocol import standing_after

    first = standing_after(None)
    assert first == {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}
    chain, prev = [], None
    for uid, status in (("a", "accepted"), ("b", "rejected"), ("c", "accepted"), ("replay", "rejected")):
        u = {"id": uid, "status": status, "standing": standing_after(prev)}
        chain.append(u["standing"])
        prev = u
    assert chain[1:] == [
        {"previous": "a", "earlier": 1, "accepted": 1, "lastRejectedAgo": 0},
        {"previous": "b", "earlier": 2, "accepted": 1, "lastRejectedAgo": 1},
        {"previous": "c", "earlier": 3, "accepted": 2, "lastRejectedAgo": 2},
    ]
    assert standing_after(prev) == {"previous": "replay", "earlier": 4, "accepted": 2, "lastRejectedAgo": 1}


def test_gossip_standing_marks_what_probation_is_decided_on():
    from fedcommittee.roles.protocol import standing_marks

    assert standing_marks(None, 1) == (False, True)  # recorded before standings: the lenient bars
    assert standing_marks({"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}, 1) == (False, False)
    assert standing_marks({"earlier": 3, "accepted": 2, "lastRejectedAgo": 1}, 1) == (True, True)
    assert standing_marks({"earlier": 3, "accepted": 2, "lastRejectedAgo": 2}, 1) == (False, True)
    assert standing_marks({"earlier": 3, "accepted": 2, "lastRejectedAgo": 2}, 2) == (True, True)


class GossipUpdates(Registrations):
    """The real client answering the gossip model's update listing from a list."""

    def __init__(self, updates):
        super().__init__([])
        self.updates = updates

    def list_round_updates(self, model_id, round, page_size=None, bookmark=""):
        assert round == 0
        return {"items": self.updates, "bookmark": ""}


def test_member_judges_each_gossip_update_at_the_bars_its_standing_calls_for(exp, monkeypatch):
    from dataclasses import replace

    import torch

    from fedcommittee.roles import committee as committee_mod

    bars = {"rule": "effect", "cos_floor": -0.2, "sym_se": 10.0, "probation_rounds": 1,
            "probation_cos_floor": 0.01, "probation_sym_se": 10.0,
            "probation_until_accepted": True}  # fmt: skip
    strict = replace(exp, scoring=replace(exp.scoring, **bars))
    standings = {
        "old": None,  # recorded before the contract kept standings
        "first": {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0},
        "caught": {"previous": "x", "earlier": 3, "accepted": 2, "lastRejectedAgo": 1},
        "recovered": {"previous": "y", "earlier": 3, "accepted": 1, "lastRejectedAgo": 2},
    }
    later = time.time() + 3600  # submitted after the member started: no verdict of ours to look up
    updates = [{"id": uid, "provider": f"p-{uid}", "status": "pending", "submittedAt": later, "parents": []}
               for uid in standings]  # fmt: skip
    for u in updates:
        if standings[u["id"]] is not None:
            u["standing"] = standings[u["id"]]
    m = member_with(strict, [])
    m.agent.client, m.agent.reader, m.agent.me = GossipUpdates(updates), None, "me"
    base, weights = {"w": torch.zeros(2)}, {"w": torch.ones(2)}
    m.load_shard = lambda model: None
    m._load_update = lambda model, u, sha: weights
    m.replay_of = lambda model, u: None
    m.model_score = lambda state: 0.5
    monkeypatch.setattr(committee_mod, "gossip_base", lambda reader, model, parents: base)
    judged, sent = [], []

    def score_updates(rule, model_name, global_state, deltas, shard, probation=None):
        assert rule.probation_rounds == 1 and len(deltas) == 1
        judged.extend(probation)
        return [0.25]

    monkeypatch.setattr(committee_mod.ml, "score_updates", score_updates)
    m._verdict = lambda u, score, reason="", rule=None, quality=None: sent.append((u["id"], score))
    m.judge_gossip({"id": "m", "mode": "gossip"})
    assert judged == [False, True, True, False]
    assert sent == [(uid, 0.25) for uid in standings]
