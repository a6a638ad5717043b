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
- ``effect``: what the update does for the model the consortium gets, on the member's shard. Its
  step in the round's FedAvg aggregate (alone, as in gossip mode: 1/``damping`` of it from the
  base) must pass two paired tests on the shard's per-sample losses: the aggregate with the update
  is not worse than with the update negated by more than ``sym_se`` standard errors (the symmetric
  test: the curvature cancels, so an overshooting aggregate cannot make a sign flip look useful, and
  exactly one of an update and its negation passes at 0), and not worse than the aggregate without
  it by more than ``loo_se`` standard errors (leave-one-out: catches harm the symmetric test cannot
  see). Both are measured where the other updates already took the model, so a skewed honest update
  is judged by what it adds to them, not by how it looks from a balanced reference. Scores are
  ratios of the loss difference and its standard error, so no threshold drifts as losses shrink. A
  norm outside [yardstick / max_norm_ratio, yardstick x max_norm_ratio] (the median candidate norm,
  or the member's reference update when fewer than 3 are scored together) scores below -1 and stays
  out of the aggregates: scaling buys no influence and an empty update is refused. With ``gross_se``
  (off by default; a screening variant of the committee grid) updates that lose to their negation
  by more than that many standard errors leave the aggregate too, and the others are tested again
  at the aggregate of the rest: in-bound attackers must not set the point every update is judged at.
  With ``guard_se`` (off by default) a point of the test worse on the member's shard than the global
  model by more than that many standard errors is rebuilt from the updates most useful alone, and
  every update is tested there: large in-bound backdoor updates made that point overshoot, every
  honest update then lost to its negation and the model stalled at its initialization (docs/ml.md,
  "The backdoor's stall").
  With ``twin_ratio`` (off by default) an update nearly repeating an earlier one of the round (their
  distance, relative to the longer, under that fraction of the round's median such distance) scores
  below -1, as the contract refuses an exact repeat: copies, the signature of colluders (ALIE,
  min-max) or of one party behind several identities, buy no influence beyond the first, and the first
  is judged as any update. The copies stay in the aggregate every update is tested at, so the screen
  changes no other update's test (taken out, they moved that point along the honest updates, and
  there the kept copy of a sign-flipped mean passed in later rounds: docs/ml.md, "Near-copies").
  With ``probation_rounds`` k > 0 a provider whose update was rejected in one of the last k rounds is
  judged at the ``probation_`` bars (``probation_cos_floor``, ``probation_sym_se``,
  ``probation_rescue_se``: at least as strict as the others): the first bars can then be lenient
  enough for every honest skewed update, and an attacker once caught meets the tight ones. Who is on
  probation is the caller's to say (``score_updates(..., probation=...)``, ``ScoringRule.on_probation``):
  it is read from the ledger's verdicts of the earlier rounds, so the score stays reproducible. With
  ``probation_until_accepted`` a provider none of whose updates has been accepted yet is on probation
  too.

``metric`` is "loss" (the negative cross-entropy, smooth even on small shards) or "accuracy".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fedcommittee.ml import state as st
from fedcommittee.ml.aggregate import FedAvg
from fedcommittee.ml.data import Dataset
from fedcommittee.ml.evaluate import evaluate, per_sample_loss
from fedcommittee.ml.models import State
from fedcommittee.ml.train import TrainConfig, local_train

RULES = ("absolute", "damped", "loo", "trust", "effect")
REFERENCE_RULES = ("trust", "effect")  # the rules that train the member's own reference update


@dataclass(frozen=True)
class ScoringRule:
    name: str = "trust"
    metric: str = "loss"  # "loss" (score uses -loss) or "accuracy"
    threshold: float | None = None  # accept iff score >= threshold; None = the rule's default below
    damping: float = 10.0  # damped, effect: n, the expected number of updates aggregated per round
    max_norm_ratio: float = 3.0  # trust: deltas longer than this x the median candidate norm score < 0
    peer_fraction: float = 0.25  # trust: score is cosine minus this x the round's median cosine (if > 0)
    cos_floor: float = 0.01  # effect: below this cosine to the reference an update must prove useful
    rescue_se: float = 1.0  # effect: ... by being better than its negation by this many SEs
    sym_se: float = 1.0  # effect: the update may lose to its negation by at most this many SEs
    loo_se: float = float("inf")  # effect: the aggregate without it may be better by this many SEs
    gross_se: float = float("inf")  # effect: updates losing to their negation by more leave the test point
    guard_se: float = float("inf")  # effect: the point of the test may be worse than the global model
    # by this many SEs before it is rebuilt (off: inf)
    twin_ratio: float = 0.0  # effect: an update this close to an earlier one, relative to the round's
    # median pairwise distance, is a near-copy (off: 0)
    probation_rounds: int = 0  # effect: a provider rejected within this many rounds is on probation (0: off)
    probation_cos_floor: float = 0.01  # effect: cos_floor, sym_se and rescue_se for one on probation
    probation_sym_se: float = 1.0
    probation_rescue_se: float = 1.0
    probation_until_accepted: bool = False  # effect: no update accepted yet is probation too
    reference: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20, lr=0.05, batch_size=32))

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"unknown scoring rule {self.name!r}; known: {RULES}")
        if self.metric not in ("loss", "accuracy"):
            raise ValueError("metric must be 'loss' or 'accuracy'")
        if self.gross_se < self.sym_se:
            # An update taken out of the point of the test must also fail the test, or it would be
            # aggregated without having been in the aggregate every other update was judged at.
            raise ValueError(f"gross_se ({self.gross_se}) must be at least sym_se ({self.sym_se})")
        if self.gross_se != float("inf") and self.guard_se != float("inf"):
            # Two ways of keeping harmful updates out of the point of the test: one at a time.
            raise ValueError("gross_se and guard_se cannot both be set")
        if not 0.0 <= self.twin_ratio < 1.0:
            # At 1 or more a typical pair of honest updates would count as copies of each other.
            raise ValueError(f"twin_ratio must be in [0, 1) (0: off), got {self.twin_ratio}")
        if self.probation_rounds < 0:
            raise ValueError(f"probation_rounds must be 0 (off) or more, got {self.probation_rounds}")
        if self.probation_until_accepted and not self.probation_rounds:
            raise ValueError("probation_until_accepted needs probation_rounds (1 or more)")
        if self.probation_rounds and not self._probation_is_stricter():
            # Looser bars after a rejection would reward being caught.
            raise ValueError(
                "the probation bars must be at least as strict as the others: probation_cos_floor >= "
                f"cos_floor ({self.probation_cos_floor} vs {self.cos_floor}), probation_sym_se <= sym_se "
                f"({self.probation_sym_se} vs {self.sym_se}), probation_rescue_se >= rescue_se "
                f"({self.probation_rescue_se} vs {self.rescue_se})"
            )
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLDS[self.name])

    def _probation_is_stricter(self) -> bool:
        return (
            self.probation_cos_floor >= self.cos_floor
            and self.probation_sym_se <= self.sym_se
            and self.probation_rescue_se >= self.rescue_se
        )

    def on_probation(self, rejected_lately: bool, ever_accepted: bool) -> bool:
        """Whether a provider is on probation: an update of its was rejected in the last
        ``probation_rounds`` rounds, or, with ``probation_until_accepted``, none has been accepted
        yet (the lenient bars are earned at the tight ones: an attacker's first updates, sent while
        the model is near its initialization, meet the tight bars)."""
        if not self.probation_rounds:
            return False
        return rejected_lately or (self.probation_until_accepted and not ever_accepted)

    def bars(self, on_probation: bool = False) -> tuple[float, float, float]:
        """The effect rule's (cos_floor, sym_se, rescue_se) for a provider on probation or not."""
        if on_probation and self.probation_rounds:
            return self.probation_cos_floor, self.probation_sym_se, self.probation_rescue_se
        return self.cos_floor, self.sym_se, self.rescue_se


