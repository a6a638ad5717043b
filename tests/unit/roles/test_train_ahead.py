"""A provider trains round r's update while round r - 1's aggregate is being confirmed, and submits
exactly what it would have trained once the round opened (or trains again on another global)."""

from __future__ import annotations

import json

from fedcommittee import ml
from tests.privacy import memory_store, open_round, privacy_experiment, provider_agent


def _provider(exp, store):
    from fedcommittee.roles.provider import Provider

    agent = provider_agent(exp, "honest1", store)
    logged: list[tuple[str, dict]] = []
    agent.log = lambda event, level="info", **f: logged.append((event, f))
    return agent, Provider(agent, "honest1"), logged


def _closed_round_with_candidate(agent, store, seed: int, max_rounds: int = 3) -> tuple[dict, object]:
    """Round 1 closed, its aggregate (the initial weights of ``seed``) recorded as a candidate."""
    cand = store.put(ml.dumps(ml.initial_state(agent.exp.model, seed)))
    recorded = [{"cid": cand.cid, "sha256": cand.sha256_hex}]
    agent.client.get_aggregates = lambda mid, r: recorded if r == 1 else []
    agent.client.rounds[1] = {"status": "closed", "global": {"cid": "-", "sha256": "-"}}
    model = {"id": agent.model_id, "mode": "federated", "status": "active", "currentRound": 1,
             "roundRules": {"maxRounds": max_rounds}}  # fmt: skip
    return model, cand


def _submitted_sha(agent) -> list[str]:
    return [json.loads(args[1])["sha256"] for fn, args in agent.submitted if fn == "SubmitUpdate"]


def test_update_trained_ahead_is_submitted_when_its_candidate_opens_the_round():
    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    model, cand = _closed_round_with_candidate(agent, store, seed=5)
    provider.federated_step(model)
    provider.federated_step(model)  # level-triggered: trained once
    trained = [f for e, f in logged if e == "trained"]
    assert [(f["round"], f["ahead"]) for f in trained] == [(2, True)] and _submitted_sha(agent) == []

    provider.federated_step(open_round(agent, 2, cand))
    assert [e for e, _ in logged].count("trained") == 1  # nothing trained again
    assert _submitted_sha(agent) == [trained[0]["sha256"]]

    # The same bytes a provider that did not train ahead trains once round 2 is open on that global.
    store2 = memory_store()
    agent2, fresh, logged2 = _provider(exp, store2)
    fresh.federated_step(open_round(agent2, 2, store2.put(ml.dumps(ml.initial_state(exp.model, 5)))))
    assert _submitted_sha(agent2) == _submitted_sha(agent)
    assert [f["ahead"] for e, f in logged2 if e == "trained"] == [False]


def test_update_trained_on_a_candidate_that_was_not_confirmed_is_dropped():
    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    model, _ = _closed_round_with_candidate(agent, store, seed=5)
    provider.federated_step(model)
    other = store.put(ml.dumps(ml.initial_state(exp.model, 6)))
    provider.federated_step(open_round(agent, 2, other))
    events = [e for e, _ in logged if e in ("trained", "ahead_dropped")]
    assert events == ["trained", "ahead_dropped", "trained"]
    assert _submitted_sha(agent) == [[f for e, f in logged if e == "trained"][1]["sha256"]]


def test_nothing_is_trained_ahead_after_the_last_round_or_under_partial_participation():
    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    model, _ = _closed_round_with_candidate(agent, store, seed=5, max_rounds=1)
    provider.federated_step(model)
    model["roundRules"]["maxRounds"] = 3
    agent.client.rounds[1]["allocated"] = [agent.me]
    provider.federated_step(model)
    assert [e for e, _ in logged if e == "trained"] == []


def test_before_a_candidate_is_recorded_the_provider_reads_no_update_and_trains_nothing_ahead():
    # Computing the aggregate itself would read every accepted update, in every provider: n x n
    # reads a round. The provider waits for the publisher's recorded candidate, one read.
    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    model, cand = _closed_round_with_candidate(agent, store, seed=5)
    recorded = agent.client.get_aggregates
    agent.client.get_aggregates = lambda mid, r: []
    start = store.put(ml.dumps(ml.initial_state(exp.model, 5)))
    stored = store.put(ml.dumps(ml.initial_state(exp.model, 6)))  # any weights-shaped delta serves
    agent.client.updates["u1"] = {"id": "u1", "modelId": agent.model_id, "provider": "other", "round": 1,
                                  "status": "accepted", "cid": stored.cid, "sha256": stored.sha256_hex,
                                  "numSamples": 10}  # fmt: skip
    agent.client.rounds[1].update(number=1, accepted=["u1"])
    agent.client.rounds[1]["global"] = {"cid": start.cid, "sha256": start.sha256_hex}
    provider.federated_step(model)
    reads = [f for e, f in logged if e == "ipfs" and f["op"] == "get"]  # every hash-checked get is logged
    assert reads == [] and [e for e, _ in logged if e == "trained"] == []

    agent.client.get_aggregates = recorded  # the publisher's candidate is in: trained ahead on it
    provider.federated_step(model)
    assert [(f["round"], f["ahead"]) for e, f in logged if e == "trained"] == [(2, True)]
    assert len([f for e, f in logged if e == "ipfs" and f["op"] == "get"]) == 1  # the candidate alone
    provider.federated_step(open_round(agent, 2, cand))
    assert len(_submitted_sha(agent)) == 1
