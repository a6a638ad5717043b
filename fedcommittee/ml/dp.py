"""Optional differential privacy at the provider: clip the update, add Gaussian noise, count epsilon.

This is user-level DP on the released delta (one release per round): the delta is clipped to L2 norm
``clip`` and N(0, (noise_multiplier * clip)^2) noise is added per coordinate. The privacy budget is
computed by Opacus's RDP accountant (no hand-written accounting), with one accountant step per
released update and ``sample_rate`` = the probability that the provider takes part in a round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from opacus.accountants import RDPAccountant

from fedcommittee.ml import state as st
from fedcommittee.ml.models import State


def clip_delta(delta: State, clip: float) -> tuple[State, float]:
    """Scale ``delta`` so its global L2 norm is at most ``clip``; return (clipped, original norm)."""
    if clip <= 0:
        raise ValueError("clip must be positive")
    norm = st.l2_norm(delta)
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    return st.scale(delta, factor), norm


def add_gaussian_noise(delta: State, std: float, seed: int) -> State:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(delta):
        noise = torch.randn(delta[k].shape, generator=gen, dtype=delta[k].dtype) * std
        out[k] = (delta[k] + noise).contiguous()
    return out


def epsilon(
    noise_multiplier: float, steps: int, sample_rate: float = 1.0, target_delta: float = 1e-5
) -> float:
    """Epsilon after ``steps`` Gaussian releases, from Opacus's RDP accountant."""
    if steps <= 0:
        return 0.0
    acc = RDPAccountant()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=target_delta))


@dataclass
class DPProvider:
    """Stateful helper for one provider: privatizes each delta and tracks the budget spent."""

    clip: float
    noise_multiplier: float
    sample_rate: float = 1.0
    target_delta: float = 1e-5
    releases: int = field(default=0)

    def privatize(self, delta: State, seed: int) -> State:
        clipped, _ = clip_delta(delta, self.clip)
        self.releases += 1
        if self.noise_multiplier == 0:
            return clipped
        return add_gaussian_noise(clipped, self.noise_multiplier * self.clip, seed)

    def epsilon(self) -> float:
        """Budget spent so far (inf when noise_multiplier is 0)."""
        if self.noise_multiplier == 0:
            return float("inf") if self.releases else 0.0
        return epsilon(self.noise_multiplier, self.releases, self.sample_rate, self.target_delta)