# absolute: plain accuracy/-loss floor is data-dependent, 0.0 only stops nothing; set it explicitly.
# trust: 0.01 sits above the cosine of pure noise or a zero delta (~0) and below honest skewed updates.
DEFAULT_THRESHOLDS = {"absolute": 0.0, "damped": 0.0, "loo": 0.0, "trust": 0.01, "effect": 0.0}

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


def norm_penalty(norm: float, yardstick: float, ratio: float) -> float | None:
    """A score below -1 for a norm outside [yardstick / ratio, yardstick * ratio], else None."""
    if norm > yardstick * ratio:
        return -1.0 - (norm / (yardstick * ratio) - 1.0)
    if norm < yardstick / ratio:
        return -1.0 - (1.0 - norm * ratio / yardstick) if yardstick > 0 else -2.0
    return None


def standard_error(worse: torch.Tensor) -> float:
    """The standard error of the mean of paired per-sample differences (0 for fewer than two)."""
    return float(worse.std(unbiased=True)) / len(worse) ** 0.5 if len(worse) > 1 else 0.0


def se_margin(worse: torch.Tensor, k: float) -> float:
    """In [-1, 1], >= 0 iff the mean of the paired per-sample loss differences ``worse`` is at most
    ``k`` standard errors above 0 (k = inf: the test is off). A ratio, so it keeps its meaning as
    losses shrink over training."""
    if k == float("inf"):
        return 1.0
    mean = float(worse.mean())
    bar = k * standard_error(worse)  # k < 0: the update must be better by -k standard errors
    return 1.0 if abs(bar) + abs(mean) == 0.0 else (bar - mean) / (abs(bar) + abs(mean))


