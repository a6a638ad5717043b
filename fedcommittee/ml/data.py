"""Data sets for the ML core: one small in-memory container and the loaders that fill it.

Everything is held as tensors in memory (x: float32 NCHW in [0, 1], y: int64) because the data sets
used here are small and a plain container keeps training, scoring and sharding trivially
reproducible. Users bring their own data as an ``.npz`` file (arrays ``x`` and ``y``) or as a
Python entry point ``"module:function"`` returning ``(x, y)``.
"""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# The source names are checked by configs, which must not need torch: they live in the registry.
from fedcommittee.ml.registry import DATA_SOURCES, source_problem

__all__ = [
    "DATA_SOURCES",
    "DataError",
    "Dataset",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "from_arrays",
    "load_dataset",
    "load_digits",
    "load_entry_point",
    "load_fashion_mnist",
    "load_npz",
    "source_problem",
    "split_shards",
    "train_val_split",
]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class DataError(ValueError):
    """Raised when a data source is missing or does not have the expected form."""


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (float32, N x C x H x W) and integer labels ``y`` (int64, N)."""

    x: torch.Tensor
    y: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise DataError(f"x must be N x C x H x W, got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise DataError(f"y must be a vector of length {self.x.shape[0]}, got {tuple(self.y.shape)}")
        if self.x.dtype != torch.float32 or self.y.dtype != torch.int64:
            raise DataError(f"expected float32 x and int64 y, got {self.x.dtype} and {self.y.dtype}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Dataset:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return Dataset(self.x[idx], self.y[idx], self.n_classes)

    def with_labels(self, y: torch.Tensor) -> Dataset:
        return Dataset(self.x, y.to(torch.int64), self.n_classes)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=self.n_classes)


def from_arrays(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, n_classes: int | None = None
) -> Dataset:
    """Build a Dataset from user arrays: x as N x H x W, N x C x H x W or N x D; uint8 is scaled to [0, 1]."""
    xa = np.asarray(x)
    ya = np.asarray(y)
    if xa.shape[0] != ya.shape[0]:
        raise DataError(f"x has {xa.shape[0]} rows but y has {ya.shape[0]}")
    if not np.issubdtype(ya.dtype, np.integer):
        raise DataError(f"labels must be integers, got {ya.dtype}")
    if xa.dtype == np.uint8:
        xa = xa.astype(np.float32) / 255.0
    xa = xa.astype(np.float32)
    if xa.ndim == 2:
        xa = xa[:, None, None, :]
    elif xa.ndim == 3:
        xa = xa[:, None, :, :]
    elif xa.ndim != 4:
        raise DataError(f"x must have 2, 3 or 4 dimensions, got {xa.ndim}")
    if not np.isfinite(xa).all():
        raise DataError("x contains NaN or Inf")
    if ya.size and ya.min() < 0:
        raise DataError("labels must be non-negative")
    k = int(n_classes if n_classes is not None else (ya.max() + 1 if ya.size else 0))
    return Dataset(torch.from_numpy(np.ascontiguousarray(xa)), torch.from_numpy(ya.astype(np.int64)), k)


def _read_idx(path: Path) -> np.ndarray:
    """Parse a gzip IDX file (the MNIST format): magic, dims, big-endian sizes, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def load_fashion_mnist(split: str = "train", root: str | Path = FASHION_MNIST_ROOT) -> Dataset:
    """Fashion-MNIST from local IDX files (never downloaded); split is 'train' (60k) or 'test' (10k)."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root)
    x = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    y = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
    return from_arrays(x, y, n_classes=10)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, values 0..16 scaled to [0, 1]): fast tests and demos."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = (d.images / 16.0).astype(np.float32)
    return from_arrays(x, d.target, n_classes=10)


def load_npz(path: str | Path, n_classes: int | None = None) -> Dataset:
    """User data: an ``.npz`` with arrays ``x`` and ``y`` (loaded with allow_pickle=False)."""
    with np.load(Path(path), allow_pickle=False) as f:
        if "x" not in f or "y" not in f:
            raise DataError(f"{path}: npz must contain arrays 'x' and 'y', found {sorted(f.files)}")
        return from_arrays(f["x"], f["y"], n_classes)


def load_entry_point(spec: str, n_classes: int | None = None) -> Dataset:
    """User data from ``"package.module:function"``; the function takes no arguments, returns (x, y)."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise DataError(f"entry point must look like 'module:function', got {spec!r}")
    func = getattr(importlib.import_module(module_name), func_name, None)
    if not callable(func):
        raise DataError(f"{spec!r} is not a callable")
    result = func()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise DataError(f"{spec!r} must return a tuple (x, y)")
    return from_arrays(result[0], result[1], n_classes)


def load_dataset(source: str) -> Dataset:
    """One string names a data source: 'fashion-mnist:train', 'fashion-mnist:test', 'digits',
    'npz:/path/file.npz' or 'py:module:function' (``DATA_SOURCES``)."""
    if problem := source_problem(source):
        raise DataError(problem)
    if source == "digits":
        return load_digits()
    if source.startswith("fashion-mnist"):
        return load_fashion_mnist(source.partition(":")[2] or "train")
    if source.startswith("npz:"):
        return load_npz(source[4:])
    if source.startswith("py:"):
        return load_entry_point(source[3:])
    raise DataError(f"unknown data source {source!r}")


def train_val_split(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Carve a stratified validation set (same class mix as the data) with a seeded permutation."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError("val_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    y = dataset.y.numpy()
    val: list[int] = []
    for c in range(dataset.n_classes):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val.extend(idx[: int(round(len(idx) * val_fraction))].tolist())
    val_set = set(val)
    train = [i for i in range(len(dataset)) if i not in val_set]
    return dataset.subset(sorted(train)), dataset.subset(sorted(val))


def split_shards(dataset: Dataset, n: int, seed: int) -> list[Dataset]:
    """Split a validation set into ``n`` disjoint stratified shards, one per committee member."""
    if n < 1 or n > len(dataset):
        raise DataError(f"cannot split {len(dataset)} samples into {n} shards")
    rng = np.random.default_rng(seed)
    y = dataset.y.numpy()
    shards: list[list[int]] = [[] for _ in range(n)]
    offset = 0
    for c in range(dataset.n_classes):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            shards[(offset + j) % n].append(int(i))
        offset += len(idx)
    return [dataset.subset(sorted(s)) for s in shards]
