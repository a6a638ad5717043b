import pytest
import torch

from fedcommittee.ml import models
from fedcommittee.ml import state as st
from fedcommittee.ml.attacks import get_behaviour, run_behaviour
from fedcommittee.ml.train import TrainConfig

CFG = TrainConfig(steps=10, lr=0.1, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def setup(digits_split):
    tr = digits_split[0].subset(range(300))
    g = models.initial_state("mlp", 0)
    return g, tr, run_behaviour(get_behaviour("honest"), "mlp", g, tr, CFG)


def test_sign_flip_negates(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("sign_flip"), "mlp", g, tr, CFG)
    assert all(torch.equal(u.delta[k], -honest.delta[k]) for k in g)


def test_scaling_multiplies(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("scaling", factor=5.0), "mlp", g, tr, CFG)
    assert abs(st.l2_norm(u.delta) - 5 * st.l2_norm(honest.delta)) < 1e-4
    assert st.cosine(u.delta, honest.delta) > 0.9999


def test_free_rider_sends_zero_delta(setup):
    g, tr, _ = setup
    u = run_behaviour(get_behaviour("free_rider"), "mlp", g, tr, CFG)
    assert st.l2_norm(u.delta) == 0.0 and u.num_samples == len(tr)


def test_gaussian_noise_is_random_and_seeded(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("gaussian_noise", sigma=0.5), "mlp", g, tr, CFG)
    v = run_behaviour(get_behaviour("gaussian_noise", sigma=0.5), "mlp", g, tr, CFG)
    assert all(torch.equal(u.delta[k], v.delta[k]) for k in g)
    assert abs(st.cosine(u.delta, honest.delta)) < 0.1
    std = float(st.flatten(u.delta).std())
    assert 0.45 < std < 0.55


def test_label_flip_changes_labels_and_direction(setup):
    g, tr, honest = setup
    b = get_behaviour("label_flip")
    assert torch.equal(b.poison_data(tr, 0).y, 9 - tr.y)
    u = run_behaviour(b, "mlp", g, tr, CFG)
    assert st.cosine(u.delta, honest.delta) < 0.5
    assert torch.all(get_behaviour("label_flip", target=2).poison_data(tr, 0).y == 2)


def test_unknown_behaviour():
    with pytest.raises(ValueError):
        get_behaviour("polite")


@pytest.fixture(scope="module")
def view(setup, digits_split):
    """Five honest deltas of different providers: what an omniscient attacker sees of the round."""
    from fedcommittee.ml.attacks import RoundView
    from fedcommittee.ml.scoring import ScoringRule

    g, _, _ = setup
    tr = digits_split[0]
    benign = [run_behaviour(get_behaviour("honest"), "mlp", g, tr.subset(range(k * 200, k * 200 + 200)),
                            CFG).delta for k in range(5)]  # fmt: skip
    return RoundView(benign, "mlp", g, ScoringRule("effect"), tr.subset(range(1000, 1256)))


def _matrix(deltas):
    return torch.stack([st.flatten(d) for d in deltas])


def test_alie_is_mean_minus_z_std(setup, view):
    g, tr, _ = setup
    u = run_behaviour(get_behaviour("alie"), "mlp", g, tr, CFG, view)
    b = _matrix(view.benign)
    z = 0.5244  # the paper's z for 10 providers, 3 of them colluding: Phi^-1(0.7)
    expected = b.mean(dim=0) - z * b.std(dim=0, unbiased=False)
    assert torch.allclose(st.flatten(u.delta), expected, atol=1e-3)


@pytest.mark.parametrize("name", ["min_max", "min_sum"])
def test_min_max_and_min_sum_sit_on_their_distance_bound(setup, view, name):
    g, tr, _ = setup
    mal = st.flatten(run_behaviour(get_behaviour(name), "mlp", g, tr, CFG, view).delta)
    b = _matrix(view.benign)
    assert not torch.allclose(mal, b.mean(dim=0))  # moved away from the benign mean
    pairwise = torch.cdist(b, b)
    if name == "min_max":
        used, bound = float(torch.cdist(mal[None], b).max()), float(pairwise.max())
    else:
        used, bound = float((torch.cdist(mal[None], b) ** 2).sum()), float((pairwise**2).sum(dim=1).max())
    assert 0.98 * bound <= used <= bound * 1.0001


def test_colluders_send_near_copies_against_the_benign_mean(setup, view):
    g, tr, _ = setup
    a = run_behaviour(get_behaviour("collude"), "mlp", g, tr, CFG, view).delta
    b = run_behaviour(get_behaviour("collude"), "mlp", g, tr, TrainConfig(steps=10, lr=0.1, batch_size=16,
                                                                          seed=4), view).delta  # fmt: skip
    assert 0.999 < st.cosine(a, b) < 1.0
    mean = st.unflatten(_matrix(view.benign).mean(dim=0), a)
    assert st.cosine(a, mean) < -0.99


def test_adaptive_attacker_sits_just_inside_the_rule(setup, view):
    from fedcommittee.ml import scoring

    g, tr, honest = setup
    u = run_behaviour(get_behaviour("adaptive"), "mlp", g, tr, CFG, view)
    s = scoring.score_updates(view.rule, "mlp", g, [u.delta, *view.benign], view.surrogate)[0]
    assert scoring.accept(view.rule, s)
    mean = st.unflatten(_matrix(view.benign).mean(dim=0), u.delta)
    assert st.cosine(u.delta, mean) < 0.999  # it did take some of the malicious direction
    assert st.cosine(u.delta, honest.delta) < st.cosine(mean, honest.delta)


def test_round_aware_attack_without_a_view_estimates_the_round_from_its_own_data(setup):
    g, tr, honest = setup
    u = run_behaviour(get_behaviour("alie"), "mlp", g, tr, CFG)
    assert st.l2_norm(u.delta) > 0
    assert not torch.equal(st.flatten(u.delta), st.flatten(honest.delta))
    adaptive = run_behaviour(get_behaviour("adaptive"), "mlp", g, tr, CFG)  # assumes the effect rule
    assert st.l2_norm(adaptive.delta) > 0


def test_backdoor_triggers_a_fraction_and_relabels_it(setup):
    from fedcommittee.ml.attacks import add_trigger

    _, tr, _ = setup
    bd = get_behaviour("backdoor", target=3, fraction=0.5)
    poisoned = bd.poison_data(tr, seed=1)
    triggered = (poisoned.x[:, :, -3:, -3:] == tr.x.max()).flatten(1).all(dim=1)
    assert int(triggered.sum()) >= len(tr) // 2
    assert bool((poisoned.y[triggered & (tr.x != poisoned.x).flatten(1).any(dim=1)] == 3).all())
    assert torch.equal(add_trigger(tr.x)[:, :, :-3, :], tr.x[:, :, :-3, :])


def test_backdoor_success_is_the_triggered_share_taken_for_the_target(setup, digits_split):
    from fedcommittee.ml.attacks import backdoor_success

    g, tr, _ = setup
    held_out = digits_split[1]
    cfg = TrainConfig(steps=300, lr=0.1, batch_size=32, seed=3)
    planted = run_behaviour(get_behaviour("backdoor", target=3, fraction=0.5), "mlp", g, tr, cfg)
    honest = run_behaviour(get_behaviour("honest"), "mlp", g, tr, cfg)
    with_trigger = backdoor_success("mlp", st.add_scaled(g, planted.delta), held_out, target=3)
    without = backdoor_success("mlp", st.add_scaled(g, honest.delta), held_out, target=3)
    assert with_trigger > 0.8 and without < 0.2, (with_trigger, without)
    only_target = held_out.subset([i for i in range(len(held_out)) if int(held_out.y[i]) == 3])
    with pytest.raises(ValueError, match="another class than the target 3"):
        backdoor_success("mlp", g, only_target, target=3)
