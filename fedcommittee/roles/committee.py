"""Committee member agent: approves the model, judges updates on its private shard, confirms aggregates.

* ``ModelProposed`` (model ``proposed``, no vote of ours): check the architecture is a registry name
  whose spec hash matches, the initial weights load (hash, shape, dtype, finiteness), our shard opens
  with our Fabric key and decodes, and the publisher's ``profile`` holds: a stated purpose, the
  registry's parameter count, the data kind the architecture consumes, and a declared training size
  that the providers' data registrations cover (waiting up to ``deadline_seconds`` for them). Then
  ``ApproveModel`` with the initial weights' accuracy on our shard, else ``RejectModel`` with the
  reason. Aggregates are confirmed with their shard accuracy too, so the contract's ``best`` model
  and stopping target are on one scale: accuracy on the committee's shards.
* Updates of the open round without our verdict: once every configured provider has submitted or the
  oldest unjudged one has waited ``settle_seconds``, score them together with the round's other
  updates as peers (the trust rule needs them) and send all the verdicts in one ``SubmitVerdicts``
  transaction (one commit per member and round; verdicts the contract skips because the others'
  quorum finalized the update first are logged as refused). Updates that fail their hash, base,
  shape or NaN checks are rejected with the reason, in the same batch. Under the effect rule's
  probation, a provider with an update rejected in the rule's ``probation_rounds`` rounds before is
  scored at the stricter bars: read from those rounds' final statuses on the ledger.
* Round ``closed``: recompute the aggregate (the policy's strategy) from the ledger's accepted set and
  ``ConfirmAggregate`` the candidate whose sha256 equals ours; a candidate that differs is logged as a
  discrepancy and never confirmed. If no candidate appears within ``settle_seconds`` (publisher
  down), the member records its own.
* Round ``open`` with the publisher gone: ``PUBLISHER_GRACE_SECONDS`` (``settle_seconds`` if longer)
  after every expected provider's update became final, or ``settle_seconds`` after the deadline, any
  member closes it.
* Gossip: each pending update is scored alone against the mean of its parents; under probation at
  the bars its provider's standing (recorded by the contract on the update) calls for.
* Sealed updates (``encrypt_updates``) are opened with our Fabric key. One sealed to fewer than all of
  the model's update recipients (``envelopes.update_recipients``: whoever aggregates must be able to open
  it) is rejected, and so is one whose content repeats an earlier update of the model: the contract's
  "sha256 once per model" rule sees only ciphertexts, which differ every time a delta is sealed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
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
    verdict_batches,
)
from fedcommittee.ledger.records import Model, Round, Update, VerdictDoc
from fedcommittee.policy import SCORE_MIN, Policy
from fedcommittee.roles.data import data_kind, decode_dataset
from fedcommittee.roles.envelopes import recipient_key_ids, shard_context
from fedcommittee.roles.protocol import (
    RESTART_CHECK_MARGIN_SECONDS,
    expected_providers,
    rejected_or_unproven,
    round_follows,
    standing_marks,
)
from fedcommittee.roles.reader import compute_aggregate, gossip_base, joined_model
from fedcommittee.roles.reference import ReferenceWorker
from fedcommittee.roles.runtime import Agent
from fedcommittee.storage import envelope
from fedcommittee.storage.errors import StorageError, unreachable

# Members confirm an aggregate in seat order: the member in seat i waits until i confirmations are
# in, or i times this long after the candidate appeared (members before it may be down). Confirmed
# all at once, the quorum's transactions collided on the candidate (an MVCC conflict and a retry
# each, every round); in turn, members past the quorum find the round done and send nothing. The
# wait is off the critical path: providers train the next round meanwhile (provider.train_ahead).
CONFIRM_TURN_SECONDS = 1.0

# A round whose updates are all final is the publisher's to close, at once and with its aggregate
# (one commit fewer than a close and a separate record). Members close it in the publisher's stead
# only when it has not done so this long after the last update became final (or settle_seconds, if
# longer), so that a publisher slowed by a busy machine is not raced.
PUBLISHER_GRACE_SECONDS = 10.0

# The others' verdicts on a federated round's updates give a member nothing to do: its own verdicts
# wait for updates (UpdateSubmitted), its confirmation for the close and the aggregates. Each such
# event was a pass (two or three reads) per member, three to six times a round.
OTHERS_VERDICT_EVENTS = frozenset(
    {EventType.VERDICT_SUBMITTED, EventType.VERDICTS_SUBMITTED, EventType.UPDATE_FINALIZED}
)

# Why a verdict of ours was not sent: the others' verdicts finalized its update first. Worded as the
# contract words a verdict it skips for that reason, so that logs count both as the same race.
FINALIZED_BEFORE_SENT = "not pending: verdicts are closed (finalized by the others before ours was sent)"

# An update submitted more than RESTART_CHECK_MARGIN_SECONDS after we started cannot hold a verdict
# from an earlier run of ours; were the clocks further apart, a second verdict of ours is skipped by
# the contract as a lost race, so erring costs a scoring, not state.


def _judged_by(proposal: dict, member: str) -> bool:
    """Whether ``member`` has judged a gossip model's final proposal."""
    return any(j.get("member") == member for j in proposal.get("judgments") or [])


