"""Publisher agent: puts the model up, then drives rounds (close + record the aggregate).

Publishing: initial weights (seeded, canonical safetensors) go to IPFS; the validation set is split
into one stratified shard per committee member and each shard is sealed to *that member's* Fabric
certificate key (P-256). The certificate is taken from the connection profile and accepted only if
its identity key equals the committee identity on the ledger holding the ``committee`` role, so a
key can never come from anybody's say-so. Then ``PublishModel``.

Rounds (federated): the publisher closes a round once every configured provider's update is final
and ``min_accepted`` are accepted, or once the round's deadline has passed (``Policy.should_close``);
after ``RoundClosed`` it computes the aggregate of the accepted updates (the policy's strategy) and
records it. Committee members recompute and confirm it (and record their own if the publisher is
gone: see committee.py).
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
    spec = {
        "modelId": exp.model_id,
        "architecture": {"name": exp.model, "version": str(ml.get_spec(exp.model).version)},
        "specSha256": ml.spec_hash(exp.model),
        "initialWeights": {"cid": init_obj.cid, "sha256": init_obj.sha256_hex},
        "committee": seats,
        "profile": declared_profile(exp),
    }
    return spec | agent.policy.ledger_rules()


def publish(agent: Agent) -> None:
    if agent.model() is not None:
        agent.log("already_published", model=agent.model_id)
        return
    spec = build_spec(agent)
    agent.submit(
        "PublishModel", json.dumps(spec, separators=(",", ":")), done=lambda: agent.model() is not None
    )
    agent.log("published", model=agent.model_id, initial=spec["initialWeights"]["cid"])


def drive_round(agent: Agent, model: dict) -> None:
    r = int(model["currentRound"])
    if r < 1:
        return
    rd = agent.client.get_round(agent.model_id, r)
    if rd["status"] == "open":
        updates = round_updates(agent, r)
        close, why = agent.policy.should_close(rd, updates, expected_providers(agent.exp, rd), time.time())
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

        blob, _ = compute_aggregate(agent.reader, agent.policy, model, rd)
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
