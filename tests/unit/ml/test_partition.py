import re

import numpy as np
import pytest

from fedcommittee.ml import partition as P

LABELS = np.repeat(np.arange(10), 300)


def _is_partition(parts, n=None):
    allidx = np.concatenate(parts)
    assert len(allidx) == len(np.unique(allidx)), "indices overlap"
    if n is not None:
        assert len(allidx) == n


@pytest.mark.parametrize(
    "name,params",
    [("iid", {}), ("dirichlet", {"alpha": 0.1}), ("dominant_class", {"share": 0.8}),
     ("one_class_per_client", {}), ("quantity_skew", {"alpha": 0.5})],
)  # fmt: skip
def test_reproducible_and_disjoint(name, params):
    a = P.make_partition(name, LABELS, 10, seed=3, **params)
    b = P.make_partition(name, LABELS, 10, seed=3, **params)
    c = P.make_partition(name, LABELS, 10, seed=4, **params)
    assert len(a) == 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    if name != "one_class_per_client":  # one-class split is seed-independent in its counts, not indices
        assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    _is_partition(a)


def test_iid_sizes_and_balance():
    parts = P.iid(LABELS, 10, seed=0)
    _is_partition(parts, len(LABELS))
    assert {len(p) for p in parts} == {300}
    table = P.summary(parts, LABELS)
    assert table.min() > 10


def test_dominant_class_share():
    parts = P.dominant_class(LABELS, 10, share=0.8, seed=0)
    table = P.summary(parts, LABELS)
    for i, row in enumerate(table):
        assert row.argmax() == i % 10
        assert abs(row[i % 10] / row.sum() - 0.8) < 0.02
        assert (row > 0).sum() >= 5  # the rest is spread over other classes


def test_one_class_per_client():
    parts = P.one_class_per_client(LABELS, 10, seed=0)
    _is_partition(parts, len(LABELS))
    table = P.summary(parts, LABELS)
    assert np.array_equal(table, np.diag(np.full(10, 300)))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    def mean_max_share(alpha):
        table = P.summary(P.dirichlet(LABELS, 10, alpha=alpha, seed=0), LABELS)
        return float((table.max(axis=1) / table.sum(axis=1)).mean())

    assert mean_max_share(0.1) > mean_max_share(100.0) + 0.3
    assert all(len(p) >= 10 for p in P.dirichlet(LABELS, 10, alpha=0.1, seed=0))


def test_quantity_skew_sizes_vary():
    parts = P.quantity_skew(LABELS, 10, alpha=0.3, seed=0)
    _is_partition(parts, len(LABELS))
    sizes = [len(p) for p in parts]
    assert max(sizes) > 3 * min(sizes) and min(sizes) >= 10


def test_summary_and_plot(tmp_path):
    parts = P.dominant_class(LABELS, 10, seed=0)
    assert P.summary(parts, LABELS).sum() == sum(len(p) for p in parts)
    assert "total" in P.format_summary(parts, LABELS)
    png = P.plot_partition(parts, LABELS, tmp_path / "p.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dominant_class_shares_a_class_named_twice_and_spreads_the_unnamed_ones():
    parts = P.dominant_class(LABELS, 4, share=0.8, seed=0, classes=[0, 1, 0, 1])
    _is_partition(parts)
    table = P.summary(parts, LABELS)
    assert [int(row.argmax()) for row in table] == [0, 1, 0, 1]
    # Clients 0 and 2 split class 0's pool, and no class is left to one client alone.
    assert table[0, 0] > 0 and table[2, 0] > 0 and abs(int(table[0, 0]) - int(table[2, 0])) <= 1
    assert (table[:, 2:] > 0).sum(axis=0).min() >= 2


@pytest.mark.parametrize(
    "classes, words",
    [([0, 1], "names 2 classes for 3 clients"), ([0, 1, 10], "[10], outside the data's classes 0..9")],
)
def test_dominant_class_refuses_classes_that_do_not_fit(classes, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        P.dominant_class(LABELS, 3, classes=classes)