# Per-sample loss differences of the aggregate with the update (vs negated, vs without), and the
# update's cosine to the member's reference.
Paired = tuple[torch.Tensor, torch.Tensor, float]


def effect_tests(
    rule: ScoringRule,
    model_name: str,
    global_state: State,
    deltas: Sequence[State],
    shard: Dataset,
    num_samples: Sequence[int],
    reference: State | None = None,
) -> list[float | Paired]:
    """Per update: its norm penalty (a score below -1), or the paired per-sample loss differences of
    the aggregate with it minus with it negated, and minus without it, and its cosine to the member's
    reference update (see the module docstring; ``reference`` as in ``score_updates``)."""
    ref = reference if reference is not None else reference_delta(rule, model_name, global_state, shard)
    norms = [st.l2_norm(d) for d in deltas]
    # With >= 3 candidates the median norm is robust (a minority of attackers cannot move it);
    # with fewer, the member's own reference update sets the scale.
    yardstick = statistics.median(norms) if len(deltas) >= 3 else st.l2_norm(ref)
    out: list = [norm_penalty(n, yardstick, rule.max_norm_ratio) for n in norms]
    inside = [i for i, pen in enumerate(out) if pen is None]
    # Near-copies are scored below -1 but stay in the point of the test: no other update's test moves.
    copies = near_copies(deltas, inside, rule.twin_ratio) if rule.twin_ratio > 0 and len(inside) >= 3 else {}
    if len(deltas) == 1:  # alone (gossip): the step it would take in an aggregate of ``damping``
        weights = {i: 1.0 / rule.damping for i in inside}
    else:  # norm violators stay out: one boosted update would dominate every aggregate
        weights = _sample_weights(inside, num_samples)
    if len(inside) >= 3 and rule.guard_se != float("inf"):
        tests = _guarded_tests(rule, model_name, global_state, deltas, shard, weights, num_samples, ref)
    else:
        tests = _paired_tests(rule, model_name, global_state, deltas, shard, weights, ref)
    gross = [i for i in tests if t_stat(tests[i][0]) > rule.gross_se]
    if gross and len(gross) < len(tests):
        # Updates that grossly harm the aggregate leave it, and the others are tested again where the
        # rest take the model: in-bound attackers must not set the point every update is judged at.
        rest = _sample_weights([i for i in tests if i not in gross], num_samples)
        tests.update(_paired_tests(rule, model_name, global_state, deltas, shard, rest, ref))
    for i, test in tests.items():
        out[i] = copies.get(i, test)
    return out


