"""Provider agent: trains on its private partition and submits updates.

Federated: when round r is open and the ledger holds no update of ours for r, fetch the round's global
weights (hash-checked), train with the configured behaviour (and DP if enabled), upload the delta
(canonical safetensors) and ``SubmitUpdate``. Training is seeded by (experiment seed, provider,
round), so a provider restarted between upload and submit produces the same bytes again (sealed: the
same plaintext, in a fresh envelope). That also lets round r's update be trained *ahead*, once round
r - 1 is closed, on the aggregate it will confirm (recorded by the publisher, or computed as every
party does) while that aggregate is recorded and confirmed; it is used if that aggregate becomes
round r's global.

Gossip: up to ``gossip.updates_per_provider`` updates; each starts from the mean of the best accepted
updates among the newest ``gossip.recency`` fresh ones (``protocol.parent_candidates``, ranked by the
committee's measured quality), names them as parents, trains and submits the *full weights* (a gossip
update is a model, not a delta).

With ``encrypt_updates`` the encoded update is sealed (storage ``envelope``) to the model's update
recipients (``envelopes.update_recipients``: the committee seats and the publisher on the ledger, and
in gossip mode the registered providers) under ``envelopes.update_context``; IPFS and the ledger's
cid/sha256 hold the sealed bytes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from fedcommittee import ml
from fedcommittee.ledger import (
    ContractError,
    EventType,
    Mode,
    ModelStatus,
    RoundStatus,
    UpdateStatus,
    submit_json,
)
from fedcommittee.ledger.records import Model, Round, Update, UpdateDoc
from fedcommittee.roles.data import data_registration
from fedcommittee.roles.envelopes import update_context, update_recipients
from fedcommittee.roles.protocol import (
    RESTART_CHECK_MARGIN_SECONDS,
    choose_parents,
    parent_candidates,
    round_follows,
)
from fedcommittee.roles.reader import gossip_base
from fedcommittee.roles.runtime import STEP_RETRYABLE, Agent
from fedcommittee.storage import envelope

# Events of a federated model that change nothing a provider acts on: the others' updates and the
# committee's verdicts (the committee's business until the round closes), confirmations short of the
# quorum (the quorum's own opens the next round or finishes the model) and data registrations. Woken
# by each, ten providers made most of a round's ledger reads: every block of the round woke every
# provider for a full pass. A gossip provider needs the verdicts (parents, its own pending update).
FEDERATED_IDLE_EVENTS = frozenset(
    {EventType.UPDATE_SUBMITTED, EventType.VERDICT_SUBMITTED, EventType.VERDICTS_SUBMITTED,
     EventType.UPDATE_FINALIZED, EventType.AGGREGATE_CONFIRMED, EventType.DATA_REGISTERED}
)  # fmt: skip


@dataclass(frozen=True)
class Trained:
    """An update trained and put on IPFS: for ``round``, from the global whose sha256 is ``base_sha``."""

    round: int
    base_sha: str
    obj: Any  # the stored object the ledger records
    num_samples: int
    metrics: dict[str, float]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


class Provider:
    def __init__(self, agent: Agent, name: str) -> None:
        from fedcommittee.experiment import data_split

        self.agent = agent
        self.cfg = agent.exp.provider(name)
        self.index = agent.exp.provider_index(name)
        split = data_split(agent.exp)
        self.data = split.train.subset(split.partition[self.index])
        self.behaviour = ml.get_behaviour(self.cfg.behaviour, **self.cfg.params)
        dp = self.cfg.dp or agent.exp.dp
        self.dp = (
            ml.DPProvider(dp.clip, dp.noise_multiplier, target_delta=dp.target_delta) if dp.enabled else None
        )
        self.scheme = agent.exp.provider_compression(name)
        self.refused: set[int] = set()
        self.waiting_since: dict[str, float] = {}  # gossip: since when we wait for more parents, peers
        self.registered = False
        self.not_allocated: set[int] = set()
        self.started = time.time()
        self.sent: set[int] = set()  # rounds our update is known to be on the ledger for
        self.tried: set[int] = set()  # rounds we began to send an update for (its outcome maybe unknown)
        self.prefetched: dict[str, Any] = {}  # sha256 -> weights of a closed round's candidate aggregate
        self.ahead: Trained | None = None  # the next round's update, trained on a candidate aggregate
        agent.log("data", samples=len(self.data), behaviour=self.cfg.behaviour, dp=bool(self.dp),
                  compression=self.scheme)  # fmt: skip

    # ------------------------------------------------------------------ data metadata
    def register(self) -> None:
        """RegisterData once per model (metadata only: counts, kind, the histogram only with consent).
        Done while the model is proposed, so that the committee and the allocation see it."""
        a = self.agent
        if self.registered:
            return
        doc = data_registration(a.exp, self.data.y.numpy(), self.data.n_classes)

        def done() -> bool:
            try:
                reg = a.client.get_data_registration(a.model_id, a.me)
            except ContractError:
                return False
            return int(reg.get("numSamples") or 0) == doc["numSamples"]

        a.submit(a.client.register_data, a.model_id, doc, done=done)
        a.log("data_registered", samples=doc["numSamples"], histogram=doc["shareHistogram"])
        self.registered = True

    # ------------------------------------------------------------------ ledger view
    def my_updates(self) -> list[Update]:
        a = self.agent
        return list(a.client.iter_provider_updates(a.model_id, a.me))

    def has_update(self, round_no: int) -> bool:
        return any(int(u.get("round") or 0) == round_no for u in self.my_updates())

    def may_have_update(self, r: int, rd: Round) -> bool:
        """Whether round ``r`` (its record ``rd``) may hold an update of ours that we do not know of:
        only if we began to send one, or if it opened before we started (an earlier run of ours may
        have sent one). Asking the ledger every round cost each provider a listing of all its
        updates a round."""
        return r in self.tried or float(rd.get("openedAt") or 0) < self.started + RESTART_CHECK_MARGIN_SECONDS

    def train(self, global_state, seed: int, round_no: int = 1):
        exp = self.agent.exp
        cfg = exp.train_config(seed, round_no)
        upd = ml.run_behaviour(self.behaviour, exp.model, global_state, self.data, cfg)
        metrics = {k: float(v) for k, v in upd.metrics.items()}
        if self.dp is not None:
            # Releases so far are known from the ledger, so the budget survives restarts.
            self.dp.releases = len(self.my_updates())
            upd.delta = self.dp.privatize(upd.delta, seed)
            metrics["epsilon"] = float(self.dp.epsilon())
        return upd, metrics

    def upload(self, model: Model, plain: bytes) -> tuple[object, dict]:
        """Put the encoded update on IPFS, sealed to the model's update recipients when the config says
        so; returns the stored object (what the ledger records) and fields for the ``trained`` log."""
        a = self.agent
        if not a.exp.encrypt_updates:
            return a.put(plain), {"encrypted": False}
        started = time.perf_counter()
        recipients = update_recipients(a, model)
        keys = [cert.public_key() for _, cert in recipients]
        sealed = envelope.seal(plain, keys, update_context(a.model_id))
        seconds = time.perf_counter() - started
        obj = a.put(sealed)
        return obj, {"encrypted": True, "plain_bytes": len(plain), "recipients": len(keys),
                     "seal_seconds": round(seconds, 4)}  # fmt: skip

    def submit(self, doc: UpdateDoc, round_no: int, done) -> None:
        """``SubmitUpdate``; the caller has just found no update of ours for the round on the ledger."""
        try:
            result = self.agent.submit(
                self.agent.client.submit_update, self.agent.model_id, doc, done=done, checked=True
            )
        except ContractError as exc:
            # e.g. the round closed or its deadline passed while we trained: refused for good.
            self.agent.log("update_refused", level="warning", round=round_no, reason=exc.chaincode_message)
            self.refused.add(round_no)
            return
        # The same bytes as an earlier update (a replaying free rider) are recorded, rejected on the
        # spot: the round counts us as done, so nobody waits for an update that will not come.
        refusal = submit_json(result).get("refusal") if result is not None and result.result else None
        if refusal:
            self.agent.log("update_refused", level="warning", round=round_no, reason=refusal)

    # ------------------------------------------------------------------ federated
    def federated_step(self, model: Model) -> None:
        a = self.agent
        r = int(model["currentRound"])
        if r < 1 or r in self.refused:
            return
        rd = a.round(r)
        if rd["status"] == RoundStatus.CLOSED:
            self.prefetch(r)
            self.train_ahead(model, r, rd)
        if rd["status"] != RoundStatus.OPEN or r in self.not_allocated or r in self.sent:
            return
        if self.may_have_update(r, rd) and self.has_update(r):
            self.sent.add(r)
            return
        if rd.get("allocated") is not None and a.me not in rd["allocated"]:
            # The contract's allocation rule picked others for this round (partial participation).
            a.log("not_allocated", round=r, allocated=len(rd["allocated"]))
            self.not_allocated.add(r)
            return
        g = rd["global"]
        done = self.take_ahead(r, g["sha256"])
        if done is None:
            done = self.train_round(model, r, g["sha256"], self.global_model(g))
        doc: UpdateDoc = {
            "round": r,
            "baseCid": g["cid"],
            "baseSha256": g["sha256"],
            "cid": done.obj.cid,
            "sha256": done.obj.sha256_hex,
            "numSamples": done.num_samples,
            "metrics": done.metrics,
        }
        self.tried.add(r)
        self.submit(doc, r, done=lambda: self.has_update(r))
        self.sent.add(r)  # or refused for good (self.refused): either way nothing more to send

    def train_round(self, model: Model, r: int, base_sha: str, global_state, ahead: bool = False) -> Trained:
        """Train round ``r``'s update from ``global_state`` (sha256 ``base_sha``) and put it on IPFS."""
        a = self.agent
        upd, metrics = self.train(global_state, _seed(a.exp.seed, self.cfg.name, r), r)
        # The committee scores exactly these bytes, decoded: compression's loss counts against us.
        from fedcommittee.ml.compress import compress

        obj, sealing = self.upload(model, compress(upd.delta, self.scheme))
        a.log("trained", round=r, samples=upd.num_samples, sha256=obj.sha256_hex, bytes=obj.size,
              scheme=self.scheme, ahead=ahead, **sealing, **metrics)  # fmt: skip
        return Trained(r, base_sha, obj, int(upd.num_samples), metrics)

    def train_ahead(self, model: Model, r: int, rd: Round) -> None:
        """Round ``r`` is closed: train round r + 1's update now, on the candidate aggregate recorded
        for it, while the committee confirms it and the next round opens. Training is
        seeded by the round, so the bytes are those we would train once round r + 1 opens on that
        global; on another global they are dropped. Not under partial participation (we may not be
        drawn) nor after the last round."""
        if not round_follows(model, r) or rd.get("allocated") is not None:
            return
        if self.ahead is not None and self.ahead.round == r + 1:
            return
        base = self.likely_next_global()
        if base is not None:
            self.ahead = self.train_round(model, r + 1, *base, ahead=True)

    def likely_next_global(self) -> tuple[str, Any] | None:
        """(sha256, weights) of the newest candidate aggregate recorded for the closed round (fetched
        by ``prefetch``), or None before the publisher records one. Not computed here: that reads
        every accepted update from IPFS in every provider (n x n reads a round), which on 2 cores
        cost the round more than starting before the record saved (docs/agents.md)."""
        return next(reversed(self.prefetched.items())) if self.prefetched else None

    def take_ahead(self, r: int, global_sha: str) -> Trained | None:
        """The update trained ahead for round ``r``, if it was trained on ``global_sha``."""
        ahead, self.ahead = self.ahead, None
        if ahead is None or ahead.round != r:
            return None
        if ahead.base_sha != global_sha:
            self.agent.log("ahead_dropped", round=r, trained_on=ahead.base_sha, confirmed=global_sha)
            return None
        self.prefetched.clear()
        return ahead

    def prefetch(self, r: int) -> None:
        """Round ``r`` is closed: fetch the candidate aggregates recorded so far (hash-checked), so
        that the next round's training starts the moment the committee confirms one of them."""
        a = self.agent
        for c in a.aggregates(r):
            if c["sha256"] not in self.prefetched:
                self.prefetched[c["sha256"]] = a.reader.fetch_weights(c["cid"], c["sha256"])

    def global_model(self, g: dict):
        """The round's global weights: prefetched when they were a candidate aggregate, else fetched."""
        state = self.prefetched.get(g["sha256"])
        self.prefetched.clear()  # the candidates of earlier rounds are of no further use
        if state is None:
            state = self.agent.reader.fetch_weights(g["cid"], g["sha256"])
        return state

    # ------------------------------------------------------------------ gossip
    def enough(self, what: str, have: int, want: int) -> bool:
        """Whether ``have`` of ``what`` is enough: ``want``, or fewer once we have waited
        ``settle_seconds`` for more (a provider may be gone)."""
        a = self.agent
        if have >= want:
            self.waiting_since.pop(what, None)
            return True
        if what not in self.waiting_since:
            self.waiting_since[what] = time.time()
            a.log(f"waiting_for_{what}", have=have, want=want)
        if time.time() - self.waiting_since[what] < a.exp.settle_seconds:
            return False
        a.log(f"{what}_wait_over", level="warning", have=have, want=want)
        del self.waiting_since[what]
        return True

    def peers_registered(self) -> bool:
        """Sealed gossip updates: whether the other providers have registered (or we waited
        ``settle_seconds`` for them). An update is sealed to the providers registered when it is sent:
        one that registers later can never open it, so it could not build on it."""
        a = self.agent
        if not a.exp.encrypt_updates:
            return True
        registered = sum(1 for _ in a.client.iter_data_registrations(a.model_id))
        return self.enough("peers", registered, len(a.exp.providers))

    def gossip_step(self, model: Model) -> bool:
        """One gossip update if any is still due; returns False when this provider is done."""
        a = self.agent
        mine = self.my_updates()
        n = len(mine) + len(self.refused)
        if n >= a.exp.gossip.updates_per_provider:
            return False
        if any(u["status"] == UpdateStatus.PENDING for u in mine):
            return True  # wait for the verdict on our last one before building on the DAG again
        accepted = a.client.iter_accepted_updates(a.model_id, 0)
        parents = choose_parents(parent_candidates(accepted, a.exp.gossip.recency), a.exp.gossip.max_parents)
        if n > 0 and not self.enough("parents", len(parents), a.exp.gossip.min_parents):
            return True  # woken by the next accepted update, or by the poll once the wait is over
        if n == 0 and not self.peers_registered():
            return True  # woken by the next registration, or by the poll once the wait is over
        base = gossip_base(a.reader, model, parents)
        upd, metrics = self.train(base, _seed(a.exp.seed, self.cfg.name, "gossip", n))
        from fedcommittee.ml import state as st

        weights = st.add_scaled(base, upd.delta)
        obj, sealing = self.upload(model, ml.dumps(weights))
        a.log("trained", step=n, parents=parents, sha256=obj.sha256_hex, bytes=obj.size, **sealing, **metrics)
        doc: UpdateDoc = {
            "parents": parents,
            "cid": obj.cid,
            "sha256": obj.sha256_hex,
            "numSamples": int(upd.num_samples),
            "metrics": metrics,
        }
        self.submit(doc, -(n + 1), done=lambda: len(self.my_updates()) > len(mine))
        return True

    # ------------------------------------------------------------------ the role's step (driver.run_role)
    def step(self, model: Model | None) -> int | None:
        if model is None:
            return None
        status = model["status"]
        if status in (ModelStatus.PROPOSED, ModelStatus.ACTIVE) and not self.registered:
            try:
                self.register()
            except STEP_RETRYABLE as exc:  # still train this pass: registering is retried next pass
                self.agent.step_failed(exc)
        if status != ModelStatus.ACTIVE:
            return None
        if model["mode"] == Mode.FEDERATED:
            self.federated_step(model)
        elif model.get("finalProposal") or not self.gossip_step(model):  # finishing: no more updates
            self.agent.log("gossip_done")
            return 0
        return None

    def final_fields(self, model: Model) -> dict[str, Any]:
        return {}

    def wait_seconds(self) -> float | None:
        return None

    def wakes_on(self, event: dict) -> bool:
        return not (event.get("mode") == Mode.FEDERATED and event.get("type") in FEDERATED_IDLE_EVENTS)
