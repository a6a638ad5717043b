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


def test_before_a_candidate_is_recorded_the_provider_trains_on_the_aggregate_it_computes():
    from fedcommittee.roles.reader import compute_aggregate

    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    start = store.put(ml.dumps(ml.initial_state(exp.model, 5)))
    delta = ml.initial_state(exp.model, 6)  # any weights-shaped object serves as an accepted delta
    stored = store.put(ml.dumps(delta))
    agent.client.updates["u1"] = {"id": "u1", "modelId": agent.model_id, "provider": "other", "round": 1,
                                  "status": "accepted", "cid": stored.cid, "sha256": stored.sha256_hex,
                                  "numSamples": 10}  # fmt: skip
    agent.client.get_aggregates = lambda mid, r: []
    rd = {"number": 1, "status": "closed", "accepted": ["u1"],
          "global": {"cid": start.cid, "sha256": start.sha256_hex}}  # fmt: skip
    agent.client.rounds[1] = rd
    model = {"id": agent.model_id, "mode": "federated", "status": "active", "currentRound": 1,
             "roundRules": {"maxRounds": 3}}  # fmt: skip
    provider.federated_step(model)
    assert [(f["round"], f["ahead"]) for e, f in logged if e == "trained"] == [(2, True)]

    # The publisher records the same aggregate (the same bytes): round 2 opens on it, nothing retrains.
    blob, _ = compute_aggregate(agent.reader, agent.policy, model, rd)
    provider.federated_step(open_round(agent, 2, store.put(blob)))
    assert [e for e, _ in logged if e in ("trained", "ahead_dropped")] == ["trained"]
    assert len(_submitted_sha(agent)) == 1


def test_past_many_updates_the_provider_waits_for_the_recorded_candidate(monkeypatch):
    # Computing the aggregate reads every accepted update: with many, that is n x n reads a round.
    from fedcommittee.roles import provider as provider_module

    exp, store = privacy_experiment(), memory_store()
    agent, provider, logged = _provider(exp, store)
    model, cand = _closed_round_with_candidate(agent, store, seed=5)
    recorded = agent.client.get_aggregates
    agent.client.get_aggregates = lambda mid, r: []
    agent.client.rounds[1]["accepted"] = [f"u{i}" for i in range(provider_module.AHEAD_COMPUTE_MAX + 1)]
    fetched: list = []
    monkeypatch.setattr(provider_module, "compute_aggregate", lambda *a: fetched.append(a))
    provider.federated_step(model)
    assert fetched == [] and [e for e, _ in logged if e == "trained"] == []

    agent.client.get_aggregates = recorded  # the publisher's candidate is in: trained ahead on it
    provider.federated_step(model)
    assert [(f["round"], f["ahead"]) for e, f in logged if e == "trained"] == [(2, True)]
    provider.federated_step(open_round(agent, 2, cand))
    assert len(_submitted_sha(agent)) == 1
