"""Server-side aggregation strategies behind one small interface (after Flower's Strategy).

``strategy.aggregate(global_state, updates)`` takes the round's accepted updates as
``(delta, num_samples)`` pairs and returns the next global state. Every strategy is deterministic:
inputs are put in a canonical order (by sha256 of their canonical bytes), sums run in float64 in that
fixed order, element by element, and are cast back once, so the same accepted set gives a
bitwise-identical result that an auditor can recompute.

A ``stateful`` strategy (FedAvgM, FedAdam) carries server state from one call to the next: its result
for round r depends on rounds 1..r. ``fedcommittee.policy`` keeps that state across rounds and rebuilds
it by replaying the ledger's earlier rounds. The names and parameter ranges a config may use are in
``ml.registry.STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from fedcommittee.ml import state as st
from fedcommittee.ml.serialize import state_hash

State = dict[str, torch.Tensor]
WeightedDelta = tuple[State, int]


def canonical_order(updates: Sequence[WeightedDelta]) -> list[WeightedDelta]:
    """Sort updates by (sha256 of delta bytes, num_samples): independent of arrival order."""
    keyed = [(state_hash(d), int(n), i) for i, (d, n) in enumerate(updates)]
    return [updates[i] for _, _, i in sorted(keyed)]


class Strategy(Protocol):
    name: str
    stateful: bool

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State: ...


def _check(updates: Sequence[WeightedDelta]) -> None:
    if not updates:
        raise ValueError("no updates to aggregate")
    if any(n <= 0 for _, n in updates):
        raise ValueError("num_samples must be positive")


def weighted_mean_delta(updates: Sequence[WeightedDelta], weighted: bool = True) -> dict[str, torch.Tensor]:
    """Sample-weighted mean of deltas, float64, in canonical order."""
    _check(updates)
    ordered = canonical_order(updates)
    total = float(sum(n for _, n in ordered)) if weighted else float(len(ordered))
    keys = sorted(ordered[0][0])
    out = {}
    for k in keys:
        acc = torch.zeros(ordered[0][0][k].shape, dtype=torch.float64)
        for d, n in ordered:
            acc += d[k].double() * ((n if weighted else 1) / total)
        out[k] = acc
    return out


def _apply(global_state: State, delta64: dict[str, torch.Tensor], lr: float = 1.0) -> State:
    return {k: (global_state[k].double() + lr * delta64[k]).to(global_state[k].dtype).contiguous()
            for k in sorted(global_state)}  # fmt: skip


class FedAvg:
    """McMahan et al.: global + sample-weighted mean of deltas (server_lr scales the step)."""

    name = "fedavg"
    stateful = False

    def __init__(self, server_lr: float = 1.0, weighted: bool = True) -> None:
        self.server_lr = server_lr
        self.weighted = weighted

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        return _apply(global_state, weighted_mean_delta(updates, self.weighted), self.server_lr)


class FedAvgM:
    """FedAvg with server momentum (Hsu et al. 2019): v = beta*v + mean_delta; w += lr*v. Stateful."""

    name = "fedavgm"
    stateful = True

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9) -> None:
        self.server_lr = server_lr
        self.momentum = momentum
        self.velocity: dict[str, torch.Tensor] | None = None

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        mean = weighted_mean_delta(updates)
        if self.velocity is None:
            self.velocity = {k: torch.zeros_like(v) for k, v in mean.items()}
        self.velocity = {k: self.momentum * self.velocity[k] + mean[k] for k in sorted(mean)}
        return _apply(global_state, self.velocity, self.server_lr)


class FedAdam:
    """Adaptive server optimizer (Reddi et al. 2021) on the pseudo-gradient -mean_delta. Stateful."""

    name = "fedadam"
    stateful = True

    def __init__(
        self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        self.server_lr, self.beta1, self.beta2, self.tau = server_lr, beta1, beta2, tau
        self.m: dict[str, torch.Tensor] | None = None
        self.v: dict[str, torch.Tensor] | None = None

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        mean = weighted_mean_delta(updates)
        if self.m is None or self.v is None:
            self.m = {k: torch.zeros_like(t) for k, t in mean.items()}
            self.v = {k: torch.full_like(t, self.tau**2) for k, t in mean.items()}
        step = {}
        for k in sorted(mean):
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * mean[k]
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * mean[k] ** 2
            step[k] = self.m[k] / (self.v[k].sqrt() + self.tau)
        return _apply(global_state, step, self.server_lr)


def _stack(ordered: Sequence[WeightedDelta], key: str) -> torch.Tensor:
    return torch.stack([d[key].double() for d, _ in ordered])


class Median:
    """Coordinate-wise median of deltas (Yin et al. 2018); even counts average the two middle values."""

    name = "median"
    stateful = False

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        _check(updates)
        ordered = canonical_order(updates)
        out = {}
        for k in sorted(global_state):
            s = _stack(ordered, k).sort(dim=0).values
            m = s.shape[0]
            out[k] = s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])
        return _apply(global_state, out)


class TrimmedMean:
    """Coordinate-wise mean after dropping the ``floor(beta*m)`` largest and smallest values."""

    name = "trimmed_mean"
    stateful = False

    def __init__(self, beta: float = 0.1) -> None:
        if not 0 <= beta < 0.5:
            raise ValueError("beta must be in [0, 0.5)")
        self.beta = beta

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        _check(updates)
        m = len(updates)
        t = int(self.beta * m)
        ordered = canonical_order(updates)
        out = {}
        for k in sorted(global_state):
            kept = _stack(ordered, k).sort(dim=0).values[t : m - t]
            # Summed row by row (a reduction along dim 0 may order its additions differently).
            acc = torch.zeros_like(kept[0])
            for row in kept:
                acc += row
            out[k] = acc / kept.shape[0]
        return _apply(global_state, out)


class Krum:
    """Krum / Multi-Krum (Blanchard et al. 2017): score each delta by the summed squared distance to
    its m - f - 2 nearest others; average (sample-weighted) the ``multi`` lowest-scoring ones."""

    name = "krum"
    stateful = False

    def __init__(self, f: int = 1, multi: int = 1) -> None:
        self.f = f
        self.multi = multi

    def select(self, ordered: Sequence[WeightedDelta]) -> list[int]:
        """Indices (into ``ordered``, already in canonical order) of the selected updates."""
        vecs = torch.stack([st.flatten(d).double() for d, _ in ordered])
        m = len(ordered)
        closest = max(m - self.f - 2, 1)
        # Float64 and direct differences (not the matrix-product shortcut, which cancels digits):
        # the choice must not flip between machines on a near tie.
        d2 = torch.cdist(vecs, vecs, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        scores = []
        for i in range(m):
            others = torch.cat([d2[i, :i], d2[i, i + 1 :]]).sort().values
            scores.append((float(others[:closest].sum()), i))
        return [i for _, i in sorted(scores)[: max(1, min(self.multi, m))]]

    def aggregate(self, global_state: State, updates: Sequence[WeightedDelta]) -> State:
        _check(updates)
        ordered = canonical_order(updates)
        chosen = [ordered[i] for i in self.select(ordered)]
        return _apply(global_state, weighted_mean_delta(chosen))


STRATEGIES: dict[str, type] = {s.name: s for s in (FedAvg, FedAvgM, FedAdam, Median, TrimmedMean, Krum)}


def get_strategy(name: str, **params: float) -> Strategy:
    """Strategy by name: fedavg, fedavgm, fedadam, median, trimmed_mean, krum (params as keywords)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name](**params)
