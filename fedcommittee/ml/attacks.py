"""Provider behaviours for experiments: honest training and the classic poisoning attacks.

A behaviour may change the data before training (``label_flip``) and/or the delta after it
(``sign_flip``, ``gaussian_noise``, ``scaling``, ``free_rider``). ``run_behaviour`` is the one call a
simulated provider makes. These exist to measure whether committee scoring catches bad updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedcommittee.ml import state as st
from fedcommittee.ml.data import Dataset
from fedcommittee.ml.models import State
from fedcommittee.ml.train import TrainConfig, Update, local_train


@dataclass(frozen=True)
class Behaviour:
    """Base: honest. Subclasses override ``poison_data`` and/or ``poison_delta``."""

    name = "honest"

    def poison_data(self, dataset: Dataset, seed: int) -> Dataset:
        return dataset

    def poison_delta(self, delta: State, seed: int) -> State:
        return delta


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


BEHAVIOURS: dict[str, type[Behaviour]] = {
    b.name: b for b in (Honest, LabelFlip, SignFlip, GaussianNoise, Scaling, FreeRider)
}


def get_behaviour(name: str, **params: float) -> Behaviour:
    """Behaviour by name with parameters, e.g. ``get_behaviour('scaling', factor=5)``."""
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {name!r}; known: {sorted(BEHAVIOURS)}")
    return BEHAVIOURS[name](**params)  # type: ignore[arg-type]


def run_behaviour(
    behaviour: Behaviour, model_name: str, global_state: State, dataset: Dataset, cfg: TrainConfig
) -> Update:
    """Local training as ``behaviour`` would do it (free riders skip the training entirely)."""
    if isinstance(behaviour, FreeRider):
        return Update(st.zeros_like(global_state), len(dataset), {"steps": 0.0})
    update = local_train(model_name, global_state, behaviour.poison_data(dataset, cfg.seed), cfg)
    update.delta = behaviour.poison_delta(update.delta, cfg.seed)
    return update
