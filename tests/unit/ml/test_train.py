import torch

from fedcommittee.ml import models
from fedcommittee.ml import state as st
from fedcommittee.ml.evaluate import evaluate
from fedcommittee.ml.train import TrainConfig, local_train


def test_deterministic_given_seed(digits_split):
    tr = digits_split[0]
    g = models.initial_state("mlp", 0)
    cfg = TrainConfig(steps=15, lr=0.1, batch_size=16, seed=5)
    a, b = local_train("mlp", g, tr, cfg), local_train("mlp", g, tr, cfg)
    assert all(torch.equal(a.delta[k], b.delta[k]) for k in g)
    c = local_train("mlp", g, tr, TrainConfig(steps=15, lr=0.1, batch_size=16, seed=6))
    assert not torch.equal(a.delta["fc1.weight"], c.delta["fc1.weight"])
    d = models.initial_state("cnn-small", 0)  # dropout-free CNN path too
    assert a.num_samples == len(tr) and a.metrics["steps"] == 15
    assert set(d) == set(models.state_layout("cnn-small"))


def test_training_improves_accuracy(digits_split):
    tr, va = digits_split
    g = models.initial_state("mlp", 0)
    before = evaluate("mlp", g, va).accuracy
    for opt, lr in (("sgd", 0.2), ("adam", 0.01)):
        u = local_train("mlp", g, tr, TrainConfig(epochs=2, lr=lr, momentum=0.5 if opt == "sgd" else 0.0,
                                                  optimizer=opt, batch_size=32))  # fmt: skip
        assert evaluate("mlp", st.add_scaled(g, u.delta), va).accuracy > max(before + 0.5, 0.8)
        assert u.metrics["steps"] == 2 * ((len(tr) + 31) // 32)


def test_fedprox_keeps_delta_small(digits_split):
    tr = digits_split[0]
    g = models.initial_state("mlp", 0)
    plain = local_train("mlp", g, tr, TrainConfig(steps=60, lr=0.2, seed=1))
    prox = local_train("mlp", g, tr, TrainConfig(steps=60, lr=0.2, seed=1, prox_mu=1.0))
    assert st.l2_norm(prox.delta) < 0.9 * st.l2_norm(plain.delta)


def test_paper_cnn_trains_one_step():
    from fedcommittee.ml.data import from_arrays

    gen = torch.Generator().manual_seed(0)
    ds = from_arrays(torch.rand(8, 1, 28, 28, generator=gen).numpy(), torch.arange(8) % 10, n_classes=10)
    g = models.initial_state("cnn-fmnist", 0)
    u = local_train("cnn-fmnist", g, ds, TrainConfig(steps=1, batch_size=8))
    assert st.l2_norm(u.delta) > 0 and set(u.delta) == set(g)
