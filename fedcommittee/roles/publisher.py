"""Publisher agent: puts the model up, then drives rounds (close + record the aggregate).

Publishing: initial weights (seeded, canonical safetensors) go to IPFS; the validation set is split
into one stratified shard per committee member and each shard is sealed to *that member's* Fabric
certificate key (P-256). The certificate is taken from the connection profile and accepted only if
its identity key equals the committee identity on the ledger holding the ``committee`` role, so a
key can never come from anybody's say-so. Then ``PublishModel``.

Rounds (federated): the publisher closes a round once every expected provider's update is final
(however many were accepted), once ``min_accepted`` are accepted and the round is quiet, or once its
deadline has passed (``Policy.should_close``), and records the aggregate of the accepted updates (the
policy's strategy). With every update final the accepted set can no longer change, so the aggregate is
computed first and the close records it (``CloseRoundWithAggregate``: one commit fewer on every
round's critical path); otherwise the round is closed, then its aggregate computed and recorded.
Committee members recompute and confirm it (and record their own if the publisher is gone: see
committee.py).
Gossip: once every provider has made its updates, it proposes the final model (``ProposeFinal``):
the mean of the providers' best models beside every accepted one; the committee picks (committee.py).
"""

from __future__ import annotations

import time
from typing import Any

from fedcommittee import ml
from fedcommittee.ledger import ContractError, Mode, ModelStatus, Role, RoundStatus, UpdateStatus
from fedcommittee.ledger.records import Model, Round
from fedcommittee.roles.data import declared_profile, encode_dataset
from fedcommittee.roles.envelopes import profile_certificate, shard_context
from fedcommittee.roles.protocol import expected_providers, final_candidates, final_mix
from fedcommittee.roles.reader import compute_aggregate, gossip_base
from fedcommittee.roles.runtime import Agent
from fedcommittee.storage import envelope
from fedcommittee.storage.errors import StorageError


def member_certificate(agent: Agent, user: str):
    """A committee member's certificate, checked against the ledger (identity key + committee role)."""
    key, cert = profile_certificate(agent.profile, user)
    account = agent.client.get_account(key)
    if Role.COMMITTEE not in (account.get("roles") or []):
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
    agent.submit(agent.client.publish_model, spec, done=lambda: agent.model() is not None)
    agent.log("published", model=agent.model_id, initial=spec["initialWeights"]["cid"])


