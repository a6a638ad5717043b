"""Committee scoring: how a member judges an update on its private validation shard.

Every score is "higher is better" and an update is accepted iff ``score >= rule.threshold``, so the
contract can compare the committee's median score with one number. Rules:

- ``absolute``: metric of global + delta. Naive: an honest provider with one-class data produces a
  model that looks bad on a balanced shard although it helps the average, so it gets rejected.
- ``damped``: metric(global + delta / n) - metric(global), n = expected updates per round. Judges
  the update by the step it will actually contribute to the FedAvg aggregate.
- ``loo``: leave-one-out marginal contribution: metric(FedAvg of all) - metric(FedAvg without it).
  Needs the round's other candidates; doubles as a reward signal.
- ``trust`` (the default, chosen by measurement: see docs/ml.md): FLTrust-style cosine similarity
  between the delta and a reference delta the member trains itself on its shard, minus
  ``peer_fraction`` x the round's median cosine; a delta far longer than its peers (or than the
  reference) scores negative.

``metric`` is "loss" (the negative cross-entropy, smooth even on small shards) or "accuracy".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from fedcommittee.ml import state as st
from fedcommittee.ml.aggregate import FedAvg
from fedcommittee.ml.data import Dataset
from fedcommittee.ml.evaluate import evaluate
from fedcommittee.ml.models import State
from fedcommittee.ml.train import TrainConfig, local_train

RULES = ("absolute", "damped", "loo", "trust")


@dataclass(frozen=True)
class ScoringRule:
    name: str = "trust"
    metric: str = "loss"  # "loss" (score uses -loss) or "accuracy"
    threshold: float | None = None  # accept iff score >= threshold; None = the rule's default below
    damping: float = 10.0  # damped: n, the expected number of updates aggregated per round
    max_norm_ratio: float = 3.0  # trust: deltas longer than this x the median candidate norm score < 0
    peer_fraction: float = 0.25  # trust: score is cosine minus this x the round's median cosine (if > 0)
    reference: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20, lr=0.05, batch_size=32))

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"unknown scoring rule {self.name!r}; known: {RULES}")
        if self.metric not in ("loss", "accuracy"):
            raise ValueError("metric must be 'loss' or 'accuracy'")
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLDS[self.name])


# absolute: plain accuracy/-loss floor is data-dependent, 0.0 only stops nothing; set it explicitly.
# trust: 0.01 sits above the cosine of pure noise or a zero delta (~0) and below honest skewed updates.
DEFAULT_THRESHOLDS = {"absolute": 0.0, "damped": 0.0, "loo": 0.0, "trust": 0.01}

DEFAULT_RULE = ScoringRule()


def _value(rule: ScoringRule, model_name: str, weights: State, shard: Dataset) -> float:
    r = evaluate(model_name, weights, shard)
    return -r.loss if rule.metric == "loss" else r.accuracy


def reference_delta(rule: ScoringRule, model_name: str, global_state: State, shard: Dataset) -> State:
    """The member's own update on its shard (trust rule): deterministic given rule.reference.seed."""
    return local_train(model_name, global_state, shard, rule.reference).delta


def trust_score(
    delta: State, reference: State, max_norm_ratio: float, norm_bound: float | None = None
) -> float:
    """Cosine to the reference; a delta longer than ``max_norm_ratio * norm_bound`` (default: the
    reference's norm) scores minus its relative excess instead, so boosted updates are rejected."""
    cos = st.cosine(delta, reference)
    norm = st.l2_norm(delta)
    bound = max_norm_ratio * (st.l2_norm(reference) if norm_bound is None else norm_bound)
    if bound > 0 and norm > bound:
        return -(norm / bound - 1.0)
    return cos


def score_updates(
    rule: ScoringRule,
    model_name: str,
    global_state: State,
    deltas: Sequence[State],
    shard: Dataset,
    num_samples: Sequence[int] | None = None,
) -> list[float]:
    """Scores of all candidate deltas of a round (``num_samples`` weights the loo aggregates)."""
    if not deltas:
        return []
    if rule.name == "absolute":
        return [_value(rule, model_name, st.add_scaled(global_state, d), shard) for d in deltas]
    if rule.name == "damped":
        base = _value(rule, model_name, global_state, shard)
        return [_value(rule, model_name, st.add_scaled(global_state, d, 1.0 / rule.damping), shard) - base
                for d in deltas]  # fmt: skip
    if rule.name == "trust":
        ref = reference_delta(rule, model_name, global_state, shard)
        # With >= 3 candidates the median candidate norm is a robust yardstick (a minority of attackers
        # cannot move it) that does not depend on the member's own training settings.
        norms = sorted(st.l2_norm(d) for d in deltas)
        bound = norms[len(norms) // 2] if len(norms) >= 3 else None
        raw = [trust_score(d, ref, rule.max_norm_ratio, bound) for d in deltas]
        # Peer bar: how well an update agrees with the reference is judged against how well its peers
        # agree. Under mild skew honest cosines are high and a weakly aligned (e.g. label-flipped) update
        # stands out; under extreme skew all honest cosines are small and the bar drops with them.
        peer = max(statistics.median(raw), 0.0) if len(raw) >= 3 else 0.0
        return [c - rule.peer_fraction * peer if c >= 0 else c for c in raw]
    # leave-one-out
    weights = list(num_samples) if num_samples is not None else [1] * len(deltas)
    pairs = list(zip(deltas, weights, strict=True))
    fedavg = FedAvg()
    full = _value(rule, model_name, fedavg.aggregate(global_state, pairs), shard)
    out = []
    for i in range(len(pairs)):
        rest = pairs[:i] + pairs[i + 1 :]
        without = _value(
            rule, model_name, fedavg.aggregate(global_state, rest) if rest else global_state, shard
        )
        out.append(full - without)
    return out


def score(
    rule: ScoringRule,
    model_name: str,
    global_state: State,
    candidate: State,
    shard: Dataset,
    others: Sequence[State] = (),
    num_samples: Sequence[int] | None = None,
) -> float:
    """Score one candidate. For ``loo``, ``others`` are the round's other candidates and
    ``num_samples`` (if given) lists the sample counts of candidate first, then others."""
    return score_updates(rule, model_name, global_state, [candidate, *others], shard, num_samples)[0]


def accept(rule: ScoringRule, score_value: float) -> bool:
    """Acceptance: the score (e.g. the committee's median) reaches the rule's threshold."""
    assert rule.threshold is not None
    return bool(score_value >= rule.threshold)
