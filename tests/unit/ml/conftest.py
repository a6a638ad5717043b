"""Shared fixtures for the ML unit tests: digits data, a partition and a briefly trained global model."""

from __future__ import annotations

import pytest
import torch

from fedcommittee.ml import aggregate, models, partition, train
from fedcommittee.ml.data import load_digits, split_shards, train_val_split


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def digits_split(digits):
    return train_val_split(digits, 0.3, seed=0)


@pytest.fixture(scope="session")
def shards(digits_split):
    return split_shards(digits_split[1], 3, seed=0)


@pytest.fixture(scope="session")
def dominant_parts(digits_split):
    return partition.dominant_class(digits_split[0].y.numpy(), 10, share=0.8, seed=0)


@pytest.fixture(scope="session")
def trained_global(digits_split, dominant_parts):
    """8 rounds of FedAvg on the dominant-class partition of digits (about 75% accuracy)."""
    tr = digits_split[0]
    g = models.initial_state("mlp", 0)
    for r in range(8):
        ups = [
            train.local_train(
                "mlp", g, tr.subset(p), train.TrainConfig(steps=20, lr=0.1, batch_size=16, seed=r * 100 + i)
            )
            for i, p in enumerate(dominant_parts)
        ]
        g = aggregate.FedAvg().aggregate(g, [(u.delta, u.num_samples) for u in ups])
    return g