def near_copies(deltas: Sequence[State], inside: Sequence[int], ratio: float) -> dict[int, float]:
    """``twin_ratio``: the updates of ``inside`` (in submission order) that nearly repeat an earlier
    one, each with a score below -1 (the nearer, the lower). Two updates' distance is taken relative
    to the longer of them, and compared with ``ratio`` x the median of that over every pair of
    ``inside``: honest updates trained on different data are not that near one another (over the
    committee grid's clean rounds, IID data included, the nearest honest pair sat at 0.43 of the
    median), while copies sit at 0 and jittered copies at about their jitter. The earliest of a group
    is kept, so a late copy cannot get the update it copies rejected."""
    flat = {i: st.flatten(deltas[i]).double() for i in inside}
    norms = {i: float(torch.linalg.vector_norm(flat[i])) for i in inside}
    apart = {
        (i, j): float(torch.linalg.vector_norm(flat[i] - flat[j])) / max(norms[i], norms[j], 1e-12)
        for k, i in enumerate(inside)
        for j in inside[k + 1 :]
    }
    bar = ratio * statistics.median(apart.values())
    out = {}
    for k, j in enumerate(inside[1:], start=1):
        nearest = min(apart[i, j] for i in inside[:k])
        if nearest < bar:
            out[j] = -1.0 - (1.0 - nearest / bar)
    return out


def _guarded_tests(rule, model_name, global_state, deltas, shard, weights, num_samples, ref):
    """``guard_se``: when the aggregate of all in-bound updates is worse on the shard than the global
    model by more than ``guard_se`` standard errors, no update can be judged there (from a point that
    overshoots every step back looks useful and every step on harmful: in-bound backdoor updates
    stalled the model that way). The point is then rebuilt (``_rebuilt_point``) and every update is
    tested there, those outside it as if they joined it. One more forward pass per round (the global
    model's losses); about n + 2 more where the point is rebuilt."""
    base = per_sample_loss(model_name, global_state, shard)
    full = _aggregate(global_state, deltas, weights)
    at_full = per_sample_loss(model_name, full, shard)
    if t_stat(at_full - base) <= rule.guard_se:
        return _paired_tests(
            rule, model_name, global_state, deltas, shard, weights, ref, at_point=(full, at_full)
        )
    point, at_point = _rebuilt_point(
        rule, model_name, global_state, deltas, shard, weights, num_samples, base
    )
    total = sum(num_samples[i] for i in point)
    outsiders = [(i, num_samples[i] / (total + num_samples[i])) for i in weights if i not in point]
    return _paired_tests(rule, model_name, global_state, deltas, shard, point, ref, outsiders, at_point)


def _rebuilt_point(rule, model_name, global_state, deltas, shard, weights, num_samples, base):
    """The updates in the order of what each alone (at its weight) does at the global model, most
    useful first; the point is the aggregate of the longest such prefix (2 or more) not worse than the
    global model by ``guard_se``, else of the least harmful prefix. Returns its sample weights, and the
    aggregate with the shard's per-sample losses there."""

    def harm(losses: torch.Tensor) -> float:
        return t_stat(losses - base)

    alone = {i: harm(per_sample_loss(model_name, st.add_scaled(global_state, deltas[i], w), shard))
             for i, w in weights.items()}  # fmt: skip
    order = sorted(alone, key=lambda i: (alone[i], i))
    prefixes = []
    for k in range(len(order) - 1, 1, -1):  # the longest first: the first that passes is the point
        members = _sample_weights(order[:k], num_samples)
        point = _aggregate(global_state, deltas, members)
        losses = per_sample_loss(model_name, point, shard)
        t = harm(losses)
        if t <= rule.guard_se:
            return members, (point, losses)
        prefixes.append((t, k, members, (point, losses)))
    _, _, members, at_point = min(prefixes, key=lambda p: p[:2])  # a tie goes to the shorter
    return members, at_point


def _sample_weights(members: Sequence[int], num_samples: Sequence[int]) -> dict[int, float]:
    total = float(sum(num_samples[i] for i in members))
    return {i: num_samples[i] / total for i in members}


def _aggregate(global_state: State, deltas: Sequence[State], weights: dict[int, float]) -> State:
    step = st.zeros_like(global_state)
    for i, w in weights.items():
        step = st.add_scaled(step, deltas[i], w)
    return st.add_scaled(global_state, step)


