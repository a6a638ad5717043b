import pytest
import torch

from fedcommittee.ml import dp
from fedcommittee.ml import state as st


def _delta(scale):
    gen = torch.Generator().manual_seed(0)
    return {"a": torch.randn(100, generator=gen) * scale, "b": torch.randn(3, 4, generator=gen) * scale}


def test_clipping_bounds_norm():
    big = _delta(10.0)
    clipped, norm = dp.clip_delta(big, 1.0)
    assert norm > 10 and abs(st.l2_norm(clipped) - 1.0) < 1e-5
    small = _delta(0.001)
    same, _ = dp.clip_delta(small, 1.0)
    assert all(torch.equal(same[k], small[k]) for k in small)


def test_epsilon_grows_with_steps_and_shrinks_with_noise():
    e = [dp.epsilon(1.0, s) for s in (1, 10, 100)]
    assert 0 < e[0] < e[1] < e[2]
    assert dp.epsilon(2.0, 10) < dp.epsilon(1.0, 10)
    assert dp.epsilon(1.0, 10, sample_rate=0.1) < dp.epsilon(1.0, 10, sample_rate=1.0)
    assert dp.epsilon(1.0, 0) == 0.0


def test_dp_provider_noise_and_accounting():
    p = dp.DPProvider(clip=1.0, noise_multiplier=1.0)
    assert p.epsilon() == 0.0
    out = p.privatize(_delta(10.0), seed=1)
    noise_std = float(st.flatten(out).std())
    assert 0.8 < noise_std < 1.2  # noise N(0, (1.0 * 1.0)^2) dominates the clipped unit-norm delta
    e1 = p.epsilon()
    p.privatize(_delta(10.0), seed=2)
    assert p.epsilon() > e1 > 0 and p.releases == 2
    assert dp.DPProvider(clip=1.0, noise_multiplier=0.0).epsilon() == 0.0


def test_clip_rejects_nonpositive():
    with pytest.raises(ValueError):
        dp.clip_delta(_delta(1.0), 0.0)
