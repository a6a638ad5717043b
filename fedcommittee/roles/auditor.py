"""Auditor: replay a model's ledger records and re-check everything they point at.

Needs only read access (any identity of the consortium). For a model it re-fetches the initial weights,
every committee shard (hash only: shards are sealed to their members), every update of every round
(hash, then the strict loader: shape, dtype, NaN/Inf), recomputes every round's aggregate from the
accepted set and compares it with the recorded one, and checks that round r+1 starts from round r's
aggregate. Each problem is one :class:`Finding`; none means the history is consistent.

Sealed updates (``encrypt_updates``) are opened with the reader's private key (run as a committee
member or the publisher). Without a recipient key their hash is still checked, but they cannot be
decoded and an aggregate over them cannot be recomputed: those are counted as *not opened* and *not
recomputed*, not as discrepancies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from fedcommittee import ml
from fedcommittee.ledger import AllocationRule, Mode, ModelStatus, Role, RoundStatus, StopReason
from fedcommittee.ledger.records import Model, Round, Update, UpdateStatus
from fedcommittee.policy import Policy
from fedcommittee.roles.protocol import final_candidates, final_choice, final_mix, standing_after
from fedcommittee.roles.reader import Reader, compute_aggregate, gossip_base
from fedcommittee.storage import envelope
from fedcommittee.storage.errors import EncryptedObject, StorageError


@dataclass
class Finding:
    where: str
    problem: str


@dataclass
class AuditReport:
    model_id: str
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    sealed: int = 0  # update objects stored as envelopes
    not_opened: int = 0  # ... of which the reader holds no recipient key (hash checked only)
    not_recomputed: int = 0  # aggregates (gossip: parent bases) that need an update we cannot open

    @property
    def ok(self) -> bool:
        return not self.findings

    def sealed_note(self) -> str:
        """``", 8 sealed updates: 8 not opened, 2 aggregates not recomputed (no recipient key)"``, or ""
        when no update was sealed: for the printed audit lines."""
        if not self.sealed:
            return ""
        note = f", {self.sealed} sealed updates: {self.not_opened} not opened, {self.not_recomputed} "
        note += "aggregates not recomputed"
        return note + (" (no recipient key)" if self.not_opened or self.not_recomputed else "")


def audit_model(
    reader: Reader,
    model_id: str,
    progress: Callable[[str], None] | None = None,
    max_rounds: int = 10_000,
    exp=None,
) -> AuditReport:
    """``exp``: the config, for what the ledger may not record (the aggregation strategy of a model
    published before the contract kept it: see ``Policy.from_model``); without it the record alone
    decides."""
    audit = _Audit(reader, model_id, progress or (lambda _m: None), exp)
    if audit.check_model():
        if audit.model["mode"] == Mode.GOSSIP:
            audit.check_gossip()
        else:
            audit.check_rounds(max_rounds)
    return audit.rep


class _Audit:
    """One audit's state: the report, the model, and the chain of confirmed aggregates so far."""

    def __init__(self, reader: Reader, model_id: str, say: Callable[[str], None], exp=None) -> None:
        self.reader, self.say = reader, say
        self.rep = AuditReport(model_id)
        self.model = reader.client.get_model(model_id)
        self.policy = Policy.from_model(self.model, exp)
        # A record from before the contract kept the strategy: without the config, say which one recomputed.
        recorded = exp is not None or self.model.get("aggregation")
        self.how = "" if recorded else f" (recomputed with {self.policy.aggregation})"
        reader.model_name = self.model["architecture"]["name"]
        reader.model_id = model_id
        self.prev_aggregate = self.model["initialWeights"]
        self.confirmed = {self.prev_aggregate["sha256"]}
        self.registered: list[dict] | None = None  # data registrations, read at the first allocated round

    def bad(self, where: str, problem: str) -> None:
        self.rep.findings.append(Finding(where, problem))
        self.say(f"DISCREPANCY {where}: {problem}")

    def check_obj(self, where: str, cid: str, sha: str, kind: str = "weights") -> None:
        """kind: weights (never sealed), blob (hash only), or an update's delta / gossip weights."""
        reader, rep = self.reader, self.rep
        rep.checked += 1
        try:
            data = reader.fetch(cid, sha)
            if kind in ("delta", "update weights"):
                if envelope.is_envelope(data):
                    rep.sealed += 1
                data = reader.open_update(data, what=where)
            if kind in ("weights", "update weights"):
                reader.decode_weights(data)
            elif kind == "delta":
                reader.decode_delta(data)
        except EncryptedObject:
            rep.not_opened += 1
        except (StorageError, ml.WeightsError, TypeError, ValueError, RecursionError) as exc:
            self.bad(where, f"{type(exc).__name__}: {exc}")

    def check_model(self) -> bool:
        """The model record and what it points at; False when its architecture is unknown (stop)."""
        model, name = self.model, self.reader.model_name
        if name not in ml.list_models():
            self.bad("model.architecture", f"{name!r} is not in the model registry")
            return False
        if model["specSha256"] != ml.spec_hash(name):
            self.bad("model.specSha256", "does not match the registry's spec hash")
        w = model["initialWeights"]
        self.check_obj("model.initialWeights", w["cid"], w["sha256"])
        for i, seat in enumerate(model.get("committee") or []):
            self.check_obj(f"model.committee[{i}].shard", seat["shardCid"], seat["shardSha256"], kind="blob")
        return True

    def check_gossip(self) -> None:
        model = self.model
        updates = list(self.reader.client.iter_round_updates(model["id"], 0))
        for u in updates:
            self.check_obj(f"update {u['id']}", u["cid"], u["sha256"], kind="update weights")
            if u["status"] == UpdateStatus.ACCEPTED:
                try:
                    gossip_base(self.reader, model, u.get("parents") or [])
                except EncryptedObject:
                    self.rep.not_recomputed += 1
                except (StorageError, ml.WeightsError, ValueError) as exc:
                    self.bad(f"update {u['id']}.parents", str(exc))
        self.check_final_proposal([u for u in updates if u["status"] == UpdateStatus.ACCEPTED])
        standings = self.check_standings(updates)
        self.say(f"gossip: {len(updates)} updates checked ({standings} standings){self.rep.sealed_note()}")

    def check_standings(self, updates: list[Update]) -> int:
        """Each gossip update's recorded standing (what the members chose its bars by) is what its
        provider's previous update makes it (the contract's fold, ``protocol.standing_after``), and each
        provider's updates form one chain: one first update, each later one naming an earlier update
        of the same provider that no other names. Returns how many standings were checked (updates
        recorded before the contract kept standings have none)."""
        by_id = {u["id"]: u for u in updates}
        named: dict[str, str] = {}  # previous -> the update that names it
        first: dict[str, str] = {}  # provider -> its update with no previous one
        checked = 0
        for u in sorted(updates, key=lambda u: (u.get("submittedAt") or 0, u["id"])):
            s = u.get("standing")
            if s is None:
                continue
            checked += 1
            where, prev_id = f"update {u['id']}.standing", s.get("previous")
            prev = by_id.get(prev_id) if prev_id else None
            if prev_id and (prev is None or prev["provider"] != u["provider"]):
                self.bad(where, f"previous {prev_id} is no update of provider {u['provider']} to this model")
                continue
            if prev_id and prev_id in named:
                self.bad(where, f"previous {prev_id} is named by update {named[prev_id]} too (one chain)")
            if not prev_id and u["provider"] in first:
                other = first[u["provider"]]
                self.bad(where, f"no previous update, as update {other} of the same provider (one chain)")
            if prev_id:
                named.setdefault(prev_id, u["id"])
            else:
                first.setdefault(u["provider"], u["id"])
            want = standing_after(prev)
            if dict(s) != want:
                self.bad(where, f"is {dict(s)}; the provider's previous update makes it {want}")
        return checked

    def check_final_proposal(self, accepted: list[Update]) -> None:
        """A gossip model finished on its committee's judgment (``ProposeFinal``, ``JudgeFinal``): the
        proposed mix is every provider's best fresh accepted model (``protocol.final_mix``) and its
        object their mean, the candidates are every accepted model (``final_candidates``), and the
        final model is the entry the members' median qualities put first (``final_choice``)."""
        model = self.model
        prop = model.get("finalProposal")
        if model["status"] != ModelStatus.FINISHED or not prop:
            return
        self.rep.checked += 1
        where = "model.finalProposal"
        if prop["mix"] != final_mix(accepted):
            self.bad(f"{where}.mix", "is not the best fresh accepted model of each provider (final_mix)")
        if prop["candidates"] != final_candidates(accepted):
            self.bad(f"{where}.candidates", "are not every accepted model, best first (final_candidates)")
        self.check_mix_object(prop)
        if not prop.get("judgments"):
            self.bad(where, "the model finished without a judgment of its proposal")
            return
        winner, _ = final_choice(prop)
        if winner is None:
            ok = model.get("finalMix") == prop["mix"] and model["final"]["sha256"] == prop["sha256"]
        else:
            sha = next((u["sha256"] for u in accepted if u["id"] == winner), None)
            ok = model.get("finalUpdate") == winner and model["final"]["sha256"] == sha
        if not ok:
            self.bad("model.final", "is not the best proposed entry by median quality (final_choice)")

    def check_mix_object(self, prop: dict) -> None:
        try:
            blob = ml.dumps(gossip_base(self.reader, self.model, prop["mix"]))
        except EncryptedObject:
            self.rep.not_recomputed += 1
            return
        except (StorageError, ml.WeightsError, ValueError) as exc:
            self.bad("model.finalProposal.mix", f"cannot recompute: {exc}")
            return
        if ml.sha256_hex(blob) != prop["sha256"]:
            self.bad("model.finalProposal", "is not the mean of its mix")

    def check_rounds(self, max_rounds: int) -> None:
        for r in range(1, min(int(self.model.get("currentRound") or 0), max_rounds) + 1):
            self.check_round(r)
        self.check_final()

    def check_round(self, r: int) -> None:
        reader, model_id = self.reader, self.model["id"]
        rd = reader.client.get_round(model_id, r)
        where = f"round {r}"
        if rd["global"]["sha256"] != self.prev_aggregate["sha256"]:
            self.bad(f"{where}.global", "does not equal the previous round's confirmed aggregate")
        updates = list(reader.client.iter_round_updates(model_id, r))
        for u in updates:
            self.check_obj(f"{where} update {u['id']}", u["cid"], u["sha256"], kind="delta")
        if rd.get("allocated") is not None:
            self.check_allocation(r, updates)
        accepted = sorted(u["id"] for u in updates if u["status"] == UpdateStatus.ACCEPTED)
        if rd["status"] != RoundStatus.OPEN and not set(rd.get("accepted") or []) <= set(accepted):
            self.bad(f"{where}.accepted", "names updates that are not accepted updates of the round")
        info = {"round": r, "status": rd["status"], "updates": len(updates), "accepted": len(accepted)}
        if rd["status"] == RoundStatus.DONE and rd.get("aggregate"):
            self.check_aggregate(where, rd)
        info["aggregate"] = (rd.get("aggregate") or {}).get("sha256")
        self.rep.rounds.append(info)
        self.say(f"{where}: {rd['status']}, {len(updates)} updates, {len(accepted)} accepted")

    def check_allocation(self, r: int, updates: list[Update]) -> None:
        self.rep.checked += 1
        alloc = self.reader.client.get_allocation(self.model["id"], r)
        if self.registered is None:
            self.registered = registered_providers(self.reader, self.model)
        pool = allocation_pool(self.registered, alloc)
        for problem in allocation_problems(self.model, r, alloc, updates, pool):
            self.bad(f"round {r}.allocation", problem)

    def check_aggregate(self, where: str, rd: Round) -> None:
        """A done round's recorded aggregate: loadable, and equal to ours recomputed from the ledger."""
        agg = rd["aggregate"]
        self.check_obj(f"{where}.aggregate", agg["cid"], agg["sha256"])
        try:
            blob, _ = compute_aggregate(self.reader, self.policy, self.model, rd)
            ours = ml.sha256_hex(blob)
            self.rep.checked += 1
            if ours != agg["sha256"]:
                self.bad(
                    f"{where}.aggregate",
                    f"recomputed sha256 {ours} differs from the recorded {agg['sha256']}{self.how}",
                )
        except EncryptedObject:
            self.rep.not_recomputed += 1
        except (StorageError, ml.WeightsError, TypeError, ValueError, RecursionError) as exc:
            self.bad(f"{where}.aggregate", f"cannot recompute: {exc}")
        self.prev_aggregate = agg
        self.confirmed.add(agg["sha256"])

    def check_final(self) -> None:
        model = self.model
        final = model.get("final")
        if model["status"] != ModelStatus.FINISHED or not final:
            return
        if model.get("stopReason") == StopReason.PATIENCE:
            # Stopped for lack of progress: the final model is the best confirmed one, not the last.
            best = model.get("best") or {}
            if final["sha256"] != best.get("sha256") or final["sha256"] not in self.confirmed:
                self.bad("model.final", "stopped on patience but is not the best confirmed aggregate")
        elif final["sha256"] != self.prev_aggregate["sha256"]:
            self.bad("model.final", "is not the last confirmed aggregate")


