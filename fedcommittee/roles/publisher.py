"""Publisher agent: puts the model up, then drives rounds (close + record the aggregate).

Publishing: initial weights (seeded, canonical safetensors) go to IPFS; the validation set is split
into one stratified shard per committee member and each shard is sealed to *that member's* Fabric
certificate key (P-256). The certificate is taken from the connection profile and accepted only if
its identity key equals the committee identity on the ledger holding the ``committee`` role, so a
key can never come from anybody's say-so. Then ``PublishModel``.

Rounds (federated): the publisher closes a round once every configured provider's update is final
and ``min_accepted`` are accepted, or once the round's deadline has passed; after ``RoundClosed`` it
computes the FedAvg aggregate of the accepted updates and records it. Committee members recompute
and confirm it (and record their own if the publisher is gone: see committee.py).
Gossip: it finishes the model once every provider has made its updates, naming the best one.
"""

from __future__ import annotations

import json
import time

from fedcommittee import ml
from fedcommittee.roles.common import (
    STEP_RETRYABLE,
    Agent,
    declared_profile,
    encode_dataset,
    expected_providers,
    paged,
    profile_certificate,
    round_updates,
    shard_context,
)
from fedcommittee.storage import envelope

SCORE_MIN, SCORE_MAX = -1000.0, 1000.0


def member_certificate(agent: Agent, user: str):
    """A committee member's certificate, checked against the ledger (identity key + committee role)."""
    key, cert = profile_certificate(agent.profile, user)
    account = agent.client.get_account(key)
    if "committee" not in (account.get("roles") or []):
        raise RuntimeError(f"{user} ({key[:24]}...) does not hold the committee role on the ledger")
    return key, cert


def build_spec(agent: Agent) -> dict:
    from fedcommittee.experiment import data_split

    exp = agent.exp
    init = ml.initial_state(exp.model, exp.seed)
    init_obj = agent.put(ml.dumps(init))
    split = data_split(exp)
    shards = ml.split_shards(split.val, len(exp.committee), exp.seed + 3)
    seats = []
    for member, shard in zip(exp.committee, shards, strict=True):
        key, cert = member_certificate(agent, member.user)
        blob = envelope.seal(encode_dataset(shard), [cert.public_key()], shard_context(exp.model_id))
        obj = agent.put(blob)
        seats.append({"member": key, "shardCid": obj.cid, "shardSha256": obj.sha256_hex})
        agent.log("shard_sealed", member=member.name, samples=len(shard), cid=obj.cid, bytes=obj.size)
    rule = exp.scoring_rule()
    acceptance = {"rule": exp.acceptance, "scoreMin": SCORE_MIN, "scoreMax": SCORE_MAX}
    if exp.acceptance == "threshold":
        acceptance["threshold"] = float(rule.threshold)
    federated = exp.mode == "federated"
    spec = {
        "modelId": exp.model_id,
        "architecture": {"name": exp.model, "version": str(ml.get_spec(exp.model).version)},
        "specSha256": ml.spec_hash(exp.model),
        "initialWeights": {"cid": init_obj.cid, "sha256": init_obj.sha256_hex},
        "metric": {"name": f"{rule.name}-{rule.metric}", "higherIsBetter": True},
        "acceptance": acceptance,
        "quorum": exp.effective_quorum,
        "committee": seats,
        "mode": exp.mode,
        "roundRules": {
            "minAccepted": exp.min_accepted if federated else 0,
            "deadlineSeconds": exp.deadline_seconds if federated else 0,
            "maxRounds": exp.rounds if federated else 0,
            "maxParents": 0 if federated else exp.gossip.max_parents,
        },
        "rewardRules": {
            "acceptReward": exp.rewards.accept_reward,
            "rejectPenalty": exp.rewards.reject_penalty,
            "verdictReward": exp.rewards.verdict_reward,
        },
        "profile": declared_profile(exp),
    }
    spec.update(protocol_rules(exp))
    return spec


def protocol_rules(exp) -> dict:
    """The optional rule objects of PublishModel the config asks for (chaincode/README.md)."""
    rules: dict = {}
    if exp.allocation.rule != "all":
        rules["allocation"] = {"rule": exp.allocation.rule, "k": exp.allocation.k}
    if exp.stopping is not None:
        st = exp.stopping
        rules["stopping"] = {"patience": st.patience, "minDelta": st.min_delta}
        if st.target is not None:
            rules["stopping"]["target"] = st.target
    if exp.governance is not None:
        rules["governance"] = {"policy": exp.governance.policy, "orgs": list(exp.governance_orgs())}
    return rules


