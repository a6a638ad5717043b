import pytest
import torch

from fedcommittee.ml import aggregate as A


def T(*v):
    return torch.tensor(v, dtype=torch.float32)


G = {"w": T(1.0, 1.0), "b": T(0.0)}
U = [
    ({"w": T(1.0, 0.0), "b": T(3.0)}, 1),
    ({"w": T(-2.0, 4.0), "b": T(0.0)}, 3),
    ({"w": T(10.0, 2.0), "b": T(-3.0)}, 4),
]


def test_fedavg_matches_hand_computation():
    out = A.FedAvg().aggregate(G, U)
    # weights 1/8, 3/8, 4/8: w = 1 + (1 - 6 + 40)/8, 1 + (0 + 12 + 8)/8 ; b = (3 + 0 - 12)/8
    assert torch.allclose(out["w"], T(1 + 35 / 8, 1 + 20 / 8))
    assert torch.allclose(out["b"], T(-9 / 8))
    unweighted = A.FedAvg(weighted=False).aggregate(G, U)
    assert torch.allclose(unweighted["w"], T(1 + 9 / 3, 1 + 6 / 3))


def test_median_trimmed_mean_krum_by_hand():
    med = A.Median().aggregate(G, U)
    assert torch.equal(med["w"], T(2.0, 3.0)) and torch.equal(med["b"], T(0.0))
    even = A.Median().aggregate(G, U[:2])
    assert torch.allclose(even["w"], T(1 - 0.5, 1 + 2.0))
    tm = A.TrimmedMean(beta=0.34).aggregate(G, U)  # drops 1 high and 1 low: same as median for m=3
    assert torch.equal(tm["w"], med["w"])
    five = [({"w": T(v, v), "b": T(0.0)}, 1) for v in (0.0, 1.0, 1.2, 0.9, 100.0)]
    assert torch.allclose(A.TrimmedMean(0.2).aggregate(G, five)["w"], T(1 + 3.1 / 3, 1 + 3.1 / 3))
    # Krum with f=1 picks a point from the tight cluster, never the outlier at 100.
    kr = A.Krum(f=1).aggregate(G, five)["w"]
    assert 1.0 <= float(kr[0]) <= 2.2
    multi = A.Krum(f=1, multi=3).aggregate(G, five)["w"]
    assert torch.allclose(multi, T(1 + 3.1 / 3, 1 + 3.1 / 3))


@pytest.mark.parametrize("name", ["fedavg", "median", "trimmed_mean", "krum", "fedavgm", "fedadam"])
def test_bitwise_deterministic_under_permutation(name):
    gen = torch.Generator().manual_seed(0)
    g = {"a": torch.randn(50, generator=gen), "z": torch.randn(7, 3, generator=gen)}
    ups = [({k: torch.randn(v.shape, generator=gen) * 1e-3 for k, v in g.items()}, 10 + i) for i in range(6)]
    a = A.get_strategy(name).aggregate(g, ups)
    b = A.get_strategy(name).aggregate(g, list(reversed(ups)))
    assert all(torch.equal(a[k], b[k]) for k in g)
    assert all(a[k].dtype == torch.float32 for k in g)


def test_fedavgm_momentum_two_rounds():
    s = A.FedAvgM(server_lr=1.0, momentum=0.5)
    g1 = s.aggregate({"w": T(0.0)}, [({"w": T(2.0)}, 1)])
    g2 = s.aggregate(g1, [({"w": T(2.0)}, 1)])
    assert torch.allclose(g1["w"], T(2.0)) and torch.allclose(g2["w"], T(2.0 + 0.5 * 2.0 + 2.0))


def test_fedadam_moves_along_mean_delta():
    out = A.FedAdam(server_lr=0.1).aggregate({"w": T(0.0, 0.0)}, [({"w": T(1.0, -1.0)}, 1)])
    assert float(out["w"][0]) > 0 > float(out["w"][1])


def test_rejects_empty_and_bad_counts():
    with pytest.raises(ValueError):
        A.FedAvg().aggregate(G, [])
    with pytest.raises(ValueError):
        A.FedAvg().aggregate(G, [(U[0][0], 0)])
    with pytest.raises(ValueError):
        A.get_strategy("nope")