def _paired_tests(rule, model_name, global_state, deltas, shard, weights, ref, outsiders=(), at_point=None):
    """The paired tests of each update in ``weights`` at the aggregate of them all (``at_point``: that
    aggregate and the shard's per-sample losses there, where already computed). ``outsiders``: updates
    outside the aggregate, each with the weight it would have in it, tested there as if it joined (the
    point plus and minus its step)."""
    if at_point is None:
        full = _aggregate(global_state, deltas, weights)
        with_it = per_sample_loss(model_name, full, shard)
    else:
        full, with_it = at_point
    loo_on = rule.loo_se != float("inf")  # off: skip the leave-one-out forward pass
    out: dict[int, Paired] = {}
    for i, w in weights.items():
        negated = per_sample_loss(model_name, st.add_scaled(full, deltas[i], -2.0 * w), shard)
        without = (
            per_sample_loss(model_name, st.add_scaled(full, deltas[i], -w), shard) if loo_on else with_it
        )
        out[i] = (with_it - negated, with_it - without, st.cosine(deltas[i], ref))
    for i, w in outsiders:
        joined = per_sample_loss(model_name, st.add_scaled(full, deltas[i], w), shard)
        negated = per_sample_loss(model_name, st.add_scaled(full, deltas[i], -w), shard)
        without = joined - with_it if loo_on else torch.zeros_like(joined)
        out[i] = (joined - negated, without, st.cosine(deltas[i], ref))
    return out


def t_stat(worse: torch.Tensor) -> float:
    """Mean over standard error of paired differences (0 when they do not vary)."""
    se = standard_error(worse)
    return float(worse.mean()) / se if se > 0 else 0.0


def effect_score(test: float | Paired, rule: ScoringRule, on_probation: bool = False) -> float:
    """An update pointing away from the reference (cosine < cos_floor) must be better than its
    negation by rescue_se standard errors; one pointing along it must not be worse by sym_se (the
    probation bars for a provider on probation)."""
    if isinstance(test, float):
        return test
    sym, loo, cos = test
    cos_floor, sym_se, rescue_se = rule.bars(on_probation)
    k = sym_se if cos >= cos_floor else -rescue_se
    return min(se_margin(sym, k), se_margin(loo, rule.loo_se))


def score_updates(
    rule: ScoringRule,
    model_name: str,
    global_state: State,
    deltas: Sequence[State],
    shard: Dataset,
    num_samples: Sequence[int] | None = None,
    reference: State | None = None,
    probation: Sequence[bool] | None = None,
) -> list[float]:
    """Scores of all candidate deltas of a round (``num_samples`` weights the loo aggregates), in
    submission order (with ``twin_ratio`` the earliest of near-copies is the one kept).

    ``reference``: the member's own update (``reference_delta``) where it was computed ahead, e.g.
    while the round's updates were still arriving; it depends only on the rule, the global model and
    the shard, so the scores are the same either way. ``probation``: per delta, whether its provider
    is on probation (``effect`` with ``probation_rounds``; None: nobody is)."""
    if not deltas:
        return []
    if probation is not None and len(probation) != len(deltas):
        raise ValueError(f"probation has {len(probation)} flags for {len(deltas)} deltas")
    if rule.name == "absolute":
        return [_value(rule, model_name, st.add_scaled(global_state, d), shard) for d in deltas]
    if rule.name == "damped":
        base = _value(rule, model_name, global_state, shard)
        return [_value(rule, model_name, st.add_scaled(global_state, d, 1.0 / rule.damping), shard) - base
                for d in deltas]  # fmt: skip
    if rule.name == "effect":
        sizes = list(num_samples) if num_samples is not None else [1] * len(deltas)
        flags = list(probation) if probation is not None else [False] * len(deltas)
        tests = effect_tests(rule, model_name, global_state, deltas, shard, sizes, reference)
        return [effect_score(t, rule, p) for t, p in zip(tests, flags, strict=True)]
    if rule.name == "trust":
        ref = reference if reference is not None else reference_delta(rule, model_name, global_state, shard)
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
