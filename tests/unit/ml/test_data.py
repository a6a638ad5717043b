import sys

import numpy as np
import pytest
import torch

from fedcommittee.ml.data import (
    DataError,
    from_arrays,
    load_dataset,
    load_digits,
    load_entry_point,
    load_npz,
    split_shards,
    train_val_split,
)


def test_digits_shape_and_range(digits):
    assert digits.x.shape == (1797, 1, 8, 8)
    assert digits.x.dtype == torch.float32 and digits.y.dtype == torch.int64
    assert float(digits.x.min()) >= 0.0 and float(digits.x.max()) <= 1.0
    assert digits.n_classes == 10


def test_npz_plugin(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 5, 5), dtype=np.uint8)
    y = np.arange(20) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_npz(tmp_path / "d.npz")
    assert ds.x.shape == (20, 1, 5, 5) and ds.n_classes == 3
    assert torch.allclose(ds.x[0, 0], torch.from_numpy(x[0] / 255.0).float())
    np.savez(tmp_path / "bad.npz", a=x)
    with pytest.raises(DataError, match="'x' and 'y'"):
        load_npz(tmp_path / "bad.npz")
    assert len(load_dataset(f"npz:{tmp_path / 'd.npz'}")) == 20


def test_entry_point_plugin(tmp_path, monkeypatch):
    (tmp_path / "my_data_mod.py").write_text(
        "import numpy as np\n"
        "def get():\n    return np.zeros((4, 1, 2, 2), np.float32), np.array([0, 1, 1, 0])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = load_entry_point("my_data_mod:get")
    assert ds.x.shape == (4, 1, 2, 2) and ds.n_classes == 2
    with pytest.raises(DataError):
        load_entry_point("no_colon_here")
    sys.modules.pop("my_data_mod", None)


def test_rejects_bad_arrays():
    with pytest.raises(DataError):
        from_arrays(np.zeros((3, 2, 2)), np.zeros(4, dtype=int))
    with pytest.raises(DataError):
        from_arrays(np.full((2, 2, 2), np.nan), np.zeros(2, dtype=int))
    with pytest.raises(DataError):
        from_arrays(np.zeros((2, 2, 2)), np.array([0.5, 1.0]))


def test_train_val_split_stratified_disjoint(digits):
    tr, va = train_val_split(digits, 0.2, seed=1)
    assert len(tr) + len(va) == len(digits)
    counts = va.class_counts() / digits.class_counts()
    assert np.all(np.abs(counts - 0.2) < 0.02)
    again = train_val_split(digits, 0.2, seed=1)[1]
    assert torch.equal(again.y, va.y) and torch.equal(again.x, va.x)


def test_split_shards(digits):
    shards = split_shards(digits, 3, seed=0)
    assert sum(len(s) for s in shards) == len(digits)
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    for s in shards:  # stratified: every shard has every class
        assert np.all(s.class_counts() > 50)


def test_digits_loader_is_deterministic():
    assert torch.equal(load_digits().x, load_digits().x)
