"""Provider behaviours for experiments: honest training and poisoning attacks.

A behaviour may change the data before training (``label_flip``, ``backdoor``) and/or the delta
after it (``sign_flip``, ``gaussian_noise``, ``scaling``, ``free_rider``). Round-aware attacks
(``needs_round``: ``alie``, ``min_max``, ``min_sum``, ``adaptive``, ``collude``) craft their delta
from a view of the round's honest deltas (``RoundView``). The in-process grid gives them the real
benign deltas (an omniscient attacker, the strongest case); in the provider network nobody does, and
the attacker estimates them from honest updates trained on disjoint chunks of its own data
(``own_view``). ``run_behaviour`` is the one call a simulated provider makes. These exist to measure
whether committee scoring catches bad updates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from fedcommittee.ml import state as st
from fedcommittee.ml.data import Dataset
from fedcommittee.ml.models import State
from fedcommittee.ml.train import TrainConfig, Update, local_train


@dataclass(frozen=True)
class Behaviour:
    """Base: honest. Subclasses override ``poison_data`` and/or ``poison_delta``."""

    name = "honest"
    needs_round = False  # True: the delta is crafted from a RoundView (see the module docstring)

    def poison_data(self, dataset: Dataset, seed: int) -> Dataset:
        return dataset

    def poison_delta(self, delta: State, seed: int) -> State:
        return delta

    def poison_round(self, delta: State, view: RoundView, seed: int) -> State:
        """Round-aware attacks: ``delta`` is the attacker's own honest delta."""
        return self.poison_delta(delta, seed)


@dataclass(frozen=True)
class RoundView:
    """What a round-aware attacker knows of the round: the honest deltas (or its estimate of them),
    the global model and, for the adaptive attacker, the committee's rule and data to try it on."""

    benign: Sequence[State]
    model_name: str
    global_state: State
    rule: object | None = None  # a scoring.ScoringRule
    surrogate: Dataset | None = None  # stands in for the members' shards (the attacker has no shard)
    probation: bool = False  # whether the committee judges this attacker at its probation bars


@dataclass(frozen=True)
class Honest(Behaviour):
    name = "honest"


@dataclass(frozen=True)
class LabelFlip(Behaviour):
    """Train on labels mapped y -> (n_classes - 1 - y) (or y -> target when ``target`` is set)."""

    name = "label_flip"
    target: int | None = None

    def poison_data(self, dataset: Dataset, seed: int) -> Dataset:
        if self.target is not None:
            return dataset.with_labels(torch.full_like(dataset.y, self.target))
        return dataset.with_labels(dataset.n_classes - 1 - dataset.y)


@dataclass(frozen=True)
class SignFlip(Behaviour):
    """Send -factor * delta: pushes the model up the loss surface."""

    name = "sign_flip"
    factor: float = 1.0

    def poison_delta(self, delta: State, seed: int) -> State:
        return st.scale(delta, -self.factor)


@dataclass(frozen=True)
class GaussianNoise(Behaviour):
    """Replace the delta by (or add) N(0, sigma^2) noise per coordinate."""

    name = "gaussian_noise"
    sigma: float = 0.1
    replace: bool = True

    def poison_delta(self, delta: State, seed: int) -> State:
        gen = torch.Generator().manual_seed(seed)
        out = {}
        for k in sorted(delta):
            noise = torch.randn(delta[k].shape, generator=gen, dtype=delta[k].dtype) * self.sigma
            out[k] = (noise if self.replace else delta[k] + noise).contiguous()
        return out


@dataclass(frozen=True)
class Scaling(Behaviour):
    """Boost the honest delta by ``factor`` (model-replacement style)."""

    name = "scaling"
    factor: float = 10.0

    def poison_delta(self, delta: State, seed: int) -> State:
        return st.scale(delta, self.factor)


@dataclass(frozen=True)
class FreeRider(Behaviour):
    """Does no work and sends the global model back (a zero delta) while claiming its sample count."""

    name = "free_rider"

    def poison_delta(self, delta: State, seed: int) -> State:
        return st.zeros_like(delta)


def _stack(deltas: Sequence[State]) -> torch.Tensor:
    if not deltas:
        raise ValueError("a round-aware attack needs at least one benign delta in its view")
    return torch.stack([st.flatten(d) for d in deltas])