def _hex_sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# How far a transaction's timestamp may lie from the moment the contract ran it. Timestamps are
# the client's proposal times, in whole seconds: a registration proposed before a round opened
# can commit after the draw ran, and under load (the CI run that found this) one proposed after
# the opening was already in the opening's pool. Within this window the audit cannot tell.
POOL_SLACK_S = 60


class Pool(NamedTuple):
    """Who could be drawn for a round, from the registrations: ``sure`` registered more than
    ``POOL_SLACK_S`` before the round opened, ``maybe`` within that window of it on either side."""

    sure: list[str]
    maybe: list[str]


def registered_providers(reader: Reader, model: Model) -> list[dict]:
    """The model's data registrations whose provider holds the provider role (now: a role revoked
    since a round opened would show up as a discrepancy). Read once per audit."""
    regs = list(reader.client.iter_data_registrations(model["id"]))
    holders = {h.get("identity") for h in reader.client.iter_role_holders(Role.PROVIDER)}
    return [g for g in regs if g["provider"] in holders]


def allocation_pool(registered: list[dict], alloc: dict) -> Pool:
    """A round's possible pool, from ``registered_providers`` and the allocation's timestamp."""
    at = int(alloc.get("timestamp") or 0)
    when = {g["provider"]: int(g.get("registeredAt") or 0) for g in registered}
    return Pool(
        sure=sorted(p for p, t in when.items() if t < at - POOL_SLACK_S),
        maybe=sorted(p for p, t in when.items() if abs(t - at) <= POOL_SLACK_S),
    )