def publish(agent: Agent) -> None:
    if agent.model() is not None:
        agent.log("already_published", model=agent.model_id)
        return
    spec = build_spec(agent)
    agent.submit(
        "PublishModel", json.dumps(spec, separators=(",", ":")), done=lambda: agent.model() is not None
    )
    agent.log("published", model=agent.model_id, initial=spec["initialWeights"]["cid"])


def should_close(
    rd: dict, updates: list[dict], providers: int, min_accepted: int, settle: float, now: float
) -> tuple[bool, str]:
    """The publisher's rule for closing an open round (the contract only checks min_accepted/deadline).

    Close when every configured provider's update is final and at least ``min_accepted`` were
    accepted; or, for partial participation, when ``min_accepted`` are accepted, nothing is pending and
    no update came for ``settle`` seconds; or when the deadline has passed.
    """
    final = [u for u in updates if u["status"] != "pending"]
    accepted = sum(1 for u in final if u["status"] == "accepted")
    if now > int(rd.get("deadline") or 0) + 1:
        return True, "deadline"
    if accepted < min_accepted or len(final) < len(updates):
        return False, "waiting"
    if len(final) >= providers:
        return True, "everyone"
    last = max([int(u.get("submittedAt") or 0) for u in updates] + [int(rd.get("openedAt") or 0)])
    if now - last > settle:
        return True, "quiet"
    return False, "waiting"


def drive_round(agent: Agent, model: dict) -> None:
    r = int(model["currentRound"])
    if r < 1:
        return
    rd = agent.client.get_round(agent.model_id, r)
    if rd["status"] == "open":
        updates = round_updates(agent, r)
        close, why = should_close(
            rd,
            updates,
            expected_providers(agent.exp, rd),
            agent.exp.min_accepted,
            agent.exp.settle_seconds,
            time.time(),
        )
        if close:
            agent.log("close_round", round=r, why=why, updates=len(updates))
            agent.submit(
                "CloseRound",
                agent.model_id,
                str(r),
                done=lambda: agent.client.get_round(agent.model_id, r)["status"] != "open",
            )
    elif rd["status"] == "closed":

        def recorded() -> bool:
            cands = agent.client.get_aggregates(agent.model_id, r) or []
            return any(c.get("recordedBy") == agent.me for c in cands)

        if recorded():
            return
        from fedcommittee.roles.common import compute_aggregate

        blob, _ = compute_aggregate(agent.reader, model, rd)
        obj = agent.put(blob)
        agent.log("aggregate", round=r, accepted=len(rd.get("accepted") or []), sha256=obj.sha256_hex)
        agent.submit(
            "RecordAggregate",
            agent.model_id,
            str(r),
            json.dumps({"cid": obj.cid, "sha256": obj.sha256_hex}),
            done=recorded,
        )


def drive_gossip(agent: Agent, model: dict) -> None:
    """Finish once every provider has made its updates (or nothing new came for settle_seconds) and
    none is pending: the best accepted update (committee median, then newest) becomes the final model."""
    updates = list(paged(lambda b: agent.client.list_round_updates(agent.model_id, 0, 200, b)))
    want = len(agent.exp.providers) * agent.exp.gossip.updates_per_provider
    pending = [u for u in updates if u["status"] == "pending"]
    last = max([int(u.get("submittedAt") or 0) for u in updates] + [int(model.get("updatedAt") or 0)])
    quiet = time.time() - last > 3 * agent.exp.settle_seconds
    if pending or not (len(updates) >= want or (updates and quiet)):
        return
    accepted = [u for u in updates if u["status"] == "accepted"]
    if not accepted:
        return
    best = max(accepted, key=lambda u: (u.get("medianScore") or 0.0, u.get("submittedAt") or 0, u["id"]))
    agent.log("finish", best=best["id"], score=best.get("medianScore"), updates=len(updates))
    agent.submit(
        "FinishModel",
        agent.model_id,
        best["id"],
        done=lambda: (agent.model() or {}).get("status") == "finished",
    )


def run_publisher(agent: Agent) -> int:
    publish(agent)
    agent.start_events()
    while True:
        model = agent.model()
        status = model["status"]
        if status in ("finished", "rejected"):
            agent.log("model_" + status, round=model.get("currentRound"))
            return 0 if status == "finished" else 1
        if status == "active":
            try:
                if model["mode"] == "federated":
                    drive_round(agent, model)
                else:
                    drive_gossip(agent, model)
            except STEP_RETRYABLE as exc:  # the round closed meanwhile, or a node is restarting
                agent.step_failed(exc)
        agent.wait()