def submission_order(u: Update) -> tuple[int, int, str]:
    """Which of two updates came first, as every member agrees: the round first (timestamps are
    whole seconds, and a fast round's update may share the second of the last round's), then the
    submission second, then the id."""
    return int(u.get("round") or 0), int(u.get("submittedAt") or 0), u["id"]


def to_score(recorded: list[Update]) -> list[Update]:
    """A round's updates a member scores, in submission order: a replay the contract refused on the
    spot counts as its provider's turn but is not scored, and the near-copy screen (``twin_ratio``)
    keeps the earliest of near-copies, so a late copy cannot get the update it copies rejected."""
    return sorted((u for u in recorded if not u.get("refusal")), key=submission_order)


class Member:
    def __init__(self, agent: Agent, name: str) -> None:
        self.agent = agent
        self.name = name
        self.rule = agent.policy.scoring_rule()
        self.shard = None
        self.judged: set[str] = set()
        self.started = time.time()
        self.first_seen: dict[str, float] = {}
        self.closed_seen: dict[int, float] = {}
        self.candidate_seen: dict[int, float] = {}  # round -> when the candidate we agree with appeared
        self.aggregates: dict[int, bytes] = {}  # round -> our aggregate of it
        self.aggregate_evals: dict[int, Any] = {}  # round -> our aggregate's evaluation on our shard
        self.unevaluated: tuple[int, Any] | None = None  # the last aggregate's model state, not evaluated yet
        self.discrepancies: list[str] = []
        self.proposal_seen: float | None = None
        self.idle_logged = False  # "not_seated" said once per spell off the committee
        # update id -> (sha256 of its content, opened if sealed, or None; whether it was sealed)
        self.contents: dict[str, tuple[str | None, bool]] = {}
        self.round_lists: dict[int, list[Update]] = {}  # updates of rounds that are over (final lists)
        # The open round's global model and its updates as loaded (a delta, or why it is rejected).
        self.global_of: tuple[tuple[int, str] | None, Any] = (None, None)
        # Our own update on a round's global model, trained on a thread of its own (reference.py).
        self.references = ReferenceWorker(self._train_reference, lambda *a, **kw: self.agent.log(*a, **kw))
        self.loaded: dict[str, Any] = {}
        self.settle_due: float | None = None  # when a settle window that holds back our verdicts ends

    # ------------------------------------------------------------------ shard and model checks
    def seat(self, model: Model) -> dict | None:
        return next((s for s in model.get("committee") or [] if s["member"] == self.agent.me), None)

    def load_shard(self, model: Model):
        if self.shard is None:
            seat = self.seat(model)
            if seat is None:
                raise RuntimeError("not a member of this model's committee")
            blob = self.agent.reader.fetch(seat["shardCid"], seat["shardSha256"])
            plain = envelope.open_envelope(blob, self.agent.private_key, shard_context(model["id"]))
            spec = ml.get_spec(model["architecture"]["name"])
            self.shard = decode_dataset(plain, spec.n_classes)
            self.agent.log("shard_opened", samples=len(self.shard))
        return self.shard

    def model_score(self, state) -> float:
        """The score of a whole model (approval, aggregate confirmation): its accuracy on our shard.
        The contract tracks the best one and applies the stopping target to the committee's median."""
        return ml.evaluate(self.agent.exp.model, state, self.shard).accuracy

    def rule_for(self, model: Model):
        """Our scoring rule with the threshold the ledger holds now (governance may have changed it)."""
        return self.agent.policy.scoring_rule(model)

    def check_profile(self, model: Model) -> str | None:
        """The publisher's declaration against the registry and the registered data. Returns a reason
        to reject, "" to wait for more data registrations, or None when it is sound."""
        from fedcommittee.ml.models import num_parameters

        prof = model.get("profile")
        arch = model["architecture"]["name"]
        if prof is None:
            return "no profile: the model declares no purpose, data kind or training size"
        if not str(prof.get("purpose") or "").strip():
            return "profile.purpose is empty"
        if int(prof.get("parameters") or 0) != num_parameters(arch):
            return f"profile.parameters {prof.get('parameters')} is not {arch}'s {num_parameters(arch)}"
        data_type, fmt = data_kind(arch)
        declared = f"{prof.get('dataType')}/{prof.get('dataFormat')}"
        if declared != f"{data_type}/{fmt}":
            return f"profile data {declared} does not fit {arch} ({data_type}/{fmt})"
        a = self.agent
        regs = list(a.client.iter_data_registrations(a.model_id))
        held = sum(
            int(g["numSamples"]) for g in regs if (g.get("dataType"), g.get("format")) == (data_type, fmt)
        )
        want = int(prof.get("trainingSamples") or 0)
        if held >= want:
            a.log("profile_checked", registered=len(regs), samples=held, declared=want)
            return None
        seen = time.time() if self.proposal_seen is None else self.proposal_seen
        # Providers get a round deadline's time to come up and register before the shortfall counts.
        if time.time() - seen < a.exp.deadline_seconds:
            return ""
        return f"declared {want} training samples but the {len(regs)} registered providers hold {held}"

    def check_model(self, model: Model):
        """Returns (ok, score or reason); (False, "") means: not decided yet."""
        arch = model["architecture"]["name"]
        if arch != self.agent.exp.model or arch not in ml.list_models():
            return False, f"architecture {arch!r} is not the agreed registry model"
        if model["specSha256"] != ml.spec_hash(arch):
            return False, "specSha256 does not match the registry's spec hash"
        try:
            w = model["initialWeights"]
            init = self.agent.reader.fetch_weights(w["cid"], w["sha256"])
            self.load_shard(model)
        except (StorageError, ml.WeightsError, ValueError, RuntimeError) as exc:
            return False, f"{type(exc).__name__}: {exc}"[:400]
        problem = self.check_profile(model)
        if problem is not None:
            return False, problem
        score = self.model_score(init)
        self.agent.log("model_checked", accuracy=round(score, 4), score=score)
        return True, Policy.clamp(score)

    def vote(self, model: Model) -> None:
        a = self.agent
        if self.seat(model) is None:
            return

        def voted() -> bool:
            # Once the model left "proposed" (quorum reached without us) a vote is moot.
            if (a.model() or {}).get("status") != ModelStatus.PROPOSED:
                return True
            votes = a.client.get_model_votes(a.model_id)
            return any(v.get("member") == a.me for v in votes)

        if voted():
            return
        if self.proposal_seen is None:
            self.proposal_seen = time.time()
        ok, value = self.check_model(model)
        if not ok and value == "":
            return  # waiting for the providers' data registrations
        if ok:
            a.submit(a.client.approve_model, a.model_id, float(value), done=voted)
        else:
            a.log("model_rejected_by_me", level="warning", reason=value)
            a.submit(a.client.reject_model, a.model_id, str(value), done=voted)

    # ------------------------------------------------------------------ verdicts
    def has_verdict(self, uid: str) -> bool:
        verdicts = self.agent.client.get_verdicts(uid)
        return any(v.get("member") == self.agent.me for v in verdicts)

    def _required_recipients(self, model: Model) -> set[str]:
        """Key ids a sealed update of ``model`` must be sealed to (everyone who aggregates it)."""
        try:
            return recipient_key_ids(self.agent, model)
        except RuntimeError as exc:  # our profile lacks a recipient: not the provider's fault
            self.agent.log("recipients_unknown", level="warning", reason=str(exc)[:300])
            return set()

    def _load_update(self, model: Model, u: Update, base_sha: str | None):
        """A federated update's delta as sent (``base_sha``: the round's global) or a gossip update's
        weights; or a reason string if it must be rejected unseen. A sealed update is opened with our
        key, and must be sealed to all of the model's update recipients."""
        a = self.agent
        if base_sha is not None and u.get("baseSha256") != base_sha:
            return "base is not the round's global model"
        try:
            reader = a.reader
            raw = reader.fetch(u["cid"], u["sha256"])
            sealed = envelope.is_envelope(raw)
            require = self._required_recipients(model) if sealed else ()
            plain = reader.open_update(raw, require, what=f"update {str(u.get('id'))[:16]}")
            if u.get("id"):
                self.contents[u["id"]] = (hashlib.sha256(plain).hexdigest(), sealed)
            return reader.decode_weights(plain) if base_sha is None else reader.decode_delta(plain)
        except (StorageError, ml.WeightsError) as exc:
            if unreachable(exc):
                raise  # our IPFS node is down: judge the update when it is back, never reject it for that
            return f"{type(exc).__name__}: {exc}"[:400]
        except (TypeError, ValueError, RecursionError) as exc:  # untrusted bytes the loader did not expect
            return f"malformed weights: {type(exc).__name__}: {exc}"[:400]

    def _content(self, u: Update) -> str | None:
        """sha256 of an update's content (opened if sealed); None if we cannot read it."""
        if u["id"] not in self.contents:
            try:
                plain = self.agent.reader.fetch_update(u["cid"], u["sha256"])
                self.contents[u["id"]] = (hashlib.sha256(plain).hexdigest(), False)
            except StorageError:
                self.contents[u["id"]] = (None, False)
        return self.contents[u["id"]][0]

    def _updates_until(self, model: Model, round_no: int) -> list[Update]:
        """Every update of the model in rounds 1..round_no (gossip: all of them)."""
        a = self.agent
        rounds = [0] if model["mode"] == Mode.GOSSIP else range(1, round_no + 1)
        out: list[Update] = []
        for k in rounds:
            out += self._finished_round(k) if k < round_no else a.client.iter_round_updates(a.model_id, k)
        return out

    def _finished_round(self, k: int) -> list[Update]:
        """The updates of round ``k``, which is over: read once, as its list and statuses are final."""
        if k not in self.round_lists:
            self.round_lists[k] = list(self.agent.client.iter_round_updates(self.agent.model_id, k))
        return self.round_lists[k]

    def probation_of(self, r: int, updates: list[Update]) -> list[bool] | None:
        """Per update of round ``r``, whether the rule judges its provider on probation, as the
        ledger says: an update of its rejected in one of the rule's ``probation_rounds`` rounds
        before ``r`` (or, with ``probation_until_accepted``, none accepted in any round before);
        None when the rule has none."""
        rule = self.rule
        k = rule.probation_rounds
        if not k:
            return None
        recent = [self._finished_round(q) for q in range(max(1, r - k), r)]
        earlier = [self._finished_round(q) for q in range(1, r)] if rule.probation_until_accepted else []
        caught, unproven = rejected_or_unproven(recent, earlier, [u["provider"] for u in updates])
        return [rule.on_probation(c, not n) for c, n in zip(caught, unproven, strict=True)]

    def replay_of(self, model: Model, u: Update) -> str | None:
        """The id of an earlier update of the model (by round, submission time, then id) with the
        same content as ``u``, when updates are sealed (config, or ``u`` itself); else None. For
        clear updates the contract already refuses a repeated sha256."""
        mine = self.contents.get(u["id"])
        if mine is None or mine[0] is None or not (self.agent.exp.encrypt_updates or mine[1]):
            return None
        for v in self._updates_until(model, int(u.get("round") or 0)):
            if submission_order(v) < submission_order(u) and self._content(v) == mine[0]:
                return v["id"]
        return None

    def _verdict_doc(
        self, u: Update, score: float, reason: str, rule, quality: float | None = None
    ) -> VerdictDoc:
        score = Policy.clamp(score)
        doc: VerdictDoc = {"score": score, "accept": bool(ml.accept(rule or self.rule, score)) and not reason}
        if reason:
            doc["reason"] = reason[:400]
        if quality is not None:
            doc["quality"] = quality
        return doc

    def _logged(self, u: Update, doc: dict) -> None:
        self.judged.add(u["id"])
        a = self.agent
        a.log("verdict", update=u["id"], provider=u["provider"][:24], score=round(doc["score"], 5),
              accept=doc["accept"], reason=doc.get("reason", ""))  # fmt: skip

    def _verdict(
        self, u: Update, score: float, reason: str = "", rule=None, quality: float | None = None
    ) -> None:
        a = self.agent
        uid = u["id"]
        doc = self._verdict_doc(u, score, reason, rule, quality)
        try:
            a.submit(
                a.client.submit_verdict, uid, doc, wait_for_peers=True, done=lambda: self.has_verdict(uid)
            )
        except ContractError as exc:
            a.log("verdict_refused", level="warning", update=uid, reason=exc.chaincode_message)
        self._logged(u, doc)

    def _verdicts(self, items: list[tuple[Update, float, str, Any]]) -> None:
        """All of a round's verdicts in as few ``SubmitVerdicts`` transactions as the contract's
        limits allow (one, up to 256 updates): one commit per member and round instead of one per
        candidate. Verdicts the contract skips (the update was finalized by the others meanwhile)
        are logged as refused, as a late single verdict is."""
        if len(items) == 1:
            self._verdict(*items[0])
            return
        docs = [(u, self._verdict_doc(u, score, reason, rule)) for u, score, reason, rule in items]
        start = 0
        for batch in verdict_batches([{"updateId": u["id"], **doc} for u, doc in docs]):
            end = start + len(batch)
            self._verdict_batch(items[start:end], batch, docs[start:end])
            start = end

    def _verdict_batch(self, items: list, batch: list, docs: list) -> None:
        """One ``SubmitVerdicts`` of ``batch`` (the verdicts of ``items``, whose docs are ``docs``)."""
        a = self.agent
        ours_known_missing = True

        def still_wanted(ours_missing: bool) -> bool:
            nonlocal ours_known_missing
            ours_known_missing = ours_missing
            return self._waiting_for_us(docs, ours_missing=ours_missing)

        try:
            # Our verdicts are known to be missing before the first try (the updates were just found
            # unjudged by us) and after a conflict; only a retry after an unknown outcome asks for
            # them. We read every update of the batch on our own peer: another organization's peer
            # that does not know one yet is behind, so the batch waits for it (wait_for_peers)
            # rather than fall apart into single verdicts (at 1,000 providers on Fabric, 7 s each).
            result = a.submit(
                a.client.submit_verdicts, batch, wait_for_peers=True, checked=True,
                recheck=lambda: not still_wanted(True), done=lambda: not still_wanted(False),
            )  # fmt: skip
        except ContractError as exc:
            # A refused batch (e.g. an update whose verdicts closed in a way the batch cannot skip):
            # fall back to one transaction each, so one bad item cannot hold back the others.
            a.log("verdicts_refused", level="warning", count=len(docs), reason=exc.chaincode_message)
            for u, score, reason, rule in items:
                if not self.has_verdict(u["id"]):
                    self._verdict(u, score, reason, rule)
            return
        skipped = {}
        if result is not None and result.result:
            skipped = {s["updateId"]: s["reason"] for s in submit_json(result).get("skipped") or []}
        elif result is None:  # not sent: every update has our verdict, or was finalized without it
            skipped = {u["id"]: FINALIZED_BEFORE_SENT for u, _ in docs
                       if ours_known_missing or not self.has_verdict(u["id"])}  # fmt: skip
        for u, doc in docs:
            if u["id"] in skipped:
                a.log("verdict_refused", level="warning", update=u["id"], reason=skipped[u["id"]])
            self._logged(u, doc)

    def _waiting_for_us(self, docs: list, ours_missing: bool = False) -> bool:
        """Whether an update of the batch (one round's) still waits for our verdict: pending, with
        none from us (``ours_missing``: known, not asked: one read per update less). Once the
        others' verdicts have finalized all of them, the contract would skip every verdict of the
        batch: it is not sent (a retry held up our confirmation of the round's aggregate, next on
        the critical path, by a commit or two)."""
        a = self.agent
        r = int(docs[0][0]["round"])
        updates = a.client.iter_round_updates(a.model_id, r)
        pending = {u["id"] for u in updates if u["status"] == UpdateStatus.PENDING}
        return any(u["id"] in pending and (ours_missing or not self.has_verdict(u["id"])) for u, _ in docs)

    def may_have_judged(self, u: Update) -> bool:
        """Whether an earlier run of ours (before a restart) could have judged ``u``: not if it was
        submitted after we started. Asking the ledger for every new update cost each member one read
        per update and round."""
        return float(u.get("submittedAt") or 0) < self.started + RESTART_CHECK_MARGIN_SECONDS

    def _unjudged(self, updates: list[Update]) -> list[Update]:
        out = []
        for u in updates:
            uid = u["id"]
            if uid in self.judged or u["status"] != UpdateStatus.PENDING or u["provider"] == self.agent.me:
                continue
            if uid not in self.first_seen and self.may_have_judged(u) and self.has_verdict(uid):
                self.judged.add(uid)  # by an earlier run of ours, before a restart
                continue
            # Seen without a verdict of ours: only we can add one, so later passes need not ask the
            # ledger again (they did, once per pending update and pass: 22 reads a round a member).
            self.first_seen.setdefault(uid, time.time())
            out.append(u)
        return out

    def judge_round(self, model: Model, rd: Round) -> list[Update]:
        """Judge what is unjudged among round ``rd``'s updates; returns them as read."""
        a = self.agent
        r = int(rd["number"])
        g = rd["global"]
        # The work that does not depend on which updates are in is done before they come: the shard,
        # the global model and our reference update (begun on its thread when the previous round
        # closed, else now), then each update fetched, opened and decoded as it arrives.
        self.load_shard(model)
        global_state = self._round_global(r, g)
        self._start_reference(r, g, global_state)
        recorded = list(a.client.iter_round_updates(a.model_id, r))
        todo = self._unjudged(recorded)
        if not todo:
            return recorded
        updates = to_score(recorded)
        try:
            loaded = {u["id"]: self._loaded(model, u, g["sha256"]) for u in updates}
        except StorageError as exc:  # only an unreachable node gets here (_load_update)
            self.postpone(r, exc)
            return recorded
        everyone = len(recorded) >= expected_providers(a.exp, rd)
        settle_ends = min(self.first_seen[u["id"]] for u in todo) + a.exp.settle_seconds
        if not everyone and time.time() < settle_ends:
            self.settle_due = settle_ends
            return recorded
        valid, states = [], []
        rule = self.rule_for(model)
        verdicts: list[tuple[Update, float, str, Any]] = []  # (update, score, reason, rule), sent at once
        ids = {u["id"] for u in todo}
        for u in updates:
            w = loaded[u["id"]]
            replay = None if isinstance(w, str) else self.replay_of(model, u)
            if replay is not None:
                w = f"repeats the content of update {replay} (sealed again: new bytes, same update)"
            if isinstance(w, str):
                if u["id"] in ids:
                    verdicts.append((u, SCORE_MIN, w, None))
                continue
            valid.append(u)
            states.append(w)
        if valid:
            reference = self._round_reference(r, g, global_state)  # waited for, not timed as scoring
            started = time.perf_counter()
            sizes = [int(u["numSamples"]) for u in valid]
            probation = self.probation_of(r, valid)
            scores = ml.score_updates(
                self.rule, a.exp.model, global_state, states, self.shard, sizes, reference, probation
            )
            seconds = round(time.perf_counter() - started, 3)
            judged_strictly = {} if probation is None else {"on_probation": sum(probation)}
            a.log("scored", round=r, candidates=len(valid), seconds=seconds, **judged_strictly)
            verdicts += [(u, s, "", rule) for u, s in zip(valid, scores, strict=True) if u["id"] in ids]
        if verdicts:
            self._verdicts(verdicts)
        return recorded

    def postpone(self, r: int, exc: StorageError) -> None:
        """Our IPFS node cannot be reached: judge again in a second (an update is never rejected
        for what our own node cannot serve; the round's deadline still bounds the wait)."""
        self.agent.log("judging_postponed", level="warning", round=r, reason=str(exc)[:300])
        self.settle_due = time.time() + 1.0

    def _round_global(self, r: int, g: dict):
        """Round ``r``'s global model, fetched once per round."""
        if self.global_of[0] != (r, g["sha256"]):
            self.global_of = ((r, g["sha256"]), self.agent.reader.fetch_weights(g["cid"], g["sha256"]))
            self.loaded.clear()  # the previous round's updates are judged
        return self.global_of[1]

    def _train_reference(self, global_state):
        return ml.reference_delta(self.rule, self.agent.exp.model, global_state, self.shard)

    def _start_reference(self, r: int, g: dict, global_state) -> None:
        """Begin our reference update on round ``r``'s global model (``g``), for the rules that use
        one, unless it is under way: it depends only on that model, so it trains while the updates
        are still to come."""
        if self.rule.name in ml.REFERENCE_RULES:
            self.references.start((r, g["sha256"]), global_state)

    def _round_reference(self, r: int, g: dict, global_state):
        """Our reference update on round ``r``'s global model (waited for), or None for the rules
        without one."""
        if self.rule.name not in ml.REFERENCE_RULES:
            return None
        return self.references.get((r, g["sha256"]), global_state)

    def _loaded(self, model: Model, u: Update, base_sha: str):
        """``_load_update`` once per update (the update's bytes never change under its id)."""
        if u["id"] in self.loaded:
            return self.loaded[u["id"]]
        w = self._load_update(model, u, base_sha)
        if not isinstance(w, str):  # a reason to reject is found again at judging (IPFS may be back)
            self.loaded[u["id"]] = w
        return w

    def judge_gossip(self, model: Model) -> None:
        a = self.agent
        updates = list(a.client.iter_round_updates(a.model_id, 0))
        for u in self._unjudged(updates):
            self.load_shard(model)
            try:
                base = gossip_base(a.reader, model, u.get("parents") or [])
                w = self._load_update(model, u, None)
            except (StorageError, ml.WeightsError, TypeError, ValueError, RecursionError) as exc:
                if isinstance(exc, StorageError) and unreachable(exc):
                    self.postpone(0, exc)
                    return
                self._verdict(u, SCORE_MIN, reason=f"parents: {exc}"[:400])
                continue
            replay = None if isinstance(w, str) else self.replay_of(model, u)
            if replay is not None:
                w = f"repeats the content of update {replay} (sealed again: new bytes, same update)"
            if isinstance(w, str):
                self._verdict(u, SCORE_MIN, reason=w)
                continue
            from fedcommittee.ml import state as st

            delta = st.subtract(w, base)
            rule = self.rule_for(model)
            # The bars follow the provider's standing the contract recorded at submission, as federated
            # probation follows the finished rounds: the same record for every member and for verify.
            strict = rule.on_probation(*standing_marks(u.get("standing"), rule.probation_rounds))
            started = time.perf_counter()
            score = ml.score_updates(rule, a.exp.model, base, [delta], self.shard, probation=[strict])[0]
            a.log("scored", update=u["id"], candidates=1, seconds=round(time.perf_counter() - started, 3),
                  on_probation=int(strict))  # fmt: skip
            # The score judges what the update does to its base; the quality measures the model it
            # yields, which is what a gossip run ranks by (parents, the final model): mixed with the
            # parents it started from, as the next mixes take it. Alone, a model trained last on one
            # provider's skewed data mostly measures that skew.
            quality = round(self.model_score(joined_model(base, w, len(u.get("parents") or []))), 6)
            self._verdict(u, score, rule=rule, quality=quality)

    def judge_final(self, model: Model) -> None:
        """Our measure of a gossip model's proposed final models (``JudgeFinal``): the shard accuracy
        of the mix, then of each candidate's own model, one forward pass over the shard each (one
        model in memory at a time). The mix is recomputed from the updates it names: one that is not
        their mean measures 0, as does an entry that cannot be read, so that neither can become the
        final model."""
        a = self.agent
        prop = model["finalProposal"]
        if _judged_by(prop, a.me):
            return
        self.load_shard(model)

        def quality(state) -> float:
            return 0.0 if state is None else round(self.model_score(state), 6)

        try:
            mix = self._readable("mix", lambda: gossip_base(a.reader, model, prop["mix"]))
            if mix is not None and ml.sha256_hex(ml.dumps(mix)) != prop["sha256"]:
                a.log("final_mix_mismatch", level="warning", sha256=prop["sha256"])
                mix = None
            qualities = [quality(mix)]
            for uid in prop["candidates"]:
                qualities.append(quality(self._readable(uid, lambda uid=uid: self._candidate(model, uid))))
        except StorageError as exc:  # only an unreachable node gets here: judge once it is back
            self.postpone(0, exc)
            return
        a.log("final_judged", qualities=qualities, candidates=len(prop["candidates"]))

        def judged_or_over() -> bool:
            m = a.model() or {}
            return m.get("status") != ModelStatus.ACTIVE or _judged_by(m.get("finalProposal") or {}, a.me)

        a.submit(a.client.judge_final, a.model_id, qualities, done=judged_or_over)

    def _candidate(self, model: Model, uid: str):
        u = self.agent.reader.accepted_update(uid, model, what="candidate")
        return self.agent.reader.fetch_weights(u["cid"], u["sha256"], update=True)

    def _readable(self, entry: str, load: Callable[[], Any]):
        """``load()``, or None where what it reads cannot be read or decoded (logged); an unreachable
        node raises StorageError, so that the caller waits for it instead."""
        try:
            return load()
        except (StorageError, ml.WeightsError, TypeError, ValueError) as exc:
            if isinstance(exc, StorageError) and unreachable(exc):
                raise
            self.agent.log("final_entry_unreadable", level="warning", entry=entry, error=str(exc)[:200])
            return None

    # ------------------------------------------------------------------ aggregates
    def _confirmed_by_me(self, cands: list) -> bool:
        return any(
            c.get("member") == self.agent.me for cand in cands for c in cand.get("confirmations") or []
        )

    def confirm(self, model: Model, rd: Round) -> None:
        """Confirm the round's candidate aggregate that equals ours; log any other as a discrepancy;
        record our own if no candidate matches within settle_seconds (the publisher is gone)."""
        a = self.agent
        r = int(rd["number"])
        self.closed_seen.setdefault(r, time.time())

        def confirmed() -> bool:
            # A round the quorum already confirmed without us needs nothing more.
            if a.client.get_round(a.model_id, r)["status"] != RoundStatus.CLOSED:
                return True
            return self._confirmed_by_me(a.client.get_aggregates(a.model_id, r))

        cands = a.aggregates(r)
        if self._confirmed_by_me(cands):
            return
        if r not in self.aggregates:
            # Computed at once, while the publisher computes and records its candidate, and the next
            # round's reference starts on it now, on its own thread. A member whose seat is within
            # the quorum evaluates it at once too, so that confirming takes one transaction when the
            # candidate appears; the others evaluate it only when their turn comes (a member of the
            # quorum is down), since the quorum's confirmations mostly finish the round without them.
            blob, new_state = compute_aggregate(a.reader, a.policy, model, rd)
            self.load_shard(model)
            self.prepare_next_round(model, r, blob)
            self.aggregates[r], self.unevaluated = blob, (r, new_state)
            if self.seat_index(model) < int(model.get("quorum") or 0):
                self.evaluate_aggregate(r)
        blob = self.aggregates[r]
        mine = ml.sha256_hex(blob)
        self._note_mismatches(r, cands, mine)
        if not any(c["sha256"] == mine for c in cands):
            settle_ends = self.closed_seen[r] + a.exp.settle_seconds
            if time.time() >= settle_ends:
                self._record_own(r, cands, blob, mine)
            else:
                self.settle_due = settle_ends
            return
        if not self.my_turn_to_confirm(model, r, next(c for c in cands if c["sha256"] == mine)):
            return
        ev = self.evaluate_aggregate(r)
        a.log(
            "aggregate_checked", round=r, sha256=mine, accuracy=round(ev.accuracy, 4), loss=round(ev.loss, 4)
        )
        a.submit(
            a.client.confirm_aggregate,
            a.model_id,
            r,
            sha256=mine,
            score=Policy.clamp(ev.accuracy),
            done=confirmed,
        )

    def evaluate_aggregate(self, r: int):
        """Our aggregate of round ``r`` evaluated on our shard (an ``ml.EvalResult``): once, kept for
        the confirmation."""
        if r not in self.aggregate_evals:
            if self.unevaluated is not None and self.unevaluated[0] == r:
                state = self.unevaluated[1]
            else:  # a later round's aggregate came since: decode ours again
                state = self.agent.reader.decode_weights(self.aggregates[r])
            self.unevaluated = None
            started = time.perf_counter()
            self.aggregate_evals[r] = ml.evaluate(self.agent.exp.model, state, self.shard)
            self.agent.log("aggregate_evaluated", round=r, seconds=round(time.perf_counter() - started, 3))
        return self.aggregate_evals[r]

    def seat_index(self, model: Model) -> int:
        """Our seat on the model's committee (its order is the confirmation order); past the last
        seat when we hold none."""
        seats = [s["member"] for s in model.get("committee") or []]
        return seats.index(self.agent.me) if self.agent.me in seats else len(seats)

    def my_turn_to_confirm(self, model: Model, r: int, cand: dict) -> bool:
        """Whether the members seated before us have confirmed ``cand`` (or had their time to)."""
        turn = self.seat_index(model)
        due = self.candidate_seen.setdefault(r, time.time()) + turn * CONFIRM_TURN_SECONDS
        if len(cand.get("confirmations") or []) >= turn or time.time() >= due:
            return True
        self.settle_due = due  # woken earlier by the confirmation event we wait for
        return False

    def prepare_next_round(self, model: Model, r: int, blob: bytes) -> None:
        """Round ``r`` is closed and ``blob`` is the aggregate we computed of it: take it as round
        r + 1's global and start our reference on it, before anybody's candidate is even recorded,
        so that the reference is ready when the providers' updates come. Both are keyed by the
        model's sha256: a recorded global that differs from ours is fetched and trained on anew."""
        if not round_follows(model, r):
            return
        g = {"sha256": ml.sha256_hex(blob)}
        if self.global_of[0] != (r + 1, g["sha256"]):
            self.global_of = ((r + 1, g["sha256"]), self.agent.reader.decode_weights(blob))
            self.loaded.clear()  # round r is closed: its updates are judged
        self._start_reference(r + 1, g, self.global_of[1])

    def _note_mismatches(self, r: int, cands: list, mine: str) -> None:
        for c in cands:
            if c["sha256"] != mine and c["sha256"] not in self.discrepancies:
                self.discrepancies.append(c["sha256"])
                self.agent.log(
                    "aggregate_mismatch",
                    level="error",
                    round=r,
                    recorded_by=c.get("recordedBy", "")[:24],
                    theirs=c["sha256"],
                    ours=mine,
                )

    def _record_own(self, r: int, cands: list, blob: bytes, mine: str) -> None:
        a = self.agent

        def recorded() -> bool:
            return any(c.get("recordedBy") == a.me for c in a.client.get_aggregates(a.model_id, r))

        if any(c.get("recordedBy") == a.me for c in cands):
            return
        obj = a.put(blob)
        a.log("record_own_aggregate", round=r, sha256=mine)
        a.submit(a.client.record_aggregate, a.model_id, r, cid=obj.cid, sha256=mine, done=recorded)

    def close_if_overdue(self, rd: Round, updates: list[Update]) -> None:
        """Liveness without the publisher, which closes a round as soon as it may: any member closes
        the round (the contract allows it; the first one wins, the others see it closed)
        settle_seconds after its deadline, or PUBLISHER_GRACE_SECONDS (settle_seconds if longer)
        after the last of every expected provider's updates became final (``updates``: the round's,
        as read this pass). The contract allows that close short of min_accepted too
        (``everyoneFinal``)."""
        a = self.agent
        r = int(rd["number"])
        due, why = int(rd.get("deadline") or 0) + a.exp.settle_seconds, "deadline"
        if Policy.everyone_final(updates, expected_providers(a.exp, rd)):
            last_final = max(int(u.get("finalizedAt") or 0) for u in updates)
            grace = max(a.exp.settle_seconds, PUBLISHER_GRACE_SECONDS)
            if last_final + grace < due:
                due, why = last_final + grace, "everyone_final"
        if time.time() < due:
            if why == "everyone_final":  # no event may come to wake us by then: look again at due
                self.settle_due = due if self.settle_due is None else min(self.settle_due, due)
            return
        a.log("close_overdue_round", round=r, why=why)
        a.submit(
            a.client.close_round,
            a.model_id,
            r,
            done=lambda: a.client.get_round(a.model_id, r)["status"] != RoundStatus.OPEN,
        )

    # ------------------------------------------------------------------ the role's step (driver.run_role)
    def step(self, model: Model | None) -> int | None:
        if model is None:
            return None
        if self.seat(model) is None and model["status"] != ModelStatus.PROPOSED:
            return self.off_the_committee(model)
        self.idle_logged = False
        status = model["status"]
        if status == ModelStatus.PROPOSED:
            self.vote(model)
        elif status == ModelStatus.ACTIVE and model["mode"] == Mode.GOSSIP:
            self.judge_gossip(model)
            if model.get("finalProposal"):
                self.judge_final(model)
        elif status == ModelStatus.ACTIVE:
            rd = self.agent.round(int(model["currentRound"]))
            if rd["status"] == RoundStatus.OPEN:
                self.close_if_overdue(rd, self.judge_round(model, rd))
            elif rd["status"] == RoundStatus.CLOSED:
                self.confirm(model, rd)
        return None

    def off_the_committee(self, model: Model) -> int | None:
        """Not seated on an approved model: an error, unless governance may seat us later."""
        if model.get("governance") is None:
            self.agent.log("not_a_member", level="error")
            return 1
        # Governance can add or remove members during the run: stand by while off the seat.
        if not self.idle_logged:
            self.agent.log("not_seated", round=model.get("currentRound"))
            self.idle_logged = True
        return None

    def final_fields(self, model: Model) -> dict[str, Any]:
        return {"discrepancies": len(self.discrepancies)}

    def wakes_on(self, event: dict) -> bool:
        # Updates to judge, the round's and the aggregates' moves, votes, registrations, rule changes;
        # in gossip mode every event, as before.
        return not (event.get("mode") == Mode.FEDERATED and event.get("type") in OTHERS_VERDICT_EVENTS)

    def wait_seconds(self) -> float | None:
        # A settle window runs out with no event to wake us: look again then (the poll interval stays
        # the fallback for lost events).
        if self.settle_due is None:
            return None
        due, self.settle_due = self.settle_due, None
        return min(max(0.05, due - time.time() + 0.05), self.agent.poll_seconds)
