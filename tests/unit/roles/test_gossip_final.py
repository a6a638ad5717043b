"""A member's judgment of a gossip model's proposed final models (``Member.judge_final``): the shard
accuracy of the mix, recomputed from the updates it names, then of each candidate's own model, sent
as one ``JudgeFinal``; a mix object that is not their mean measures 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedcommittee import ml
from fedcommittee.experiment import data_split
from fedcommittee.roles.reader import gossip_base
from tests.privacy import PROVIDERS, CapturingAgent, memory_store, privacy_experiment

MODEL = "mlp"


@pytest.fixture()
def judged():
    """A member of an active gossip model with two accepted updates and a final proposal."""
    from fedcommittee.roles.committee import Member

    providers = [p for p in PROVIDERS if not p.get("compression")]  # gossip updates are full weights
    exp = privacy_experiment(mode="gossip", gossip={"updates_per_provider": 2}, providers=providers)
    store = memory_store()
    agent = CapturingAgent(exp=exp, name="member1", role="committee", backing_store=store, home=Path("."))
    member = Member(agent, "member1")
    member.shard = ml.split_shards(data_split(exp).val, 3, exp.seed + 3)[0]
    init = ml.initial_state(MODEL, 0)
    g = agent.store.put(ml.dumps(init))
    model = {"id": exp.model_id, "mode": "gossip", "status": "active",
             "initialWeights": {"cid": g.cid, "sha256": g.sha256_hex}}  # fmt: skip
    for i, uid in enumerate(("u1", "u2")):
        gen = torch.Generator().manual_seed(i)
        w = {k: v + torch.randn(v.shape, generator=gen) * 0.1 for k, v in init.items()}
        obj = agent.store.put(ml.dumps(w))
        agent.client.updates[uid] = {"id": uid, "modelId": exp.model_id, "provider": f"p{i}", "round": 0,
                                     "parents": [], "status": "accepted", "cid": obj.cid,
                                     "sha256": obj.sha256_hex}  # fmt: skip
    mix = agent.store.put(ml.dumps(gossip_base(agent.reader, model, ["u1", "u2"])))
    model["finalProposal"] = {"mix": ["u1", "u2"], "cid": mix.cid, "sha256": mix.sha256_hex,
                              "candidates": ["u2", "u1"], "judgments": []}  # fmt: skip
    agent.model = lambda: model  # what the ledger says of the model now
    return member, agent, model


def sent_qualities(agent) -> list[list[float]]:
    return [json.loads(args[1])["qualities"] for fn, args in agent.submitted if fn == "JudgeFinal"]


def test_a_member_measures_the_mix_then_each_candidate(judged):
    member, agent, model = judged
    member.judge_final(model)
    reader = agent.reader

    def accuracy(state) -> float:
        return round(ml.evaluate(MODEL, state, member.shard).accuracy, 6)

    mix = gossip_base(reader, model, ["u1", "u2"])
    own = {uid: reader.fetch_weights(agent.client.updates[uid]["cid"], agent.client.updates[uid]["sha256"],
                                     update=True) for uid in ("u1", "u2")}  # fmt: skip
    assert sent_qualities(agent) == [[accuracy(mix), accuracy(own["u2"]), accuracy(own["u1"])]]
    assert len(set(sent_qualities(agent)[0])) > 1  # three different models, measured apart
    # Judged once: a member that finds its judgment on the ledger sends nothing.
    model["finalProposal"]["judgments"].append({"member": agent.me, "qualities": [0.1, 0.2, 0.3]})
    member.judge_final(model)
    assert len(sent_qualities(agent)) == 1


def test_a_mix_object_that_is_not_the_mean_of_its_updates_measures_zero(judged):
    member, agent, model = judged
    other = agent.store.put(ml.dumps(ml.initial_state(MODEL, 7)))
    model["finalProposal"].update(cid=other.cid, sha256=other.sha256_hex)
    member.judge_final(model)
    [qualities] = sent_qualities(agent)
    assert qualities[0] == 0.0 and all(q > 0 for q in qualities[1:])
