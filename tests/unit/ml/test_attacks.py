import pytest
import torch

from fedcommittee.ml import models
from fedcommittee.ml import state as st
from fedcommittee.ml.attacks import get_behaviour, run_behaviour
from fedcommittee.ml.train import TrainConfig

CFG = TrainConfig(steps=10, lr=0.1, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def setup(digits_split):
    tr = digits_split[0].subset(range(300))
    g = models.initial_state("mlp", 0)
    return g, tr, run_behaviour(get_behaviour("honest"), "mlp", g, tr, CFG)


def test_sign_flip_negates(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("sign_flip"), "mlp", g, tr, CFG)
    assert all(torch.equal(u.delta[k], -honest.delta[k]) for k in g)


def test_scaling_multiplies(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("scaling", factor=5.0), "mlp", g, tr, CFG)
    assert abs(st.l2_norm(u.delta) - 5 * st.l2_norm(honest.delta)) < 1e-4
    assert st.cosine(u.delta, honest.delta) > 0.9999


def test_free_rider_sends_zero_delta(setup):
    g, tr, _ = setup
    u = run_behaviour(get_behaviour("free_rider"), "mlp", g, tr, CFG)
    assert st.l2_norm(u.delta) == 0.0 and u.num_samples == len(tr)


def test_gaussian_noise_is_random_and_seeded(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("gaussian_noise", sigma=0.5), "mlp", g, tr, CFG)
    v = run_behaviour(get_behaviour("gaussian_noise", sigma=0.5), "mlp", g, tr, CFG)
    assert all(torch.equal(u.delta[k], v.delta[k]) for k in g)
    assert abs(st.cosine(u.delta, honest.delta)) < 0.1
    std = float(st.flatten(u.delta).std())
    assert 0.45 < std < 0.55


def test_label_flip_changes_labels_and_direction(setup):
    g, tr, honest = setup
    b = get_behaviour("label_flip")
    assert torch.equal(b.poison_data(tr, 0).y, 9 - tr.y)
    u = run_behaviour(b, "mlp", g, tr, CFG)
    assert st.cosine(u.delta, honest.delta) < 0.5
    assert torch.all(get_behaviour("label_flip", target=2).poison_data(tr, 0).y == 2)


def test_unknown_behaviour():
    with pytest.raises(ValueError):
        get_behaviour("polite")
