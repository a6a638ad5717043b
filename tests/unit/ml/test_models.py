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


def test_cnn_medium_is_cnn_small_at_twice_the_width():
    assert models.num_parameters("cnn-small") == 20_522  # unchanged by the width parameters
    assert models.num_parameters("cnn-medium") == 80_202
    small, medium = models.initial_state("cnn-small", 0), models.initial_state("cnn-medium", 0)
    assert list(small) == list(medium)  # the same layers, each twice as wide
    assert medium["conv1.weight"].shape == (16, 1, 5, 5) and medium["fc1.weight"].shape == (128, 512)
    assert models.get_model("cnn-medium")(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_spec_hash_stable_and_distinct():
    h = models.spec_hash("cnn-fmnist")
    assert h == models.spec_hash("cnn-fmnist") and len(h) == 64
    assert len({models.spec_hash(n) for n in models.list_models()}) == len(models.list_models())


def test_seeded_initial_state():
    a, b, c = (models.initial_state("mlp", s) for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])
    assert list(models.state_layout("mlp")) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_light_model_is_logistic_regression_on_28x28():
    assert models.num_parameters("linear-fmnist") == 784 * 10 + 10
    assert list(models.state_layout("linear-fmnist")) == ["fc.weight", "fc.bias"]
    out = models.get_model("linear-fmnist", seed=0)(torch.zeros(4, 1, 28, 28))
    assert out.shape == (4, 10)
    # It learns: a few SGD steps on a separable toy problem lower the loss.
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    x[torch.arange(64), 0, 0, y] += 5.0
    model = models.get_model("linear-fmnist", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("name", ["cnn-small", "cnn-fmnist", "mlp-fmnist"])
def test_loaded_model_computes_what_the_plain_one_does(name):
    # Channels-last is a layout, not another function: the same weights give the same outputs up to
    # float rounding, and the weights come back in the default layout, as they are hashed and sent.
    state = models.initial_state(name, seed=3)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain = models.get_model(name)
    plain.load_state_dict(state)
    fast = models.loaded(name, state)
    with torch.inference_mode():
        assert torch.allclose(fast.eval()(models.as_input(x)), plain.eval()(x), atol=1e-5)
    dense = models.dense_state(fast)
    assert all(v.is_contiguous() and torch.equal(v, state[k]) for k, v in dense.items())
    assert models.as_input(torch.zeros(3, 8)).is_contiguous()  # not an image: left as it is


def test_state_layout_is_built_once_and_handed_out_as_a_fresh_dict():
    first = models.state_layout("cnn-small")
    first.pop(next(iter(first)))  # a caller changing its copy changes nobody else's
    again = models.state_layout("cnn-small")
    assert len(again) == len(first) + 1
    built = models.get_model("cnn-small").state_dict()
    assert again == {k: (tuple(v.shape), v.dtype) for k, v in built.items()}


def test_building_training_and_evaluating_a_model_imports_no_sympy():
    # Every agent builds models: torch's Python reference of ``empty_like`` on a meta tensor (what
    # ``Module.to_empty`` calls) imports sympy on first use, 0.47 s and 35 MB per process.
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from fedcommittee import ml\n"
        "from fedcommittee.ml.data import Dataset\n"
        "state = ml.initial_state('cnn-small', 0)\n"
        "data = Dataset(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)), 10)\n"
        "cfg = ml.TrainConfig(steps=2, batch_size=16, lr=0.01, seed=0)\n"
        "ml.local_train('cnn-small', state, data, cfg)\n"
        "ml.evaluate('cnn-small', state, data)\n"
        "assert 'sympy' not in sys.modules, 'sympy was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