def allocation_problems(
    model: dict, round_no: int, alloc: dict, updates: list[dict], pool: Pool
) -> list[str]:
    """What is wrong with a round's allocation record, recomputed from public data (chaincode/README.md,
    "Task allocation"): for rule random, every draw from the on-chain seed, the pool's size, and that no
    provider surely in the pool was passed over for a larger draw; for reputation, the k first of the
    ranking; and every update of the round from an allocated provider."""
    problems = []
    rule = (model.get("allocation") or {}).get("rule", AllocationRule.ALL)
    k = int((model.get("allocation") or {}).get("k") or 0)
    ranking = alloc.get("ranking") or []
    chosen = alloc.get("providers") or []
    if alloc.get("rule") != rule:
        problems.append(f"rule {alloc.get('rule')!r} differs from the model's {rule!r}")
    if rule == AllocationRule.RANDOM:
        seed = model.get("allocationSeed") or ""
        round_seed = _hex_sha256(f"{model['id']}|{round_no}|{seed}")
        if alloc.get("roundSeed") != round_seed:
            problems.append("roundSeed is not sha256(modelId|round|allocationSeed)")
        for e in ranking:
            if e.get("draw") != _hex_sha256(f"{round_seed}|{e.get('provider')}"):
                problems.append(f"draw of {str(e.get('provider'))[:24]} is not sha256(roundSeed|identity)")
        draw = {p: _hex_sha256(f"{round_seed}|{p}") for p in pool.sure + pool.maybe + chosen}
        eligible = int(alloc.get("eligible") or 0)
        lo, hi = len(pool.sure), len(pool.sure) + len(pool.maybe)
        if not lo <= eligible <= hi:
            problems.append(f"eligible {eligible} does not fit the {lo}..{hi} registered providers")
        if not set(chosen) <= set(pool.sure + pool.maybe) or len(chosen) != min(k, eligible):
            problems.append("allocated providers are not k registered providers")
        cutoff = max((draw[p] for p in chosen), default="")
        passed_over = [p for p in pool.sure if p not in chosen and (len(chosen) < k or draw[p] < cutoff)]
        if passed_over or [draw[p] for p in chosen] != sorted(draw[p] for p in chosen):
            problems.append("allocated providers are not the k smallest draws of the registered providers")
    elif rule == AllocationRule.REPUTATION and chosen != [e.get("provider") for e in ranking][:k]:
        problems.append("allocated providers are not the first k of the reputation ranking")
    for u in updates:
        if u["provider"] not in chosen:
            problems.append(f"update {u['id']} comes from a provider not allocated to the round")
    return problems
