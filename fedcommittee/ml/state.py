"""Arithmetic on state dicts (name -> tensor): the shared vocabulary of updates and aggregates.

An update is a *delta*: local weights minus the global weights the provider started from. Keeping
these helpers in one place means scoring, aggregation, attacks and DP all agree on iteration order
(sorted names) and on float handling.
"""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


def subtract(a: State, b: State) -> State:
    """a - b, key by key (the keys must match)."""
    _same_keys(a, b)
    return {k: (a[k] - b[k]).contiguous() for k in sorted(a)}


def add_scaled(state: State, delta: State, scale: float = 1.0) -> State:
    """state + scale * delta, computed in float64 and cast back to each tensor's dtype."""
    _same_keys(state, delta)
    return {
        k: (state[k].double() + scale * delta[k].double()).to(state[k].dtype).contiguous()
        for k in sorted(state)
    }


def scale(delta: State, factor: float) -> State:
    return {k: (delta[k] * factor).contiguous() for k in sorted(delta)}


def zeros_like(state: State) -> State:
    return {k: torch.zeros_like(state[k]) for k in sorted(state)}


def flatten(delta: State) -> torch.Tensor:
    """All tensors concatenated in sorted-name order, as one float64 vector."""
    return torch.cat([delta[k].detach().reshape(-1).double() for k in sorted(delta)])


def unflatten(vector: torch.Tensor, like: State) -> State:
    out: State = {}
    offset = 0
    for k in sorted(like):
        n = like[k].numel()
        out[k] = vector[offset : offset + n].reshape(like[k].shape).to(like[k].dtype).contiguous()
        offset += n
    return out


def l2_norm(delta: State) -> float:
    return float(torch.linalg.vector_norm(flatten(delta)))


def cosine(a: State, b: State) -> float:
    va, vb = flatten(a), flatten(b)
    denom = float(torch.linalg.vector_norm(va) * torch.linalg.vector_norm(vb))
    return 0.0 if denom == 0.0 else float(va @ vb) / denom


def clone(state: State) -> State:
    return {k: state[k].detach().clone().contiguous() for k in sorted(state)}


def _same_keys(a: State, b: State) -> None:
    if set(a) != set(b):
        raise KeyError(f"state keys differ: {sorted(set(a) ^ set(b))}")
