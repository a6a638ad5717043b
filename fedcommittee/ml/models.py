"""Registry of named, versioned model architectures.

A published model names an architecture by ``name`` (with its version); the code lives only here and
is never loaded from the network. ``spec_hash`` fingerprints the architecture (name, version, input
shape and the ordered parameter names, shapes and dtypes) so the ledger can pin it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

State = dict[str, torch.Tensor]


class CnnFmnist(nn.Module):
    """The source paper's CNN: 2 conv + max-pool, 2 dropout, 2 linear, ReLU (~1.2M parameters)."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = self.dropout1(torch.flatten(x, 1))
        x = self.dropout2(torch.relu(self.fc1(x)))
        return self.fc2(x)


class CnnSmall(nn.Module):
    """Two 5x5 convolutions with max-pooling and two linear layers for 28x28 inputs. At its default
    width (8 and 16 channels, 64 hidden; ~20k parameters) it is ``cnn-small``: fast benchmark runs on
    a shared CPU. ``cnn-medium`` doubles the channels and the hidden layer (~80k parameters) for
    about 1.5 times the training cost."""

    def __init__(self, n_classes: int = 10, channels: tuple[int, int] = (8, 16), hidden: int = 64) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class Mlp(nn.Module):
    """A two-layer perceptron over the flattened image: 8x8 digits and fast tests."""

    def __init__(self, in_features: int, hidden: int = 64, n_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class Linear(nn.Module):
    """Multinomial logistic regression on the flattened image (7,850 parameters for 28x28): the light
    model of scale runs, where a provider's local step must cost next to nothing beside the ledger."""

    def __init__(self, in_features: int, n_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int
    input_shape: tuple[int, int, int]
    n_classes: int
    factory: Callable[[], nn.Module]
    description: str


_REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("cnn-fmnist", 1, (1, 28, 28), 10, CnnFmnist, "paper CNN for Fashion-MNIST (~1.2M params)"),
        ModelSpec("cnn-small", 1, (1, 28, 28), 10, CnnSmall, "small CNN for 28x28 (~20k params)"),
        ModelSpec(
            "cnn-medium",
            1,
            (1, 28, 28),
            10,
            lambda: CnnSmall(channels=(16, 32), hidden=128),
            "cnn-small at twice the width (~80k params)",
        ),
        ModelSpec("mlp", 1, (1, 8, 8), 10, lambda: Mlp(64), "MLP 64-64-10 for 8x8 digits"),
        ModelSpec("mlp-fmnist", 1, (1, 28, 28), 10, lambda: Mlp(784, 128), "MLP 784-128-10 for 28x28"),
        ModelSpec("linear-fmnist", 1, (1, 28, 28), 10, lambda: Linear(784), "logistic regression 784-10"),
    )
}


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {list_models()}")
    return _REGISTRY[name]


def get_model(name: str, seed: int | None = None) -> nn.Module:
    """A fresh instance of the named architecture; with ``seed`` its initial weights are reproducible."""
    spec = get_spec(name)
    if seed is None:
        return spec.factory()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.factory()


def _unmade(name: str) -> nn.Module:
    """The named architecture on the meta device: shapes and dtypes, no weights made, torch's global
    generator not drawn from (see ``loaded``)."""
    with torch.device("meta"):
        return get_spec(name).factory()


def loaded(name: str, state: State) -> nn.Module:
    """The named architecture holding ``state``, laid out for fast CPU work.

    Convolutions run channels-last: with oneDNN's kernels for that layout (convolution and
    max-pooling) a 150-step ``local_train`` of ``cnn-small`` took 11 % less CPU and an evaluation of
    a 1360-sample shard 27 % less than the default layout on this project's 2-core x86 machine
    (docs/ml.md, "Determinism and hashes"). The math is the same; the float rounding is not, so
    results are reproducible run to run but not bit-equal to the default layout's.
    ``as_input`` puts a batch in the same layout.

    The module is built on the meta device and given storage only: its weights all come from
    ``state``, so a random initialization would only draw from torch's global generator, which a
    training on another thread (a member's reference, roles/reference.py) may be drawing its dropout
    masks from. The registry's models have parameters only, no buffers ``state`` would not hold.
    The storage is made with ``torch.empty``, not ``Module.to_empty``: ``empty_like`` of a meta
    tensor runs torch's Python reference, whose first call imports sympy (0.47 s and 35 MB in every
    agent process, measured, all of it in the first round's critical path).
    """
    model = _unmade(name)._apply(_storage).to(memory_format=torch.channels_last)
    model.load_state_dict(state, strict=True)
    return model


def _storage(t: torch.Tensor) -> torch.Tensor:
    """Uninitialized CPU storage shaped like the meta tensor ``t``."""
    return torch.empty(t.shape, dtype=t.dtype)


def as_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the layout ``loaded`` models compute in (images: channels-last; else unchanged)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def dense_state(model: nn.Module) -> State:
    """A trained model's weights, detached and in the default (row-major) layout, as hashed and sent."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def initial_state(name: str, seed: int) -> State:
    """Seeded initial weights as a detached, contiguous float32 state dict."""
    return {k: v.detach().clone().contiguous() for k, v in get_model(name, seed).state_dict().items()}


def state_layout(name: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Ordered parameter names -> (shape, dtype): what serialized weights must match. Read from the
    module built on the meta device: no weights are made, and torch's global generator is left alone
    (see ``loaded``)."""
    return {k: (shape, dtype) for k, shape, dtype in _layout(name)}


@functools.cache
def _layout(name: str) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    # Once per architecture (the registry is fixed): every decoded update and aggregate asks, and
    # building the module each time, even on the meta device, was 0.5 ms a call in each agent.
    return tuple((k, tuple(v.shape), v.dtype) for k, v in _unmade(name).state_dict().items())


def num_parameters(name: str) -> int:
    return sum(int(torch.Size(shape).numel()) for shape, _ in state_layout(name).values())


def spec_hash(name: str) -> str:
    """sha256 (hex) of a canonical JSON of name, version, input shape and the ordered param layout."""
    spec = get_spec(name)
    doc = {
        "name": spec.name,
        "version": spec.version,
        "input_shape": list(spec.input_shape),
        "n_classes": spec.n_classes,
        "params": [[k, list(shape), str(dtype)] for k, (shape, dtype) in state_layout(name).items()],
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_state(model: nn.Module, state: State) -> nn.Module:
    model.load_state_dict(state, strict=True)
    return model