class Publisher:
    """The publisher's protocol logic (``driver.run_role`` runs its step): publish the model, then
    drive the federated rounds, or finish a gossip model."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.published = False  # checked once: the model is on the ledger (now or before we started)
        self.recheck_in: float | None = None  # when an open round's close rule may turn true unprompted
        self.prefetched: tuple[int, set[str]] = (0, set())  # the open round's updates read ahead

    def step(self, model: Model | None) -> int | None:
        self.recheck_in = None
        if not self.published:
            publish(self.agent)
            self.published = True
        if model is not None and model["status"] == ModelStatus.ACTIVE:
            if model["mode"] == Mode.FEDERATED:
                self.drive_round(model)
            else:
                self.drive_gossip(model)
        return None

    def final_fields(self, model: Model) -> dict[str, Any]:
        return {"round": model.get("currentRound")}

    def wakes_on(self, event: dict) -> bool:
        return True  # updates (read ahead), verdicts (closing), the round's and the model's moves

    def wait_seconds(self) -> float | None:
        # The quiet window or the deadline of the open round runs out with no event to wake us:
        # look again then, not a whole poll later (the poll stays the fallback for lost events).
        if self.recheck_in is None:
            return None
        return min(self.recheck_in, self.agent.poll_seconds)

    def drive_round(self, model: Model) -> None:
        a = self.agent
        r = int(model["currentRound"])
        if r < 1:
            return
        rd: Round | None = a.round(r)
        if rd["status"] == RoundStatus.OPEN:
            rd = self.close_when_due(model, rd)
        if rd is not None and rd["status"] == RoundStatus.CLOSED:
            self.record_aggregate(model, rd)

    def close_when_due(self, model: Model, rd: Round) -> Round | None:
        """Close round ``rd`` if the policy says it is due; the round as it stands afterwards (closed
        by us: the aggregate is recorded in the same step, not on the RoundClosed event's), or None
        when our transaction closed it with our aggregate recorded (nothing is left to do or read)."""
        a = self.agent
        r = int(rd["number"])
        updates = list(a.client.iter_round_updates(a.model_id, r))
        now = time.time()
        close, why = a.policy.should_close(rd, updates, expected_providers(a.exp, rd), now)
        if not close:
            self.recheck_in = a.policy.next_close_check(rd, updates, now)
            self.prefetch_updates(r, updates)
            return rd
        a.log("close_round", round=r, why=why, updates=len(updates))
        if self.close_with_aggregate(model, rd, updates):
            return None
        a.submit(a.client.close_round, a.model_id, r, done=lambda: not self.is_open(r))
        return a.client.get_round(a.model_id, r)

    def is_open(self, r: int) -> bool:
        return self.agent.client.get_round(self.agent.model_id, r)["status"] == RoundStatus.OPEN

    def close_with_aggregate(self, model: Model, rd: Round, updates: list) -> bool:
        """Close round ``rd`` and record our aggregate of it in one transaction, when every update is
        final and one at least accepted (the set cannot change before the close then). True when
        our transaction did it; False when the round must close the other way (an update still
        pending, nothing accepted, the contract found another accepted set, or the round was no
        longer open when we came to send): the aggregate is then recorded after the close."""
        a = self.agent
        if any(u["status"] == UpdateStatus.PENDING for u in updates):
            return False
        accepted = sorted(u["id"] for u in updates if u["status"] == UpdateStatus.ACCEPTED)
        if not accepted:
            return False
        r = int(rd["number"])
        blob, _ = compute_aggregate(a.reader, a.policy, model, {**rd, "accepted": accepted})
        obj = a.put(blob)
        a.log("aggregate", round=r, accepted=len(accepted), sha256=obj.sha256_hex, with_close=True)
        try:
            result = a.submit(
                a.client.close_round_with_aggregate,
                a.model_id,
                r,
                cid=obj.cid,
                sha256=obj.sha256_hex,
                accepted=accepted,
                done=lambda: not self.is_open(r),
            )
        except ContractError as exc:
            reason = exc.chaincode_message[:300]
            a.log("close_with_aggregate_refused", level="warning", round=r, reason=reason)
            return False
        return result is not None

    def prefetch_updates(self, r: int, updates: list) -> None:
        """Read round ``r``'s updates into memory as they arrive, while it is still open, so that the
        aggregate after the close waits for no IPFS get. Pending ones too: the verdict that accepts
        the last of them often comes in the step that closes the round, with no step between to
        read it in (a rejected one is read for nothing). Only an optimization: a node that cannot
        serve one now is asked again when the aggregate is computed."""
        a = self.agent
        if a.recent is None:
            return
        if self.prefetched[0] != r:
            self.prefetched = (r, set())
        done = self.prefetched[1]
        for u in updates:
            if u["status"] == UpdateStatus.REJECTED or u["id"] in done:
                continue
            try:
                a.reader.fetch(u["cid"], u["sha256"])
            except StorageError:
                return
            done.add(u["id"])

    def record_aggregate(self, model: Model, rd: Round) -> None:
        a = self.agent
        r = int(rd["number"])

        def recorded(cands: list) -> bool:
            return any(c.get("recordedBy") == a.me for c in cands)

        if recorded(a.aggregates(r)):
            return
        blob, _ = compute_aggregate(a.reader, a.policy, model, rd)
        obj = a.put(blob)
        a.log("aggregate", round=r, accepted=len(rd.get("accepted") or []), sha256=obj.sha256_hex)
        a.submit(a.client.record_aggregate, a.model_id, r, cid=obj.cid, sha256=obj.sha256_hex, checked=True,
                 done=lambda: recorded(a.client.get_aggregates(a.model_id, r)))  # fmt: skip

    def drive_gossip(self, model: Model) -> None:
        """Once every provider has made its updates (or nothing new came for settle_seconds) and none
        is pending, put the model's final before the committee (``ProposeFinal``): the mean of every
        provider's best fresh accepted model (``protocol.final_mix``) beside every accepted model
        (``protocol.final_candidates``). The members measure each on their shards; the contract
        finishes the model on the best by median quality."""
        a = self.agent
        if model.get("finalProposal"):
            return  # before the committee
        updates = list(a.client.iter_round_updates(a.model_id, 0))
        want = len(a.exp.providers) * a.exp.gossip.updates_per_provider
        pending = [u for u in updates if u["status"] == UpdateStatus.PENDING]
        last = max([int(u.get("submittedAt") or 0) for u in updates] + [int(model.get("updatedAt") or 0)])
        quiet = time.time() - last > 3 * a.exp.settle_seconds
        if pending or not (len(updates) >= want or (updates and quiet)):
            return
        accepted = [u for u in updates if u["status"] == UpdateStatus.ACCEPTED]
        if not accepted:
            return
        mix, candidates = final_mix(accepted), final_candidates(accepted)
        obj = a.put(ml.dumps(gossip_base(a.reader, model, mix)))
        quality = {u["id"]: u.get("medianQuality") for u in accepted}
        a.log("propose_final", mix=mix, qualities=[quality[i] for i in mix], candidates=len(candidates),
              sha256=obj.sha256_hex, updates=len(updates))  # fmt: skip
        try:
            a.submit(a.client.propose_final, a.model_id, mix, candidates, cid=obj.cid, sha256=obj.sha256_hex,
                     done=lambda: bool((a.model() or {}).get("finalProposal")))  # fmt: skip
        except ContractError as exc:  # an update came in meanwhile: propose again once it is judged
            a.log("propose_final_refused", level="warning", reason=exc.chaincode_message[:300])
