"""The protocol policy: the decisions every role must take alike, in one object.

In the spirit of Flower's Strategy (one object holds the server's decisions), a :class:`Policy` owns
what the roles would otherwise each re-derive from the config:

- round closing (``should_close``: when the publisher closes an open round);
- scoring and acceptance (``scoring_rule``: the committee's rule, with the threshold the ledger holds;
  ``clamp``: the score bounds every verdict is kept in);
- the rules the model spec puts on the ledger (``ledger_rules``: metric, acceptance, quorum, round,
  reward, allocation, stopping and governance rules; the publisher adds the objects);
- aggregation (``aggregate``): any strategy of ``ml.registry.STRATEGIES`` with its parameters, its
  state kept across rounds and rebuilt by replay (:class:`Aggregator`).

Built from the config (:meth:`Policy.from_experiment`) or from a model record the ledger holds
(:meth:`Policy.from_model`), so that a verifier needs only the ledger. Imports torch only when it
scores or aggregates, and of the ledger only its record vocabulary (``ledger.records``: statuses,
modes, rule names), never the client or IPFS: the roles fetch, the policy decides.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fedcommittee.experiment import Experiment, LocalConfig, ScoringConfig
from fedcommittee.ledger.records import AcceptRule, Mode, UpdateStatus
from fedcommittee.ml import registry

SCORE_MIN, SCORE_MAX = -1000.0, 1000.0

# (delta, num_samples) pairs of a round's accepted updates, as ml.aggregate takes them.
Updates = Sequence[tuple[dict, int]]
# round number -> (that round's global state, its accepted updates): how a policy reads earlier rounds.
EarlierRounds = Callable[[int], tuple[dict, Updates]]


class Aggregator:
    """One registered strategy whose state after round r is a pure function of the initial model and
    rounds 1..r's accepted updates, so that every party that recomputes an aggregate gets the same
    bytes whenever it started.

    The strategy's state after each round is kept in memory (the last two rounds: the current round
    may be recomputed, e.g. by a member that confirms after recording); a round further on than what
    was seen is reached by replaying the rounds in between from ``earlier``; an earlier one, by
    replaying from round 1. Stateless strategies never replay.
    """

    KEEP = 2

    def __init__(self, name: str, params: dict[str, Any] | None = None) -> None:
        params = dict(params or {})
        if name not in registry.STRATEGIES:
            raise ValueError(f"unknown aggregation strategy {name!r}; known: {sorted(registry.STRATEGIES)}")
        if bad := registry.params_problem(registry.STRATEGIES[name], params):
            raise ValueError(f"aggregation {name!r}: parameter {bad[0]!r} {bad[1]}")
        self.name, self.params = name, params
        self._after: dict[int, Any] = {}  # round -> the strategy as it stands after that round

    def _fresh(self):
        from fedcommittee.ml.aggregate import get_strategy

        return get_strategy(self.name, **self.params)

    @property
    def stateful(self) -> bool:
        from fedcommittee.ml.aggregate import STRATEGIES

        return STRATEGIES[self.name].stateful

    def _before(self, round_no: int, earlier: EarlierRounds):
        """The strategy as it stands after round ``round_no - 1`` (replayed where not in memory)."""
        seen = [k for k in self._after if k < round_no]
        start = max(seen, default=0)
        strategy = self._after[start] if seen else self._fresh()
        for k in range(start + 1, round_no):
            strategy = self._step(k, strategy, *earlier(k))[0]
        return strategy

    def _step(self, round_no: int, before, global_state: dict, updates: Updates):
        """(strategy after round_no, round_no's new global state); ``before`` is left untouched."""
        if not updates:  # a skipped round: the global model and the strategy carry over
            after, new_state = before, global_state
        else:
            after = copy.deepcopy(before)
            new_state = after.aggregate(global_state, list(updates))
        self._after[round_no] = after
        for k in sorted(self._after)[: -self.KEEP]:
            del self._after[k]
        return after, new_state

    def aggregate(self, round_no: int, global_state: dict, updates: Updates, earlier: EarlierRounds) -> dict:
        """Round ``round_no``'s new global state from its global state and accepted updates.
        ``earlier(k)`` gives round k's (global state, accepted updates) for k < round_no; it is called
        only for a stateful strategy whose state after round ``round_no - 1`` is not in memory."""
        if round_no < 1:
            raise ValueError(f"round numbers start at 1, got {round_no}")
        if not self.stateful:
            return self._fresh().aggregate(global_state, list(updates)) if updates else global_state
        return self._step(round_no, self._before(round_no, earlier), global_state, updates)[1]


@dataclass
class Policy:
    mode: str = Mode.FEDERATED
    min_accepted: int = 2
    deadline_seconds: int = 300
    max_rounds: int = 3
    settle_seconds: float = 20.0
    acceptance: str = AcceptRule.THRESHOLD
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    reference: LocalConfig = field(default_factory=LocalConfig)  # how providers train (trust reference)
    seed: int = 0
    aggregation: str = "fedavg"
    aggregation_params: dict[str, Any] = field(default_factory=dict)
    exp: Experiment | None = field(default=None, repr=False)  # the config, when built from one
    aggregator: Aggregator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.aggregator = Aggregator(self.aggregation, self.aggregation_params)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_experiment(cls, exp: Experiment) -> Policy:
        return cls(
            mode=exp.mode,
            min_accepted=exp.min_accepted,
            deadline_seconds=exp.deadline_seconds,
            max_rounds=exp.rounds,
            settle_seconds=exp.settle_seconds,
            acceptance=exp.acceptance,
            scoring=exp.scoring,
            reference=exp.local,
            seed=exp.seed,
            aggregation=exp.aggregation,
            aggregation_params=dict(exp.aggregation_params),
            exp=exp,
        )

    @classmethod
    def from_model(cls, model: dict, exp: Experiment | None = None) -> Policy:
        """The policy a model record on the ledger states; what the record does not state comes from
        ``exp`` when given, else the defaults.

        Recorded: mode, round rules, acceptance rule and threshold, scoring rule and metric (as the
        metric name ``<rule>-<metric>``) and the aggregation strategy with its parameters
        (``aggregation: {name, params}``). Not recorded: the scoring rule's tuning (damping, ...).
        A record without ``aggregation`` (published before the contract kept it) aggregates as the
        config, or FedAvg without one.
        """
        base = cls.from_experiment(exp) if exp is not None else cls()
        rules = model.get("roundRules") or {}
        acc = model.get("acceptance") or {}
        rule, _, metric = str((model.get("metric") or {}).get("name") or "").rpartition("-")
        scoring = base.scoring
        if rule in registry.SCORING_RULES and metric in registry.SCORING_METRICS:
            scoring = replace(scoring, rule=rule, metric=metric)
        if acc.get("threshold") is not None:
            scoring = replace(scoring, threshold=float(acc["threshold"]))
        name, params = base.aggregation, base.aggregation_params
        if model.get("aggregation"):
            name, params = model["aggregation"]["name"], dict(model["aggregation"].get("params") or {})
            if exp is not None and (name, params) != (exp.aggregation, dict(exp.aggregation_params)):
                raise ValueError(f"the ledger aggregates with {name} {params}, the config with "
                                 f"{exp.aggregation} {exp.aggregation_params}")  # fmt: skip
        return replace(
            base,
            mode=model.get("mode") or base.mode,
            min_accepted=int(rules.get("minAccepted") or base.min_accepted),
            deadline_seconds=int(rules.get("deadlineSeconds") or base.deadline_seconds),
            max_rounds=int(rules.get("maxRounds") or base.max_rounds),
            acceptance=acc.get("rule") or base.acceptance,
            scoring=scoring,
            aggregation=name,
            aggregation_params=params,
        )

    # ------------------------------------------------------------------ round closing
    def should_close(self, rd: dict, updates: list[dict], providers: int, now: float) -> tuple[bool, str]:
        """Whether the publisher closes an open round, and why.

        Close when every expected provider's update (``providers``) is final, even with fewer than
        ``min_accepted`` accepted (nothing can change the accepted set before the deadline then, and
        the contract allows the close: ``everyoneFinal`` in chaincode/fedcommittee/round.go); or, for
        partial participation, when ``min_accepted`` are accepted, nothing is pending and no update
        came for ``settle_seconds``; or when the deadline has passed.
        """
        if now > int(rd.get("deadline") or 0) + 1:
            return True, "deadline"
        if any(u["status"] == UpdateStatus.PENDING for u in updates):
            return False, "waiting"
        if self.everyone_final(updates, providers):
            return True, "everyone"
        if sum(1 for u in updates if u["status"] == UpdateStatus.ACCEPTED) < self.min_accepted:
            return False, "waiting"
        if now > self.quiet_from(rd, updates):
            return True, "quiet"
        return False, "waiting"

    @staticmethod
    def everyone_final(updates: list[dict], providers: int) -> bool:
        """Whether a round's accepted set can no longer change: each of its ``providers`` expected
        providers (at least one) has an update, and none of its updates is pending."""
        return 0 < providers <= len(updates) and all(u["status"] != UpdateStatus.PENDING for u in updates)

    def quiet_from(self, rd: dict, updates: list[dict]) -> float:
        """When an open round with no new update counts as quiet: ``settle_seconds`` after its last
        update (or its opening)."""
        last = max([int(u.get("submittedAt") or 0) for u in updates] + [int(rd.get("openedAt") or 0)])
        return last + self.settle_seconds

    def next_close_check(self, rd: dict, updates: list[dict], now: float) -> float | None:
        """Seconds until :meth:`should_close` may turn true with no new ledger event (the quiet window
        or the deadline running out; None: no such time ahead), so that the publisher sleeps that
        long rather than a whole poll. A new update or verdict wakes it earlier through its event."""
        ahead = [t for t in (self.quiet_from(rd, updates), int(rd.get("deadline") or 0) + 1) if t >= now]
        return min(ahead) - now + 0.05 if ahead else None

    # ------------------------------------------------------------------ scoring and acceptance
    def scoring_rule(self, model: dict | None = None):
        """The committee's ``ml.ScoringRule``; with ``model``, at the threshold the ledger holds now
        (governance may have changed it since publication)."""
        from fedcommittee import ml

        s, c = self.scoring, self.reference
        threshold = s.threshold
        if model is not None and (model.get("acceptance") or {}).get("threshold") is not None:
            threshold = float(model["acceptance"]["threshold"])
        return ml.ScoringRule(
            name=s.rule,
            metric=s.metric,
            threshold=threshold,
            damping=s.damping,
            max_norm_ratio=s.max_norm_ratio,
            peer_fraction=s.peer_fraction,
            cos_floor=s.cos_floor,
            rescue_se=s.rescue_se,
            sym_se=s.sym_se,
            loo_se=float("inf") if s.loo_se is None else s.loo_se,
            guard_se=float("inf") if s.guard_se is None else s.guard_se,
            twin_ratio=s.twin_ratio,
            probation_rounds=s.probation_rounds,
            probation_cos_floor=s.probation_cos_floor,
            probation_sym_se=s.probation_sym_se,
            probation_rescue_se=s.probation_rescue_se,
            probation_until_accepted=s.probation_until_accepted,
            # The member's own reference update is trained like the providers' (optimizer, momentum,
            # batch), so that its length and direction are comparable with theirs.
            reference=ml.TrainConfig(steps=s.reference_steps, lr=s.reference_lr, batch_size=c.batch_size,
                                     optimizer=c.optimizer, momentum=c.momentum,
                                     logit_adjust=c.logit_adjust, seed=self.seed),
        )  # fmt: skip

    @staticmethod
    def clamp(score: float) -> float:
        """A score within the bounds the ledger records (NaN counts as the lowest)."""
        if score != score:
            return SCORE_MIN
        return max(SCORE_MIN, min(SCORE_MAX, float(score)))

    # ------------------------------------------------------------------ the ledger's rules
    def ledger_rules(self) -> dict:
        """The rule fields of PublishModel's spec (chaincode/README.md): everything but the objects
        (weights, committee seats) and the profile."""
        exp = self._config("ledger_rules")
        rule = self.scoring_rule()
        acceptance = {"rule": self.acceptance, "scoreMin": SCORE_MIN, "scoreMax": SCORE_MAX}
        if self.acceptance == AcceptRule.THRESHOLD:
            acceptance["threshold"] = float(rule.threshold)
        federated = self.mode == Mode.FEDERATED
        spec = {
            "metric": {"name": f"{rule.name}-{rule.metric}", "higherIsBetter": True},
            "acceptance": acceptance,
            "quorum": exp.effective_quorum,
            "mode": self.mode,
            "roundRules": {
                "minAccepted": self.min_accepted if federated else 0,
                "deadlineSeconds": self.deadline_seconds if federated else 0,
                "maxRounds": self.max_rounds if federated else 0,
                "maxParents": 0 if federated else exp.gossip.max_parents,
            },
            # Recorded so that a member or auditor recomputes the aggregate with the same strategy
            # from the ledger alone.
            "aggregation": {"name": self.aggregation, "params": dict(self.aggregation_params)},
            "rewardRules": {
                "acceptReward": exp.rewards.accept_reward,
                "rejectPenalty": exp.rewards.reject_penalty,
                "verdictReward": exp.rewards.verdict_reward,
            },
        }
        return spec | self.optional_rules()

    def optional_rules(self) -> dict:
        """The optional rule objects of PublishModel the config asks for (chaincode/README.md)."""
        exp = self._config("optional_rules")
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

    def _config(self, what: str) -> Experiment:
        if self.exp is None:
            raise ValueError(f"{what} needs the experiment's config (Policy.from_experiment)")
        return self.exp

    # ------------------------------------------------------------------ aggregation
    def aggregate(self, round_no: int, global_state: dict, updates: Updates, earlier: EarlierRounds) -> dict:
        """Round ``round_no``'s aggregate: see :meth:`Aggregator.aggregate`."""
        return self.aggregator.aggregate(round_no, global_state, updates, earlier)