def _largest(ok, hi: float = 10.0, steps: int = 20) -> float:
    """Largest gamma in [0, hi] with ok(gamma), by bisection (ok is assumed monotone)."""
    lo = 0.0
    if ok(hi):
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class ALIE(Behaviour):
    """ "A little is enough" (Baruch et al. 2019): mean - z x std of the benign deltas, coordinate-wise;
    z from the paper for ``n`` providers of which ``m`` collude (0.52 for 10 and 3)."""

    name = "alie"
    needs_round = True
    n: int = 10
    m: int = 3

    def poison_round(self, delta: State, view: RoundView, seed: int) -> State:
        b = _stack(view.benign)
        s = math.floor(self.n / 2 + 1) - self.m
        z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((self.n - s) / self.n)))
        std = b.std(dim=0, unbiased=False) if len(b) > 1 else torch.zeros(b.shape[1], dtype=b.dtype)
        return st.unflatten(b.mean(dim=0) - z * std, delta)


@dataclass(frozen=True)
class MinMax(Behaviour):
    """Min-max (Shejwalkar & Houmansadr, NDSS 2021): mean + gamma x (-unit mean), gamma as large as
    keeps the malicious delta's largest distance to a benign one within the benign deltas' largest
    pairwise distance. ``min_sum``: the sum of squared distances instead of the largest."""

    name = "min_max"
    needs_round = True

    def _fits(self, mal: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(torch.cdist(mal[None], b).max() <= torch.cdist(b, b).max())

    def poison_round(self, delta: State, view: RoundView, seed: int) -> State:
        b = _stack(view.benign)
        mean = b.mean(dim=0)
        p = -mean / max(float(torch.linalg.vector_norm(mean)), 1e-12)
        gamma = _largest(lambda g: self._fits(mean + g * p, b), hi=float(torch.cdist(b, b).max()) + 1e-12)
        return st.unflatten(mean + gamma * p, delta)


@dataclass(frozen=True)
class MinSum(MinMax):
    name = "min_sum"

    def _fits(self, mal: torch.Tensor, b: torch.Tensor) -> bool:
        return bool((torch.cdist(mal[None], b) ** 2).sum() <= (torch.cdist(b, b) ** 2).sum(dim=1).max())


@dataclass(frozen=True)
class Collude(Behaviour):
    """Colluding attackers send near-copies of one malicious delta: the sign-flipped benign mean at
    the median benign norm, plus noise of ``jitter`` x that norm (seeded per attacker) so that the
    copies are not byte-identical."""

    name = "collude"
    needs_round = True
    jitter: float = 0.01

    def poison_round(self, delta: State, view: RoundView, seed: int) -> State:
        b = _stack(view.benign)
        mean = b.mean(dim=0)
        size = float(torch.linalg.vector_norm(b, dim=1).median())
        mal = -mean / max(float(torch.linalg.vector_norm(mean)), 1e-12) * size
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(mal.shape, generator=gen, dtype=mal.dtype)
        return st.unflatten(mal + noise / float(torch.linalg.vector_norm(noise)) * self.jitter * size, delta)


@dataclass(frozen=True)
class Adaptive(Behaviour):
    """Knows the committee's rule: mixes the benign mean with its own sign-flipped delta, scaled to
    the median benign norm, taking the largest share of the malicious direction that the rule still
    accepts (with ``margin`` to spare) on its surrogate data, found by bisection. Without a view's
    rule (the provider network) it assumes the scoring rule named ``rule``."""

    name = "adaptive"
    needs_round = True
    margin: float = 0.05
    rule: str = "effect"

    def poison_round(self, delta: State, view: RoundView, seed: int) -> State:
        from fedcommittee.ml import scoring

        if view.surrogate is None:
            raise ValueError("the adaptive attacker needs surrogate data to try the committee's rule on")
        rule = view.rule if view.rule is not None else scoring.ScoringRule(self.rule)
        b = _stack(view.benign)
        size = float(torch.linalg.vector_norm(b, dim=1).median())
        good = b.mean(dim=0) / max(float(torch.linalg.vector_norm(b.mean(dim=0))), 1e-12)
        own = st.flatten(delta)
        bad = -own / max(float(torch.linalg.vector_norm(own)), 1e-12)

        def mix(share: float) -> State:
            v = (1 - share) * good + share * bad
            return st.unflatten(v / max(float(torch.linalg.vector_norm(v)), 1e-12) * size, delta)

        def passes(share: float) -> bool:
            # It knows its own standing (its verdicts are on the ledger), not the others'.
            flags = [view.probation] + [False] * len(view.benign)
            deltas = [mix(share), *view.benign]
            scores = scoring.score_updates(
                rule, view.model_name, view.global_state, deltas, view.surrogate, probation=flags
            )
            return scores[0] >= rule.threshold + self.margin

        return mix(_largest(passes, hi=1.0, steps=6))


def add_trigger(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """The backdoor's pixel trigger: a bright ``size`` x ``size`` square in the bottom-right corner."""
    out = x.clone()
    out[:, :, -size:, -size:] = float(x.max()) if x.numel() else 1.0
    return out


@dataclass(frozen=True)
class Backdoor(Behaviour):
    """Pixel-trigger backdoor: a ``fraction`` of the attacker's samples get the trigger and label
    ``target``; the delta is multiplied by ``boost`` (model replacement when > 1)."""

    name = "backdoor"
    target: int = 0
    fraction: float = 0.5
    boost: float = 1.0

    def poison_data(self, dataset: Dataset, seed: int) -> Dataset:
        gen = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(dataset), generator=gen)[: int(self.fraction * len(dataset))]
        x, y = dataset.x.clone(), dataset.y.clone()
        x[chosen] = add_trigger(x[chosen])
        y[chosen] = self.target
        return Dataset(x, y, dataset.n_classes)

    def poison_delta(self, delta: State, seed: int) -> State:
        return st.scale(delta, self.boost)


def backdoor_success(model: str, state: State, data: Dataset, target: int = Backdoor.target) -> float:
    """The backdoor's attack success rate: the share of ``data``'s samples of another class than
    ``target`` that the model classifies as ``target`` once they carry the trigger."""
    from .evaluate import predict_logits

    keep = data.y != target
    if not bool(keep.any()):
        raise ValueError(f"backdoor success needs samples of another class than the target {target}")
    pred = predict_logits(model, state, add_trigger(data.x[keep])).argmax(dim=1)
    return float((pred == target).double().mean())


BEHAVIOURS: dict[str, type[Behaviour]] = {
    b.name: b
    for b in (
        Honest,
        LabelFlip,
        SignFlip,
        GaussianNoise,
        Scaling,
        FreeRider,
        ALIE,
        MinMax,
        MinSum,
        Collude,
        Adaptive,
        Backdoor,
    )
}


def get_behaviour(name: str, **params: float) -> Behaviour:
    """Behaviour by name with parameters, e.g. ``get_behaviour('scaling', factor=5)``."""
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {name!r}; known: {sorted(BEHAVIOURS)}")
    return BEHAVIOURS[name](**params)  # type: ignore[arg-type]


def own_view(
    model_name: str, global_state: State, dataset: Dataset, cfg: TrainConfig, chunks: int = 3
) -> RoundView:
    """A round-aware attacker's estimate of the honest deltas when nobody shows it the round: honest
    updates trained on ``chunks`` disjoint parts of its own data."""
    n = len(dataset)
    parts = [dataset.subset(range(k * n // chunks, (k + 1) * n // chunks)) for k in range(chunks)]
    benign = [local_train(model_name, global_state, p, replace(cfg, seed=cfg.seed + k)).delta
              for k, p in enumerate(parts) if len(p)]  # fmt: skip
    return RoundView(benign, model_name, global_state, surrogate=dataset)


def run_behaviour(
    behaviour: Behaviour,
    model_name: str,
    global_state: State,
    dataset: Dataset,
    cfg: TrainConfig,
    view: RoundView | None = None,
) -> Update:
    """Local training as ``behaviour`` would do it (free riders skip the training entirely); a
    round-aware attack without a ``view`` estimates the round from its own data (``own_view``)."""
    if isinstance(behaviour, FreeRider):
        return Update(st.zeros_like(global_state), len(dataset), {"steps": 0.0})
    update = local_train(model_name, global_state, behaviour.poison_data(dataset, cfg.seed), cfg)
    if behaviour.needs_round:
        view = view or own_view(model_name, global_state, dataset, cfg)
        update.delta = behaviour.poison_round(update.delta, view, cfg.seed)
    else:
        update.delta = behaviour.poison_delta(update.delta, cfg.seed)
    return update
