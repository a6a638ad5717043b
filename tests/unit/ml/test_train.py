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


def _sgd_run(opt_factory, steps: int = 12) -> list[torch.Tensor]:
    """``steps`` minibatches of cnn-small from the same start and batches, with ``opt_factory``."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28), torch.arange(64) % 10
    model = models.loaded("cnn-small", models.initial_state("cnn-small", 0))
    params = list(model.parameters())
    opt = opt_factory(params)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, 64, (16,), generator=gen)
        loss = F.cross_entropy(model(models.as_input(x[idx])), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in params]


def test_sgd_is_torch_sgd_bit_for_bit():
    from fedcommittee.ml.train import Sgd

    for momentum, decay in ((0.0, 0.0), (0.9, 0.0), (0.9, 5e-4), (0.5, 1e-2)):
        ours = _sgd_run(lambda p, m=momentum, d=decay: Sgd(p, lr=0.05, momentum=m, weight_decay=d))
        theirs = _sgd_run(
            lambda p, m=momentum, d=decay: torch.optim.SGD(p, lr=0.05, momentum=m, weight_decay=d)
        )
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)), (momentum, decay)
    start = _sgd_run(lambda p: Sgd(p, lr=0.0, momentum=0.9, weight_decay=0.0), steps=1)
    assert not all(torch.equal(a, b) for a, b in zip(ours, start, strict=True))  # it did train


def test_sgd_training_does_not_import_dynamo(tmp_path):
    """The reason ``Sgd`` exists: torch.optim's first optimizer imports torch._dynamo (a second of
    CPU in every agent process). Checked in a fresh interpreter, as an agent starts."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from fedcommittee.ml import models\n"
        "from fedcommittee.ml.data import from_arrays\n"
        "from fedcommittee.ml.train import TrainConfig, local_train\n"
        "ds = from_arrays(torch.rand(8, 1, 28, 28).numpy(), torch.arange(8) % 10, n_classes=10)\n"
        "g = models.initial_state('cnn-small', 0)\n"
        "local_train('cnn-small', g, ds, TrainConfig(steps=2, batch_size=4, momentum=0.9))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_label_log_prior_is_smoothed_log_frequency():
    from fedcommittee.ml.train import label_log_prior

    prior = label_log_prior(torch.tensor([0, 0, 0, 2]), 4)  # class 1 and 3 absent
    assert torch.allclose(prior.exp(), torch.tensor([4.0, 1.0, 2.0, 1.0]) / 8)


def test_logit_adjust_is_a_no_op_on_balanced_data(digits_split):
    # Equal class counts make the offset one constant for every class, which softmax ignores.
    tr = digits_split[0]
    per_class = min(int((tr.y == c).sum()) for c in range(10))
    balanced = tr.subset(torch.cat([torch.nonzero(tr.y == c).flatten()[:per_class] for c in range(10)]))
    g = models.initial_state("mlp", 0)
    plain = local_train("mlp", g, balanced, TrainConfig(steps=20, lr=0.1, seed=3))
    adjusted = local_train("mlp", g, balanced, TrainConfig(steps=20, lr=0.1, seed=3, logit_adjust=1.0))
    assert all(torch.allclose(plain.delta[k], adjusted.delta[k], atol=1e-6) for k in g)


def test_logit_adjust_removes_the_local_prior_from_predictions(digits_split, dominant_parts):
    # A provider whose data is 80 % one class: trained plainly, its model predicts that class for
    # much of a balanced validation set; with the local prior taken out in the loss, far less.
    tr, va = digits_split
    part = tr.subset(dominant_parts[0])
    own = int(torch.bincount(part.y).argmax())
    g = models.initial_state("mlp", 0)

    def share_predicted_own(tau: float) -> float:
        u = local_train("mlp", g, part, TrainConfig(steps=60, lr=0.1, seed=1, logit_adjust=tau))
        model = models.loaded("mlp", st.add_scaled(g, u.delta))
        with torch.no_grad():
            pred = model(models.as_input(va.x)).argmax(1)
        return float((pred == own).float().mean())

    plain, adjusted = share_predicted_own(0.0), share_predicted_own(1.0)
    assert adjusted < 0.6 * plain, (plain, adjusted)
