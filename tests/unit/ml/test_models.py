import pytest
import torch

from fedcommittee.ml import models


def test_registry_lists_required_models():
    assert {"cnn-fmnist", "cnn-small", "mlp"} <= set(models.list_models())
    with pytest.raises(KeyError):
        models.get_model("resnet-from-the-internet")


def test_paper_cnn_size_and_forward():
    assert 1_150_000 < models.num_parameters("cnn-fmnist") < 1_250_000
    out = models.get_model("cnn-fmnist", seed=0).eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert models.get_model("mlp")(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert models.get_model("cnn-small")(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_spec_hash_stable_and_distinct():
    h = models.spec_hash("cnn-fmnist")
    assert h == models.spec_hash("cnn-fmnist") and len(h) == 64
    assert len({models.spec_hash(n) for n in models.list_models()}) == len(models.list_models())


def test_seeded_initial_state():
    a, b, c = (models.initial_state("mlp", s) for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])
    assert list(models.state_layout("mlp")) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
