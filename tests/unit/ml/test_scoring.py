"""Committee scoring on digits: measured behaviour of the default rule (trust) and the naive one."""

import statistics

import pytest

from fedcommittee.ml import scoring
from fedcommittee.ml.attacks import get_behaviour, run_behaviour
from fedcommittee.ml.train import TrainConfig

BAD = (2, 5)  # 2 of 10 providers attack; the rest are honest with 80% one-class data


def _round(attack, digits_split, parts, g):
    tr = digits_split[0]
    return [
        run_behaviour(
            get_behaviour(attack if i in BAD else "honest"),
            "mlp",
            g,
            tr.subset(p),
            TrainConfig(steps=20, lr=0.1, batch_size=16, seed=99 + i),
        )  # fmt: skip
        for i, p in enumerate(parts)
    ]


def _verdicts(rule, updates, g, shards):
    per_member = [scoring.score_updates(rule, "mlp", g, [u.delta for u in updates], s,
                                        [u.num_samples for u in updates]) for s in shards]  # fmt: skip
    return [scoring.accept(rule, statistics.median(col)) for col in zip(*per_member, strict=True)]


@pytest.mark.parametrize("attack", ["label_flip", "sign_flip", "gaussian_noise", "scaling", "free_rider"])
def test_default_rule_accepts_honest_skewed_and_rejects_attacks(attack, digits_split, dominant_parts,
                                                                trained_global, shards):  # fmt: skip
    updates = _round(attack, digits_split, dominant_parts, trained_global)
    ok = _verdicts(scoring.DEFAULT_RULE, updates, trained_global, shards)
    assert scoring.DEFAULT_RULE.name == "trust"
    assert [ok[i] for i in range(10) if i not in BAD] == [True] * 8, ok
    assert [ok[i] for i in BAD] == [False, False], ok


def test_single_honest_skewed_update_is_accepted_alone(digits_split, dominant_parts, trained_global, shards):
    u = _round("honest", digits_split, dominant_parts[:1], trained_global)[0]
    s = scoring.score(scoring.DEFAULT_RULE, "mlp", trained_global, u.delta, shards[0])
    assert scoring.accept(scoring.DEFAULT_RULE, s)


def test_naive_absolute_rule_rejects_honest_skewed_updates(
    digits_split, dominant_parts, trained_global, shards
):
    """acc(G + delta) >= acc(G) - 0.02 punishes honest non-IID providers: the problem the default avoids."""
    naive = scoring.ScoringRule("damped", metric="accuracy", damping=1.0, threshold=-0.02)
    ok = _verdicts(
        naive, _round("honest", digits_split, dominant_parts, trained_global), trained_global, shards
    )
    assert sum(ok) <= 2


def test_absolute_and_loo_scores(digits_split, dominant_parts, trained_global, shards):
    updates = _round("sign_flip", digits_split, dominant_parts, trained_global)
    deltas = [u.delta for u in updates]
    absolute = scoring.score_updates(scoring.ScoringRule("absolute", metric="accuracy"), "mlp",
                                     trained_global, deltas, shards[0])  # fmt: skip
    assert all(0.0 <= a <= 1.0 for a in absolute)
    loo = scoring.score_updates(scoring.ScoringRule("loo"), "mlp", trained_global, deltas, shards[0])
    assert max(loo[i] for i in BAD) < min(loo[i] for i in range(10) if i not in BAD)
    one = scoring.score(
        scoring.ScoringRule("loo"), "mlp", trained_global, deltas[0], shards[0], others=deltas[1:]
    )
    assert one == pytest.approx(loo[0])


def test_rule_validation():
    with pytest.raises(ValueError):
        scoring.ScoringRule("vibes")
    with pytest.raises(ValueError, match="gross_se"):
        scoring.ScoringRule("effect", sym_se=10.0, gross_se=5.0)
    with pytest.raises(ValueError, match="gross_se and guard_se"):
        scoring.ScoringRule("effect", gross_se=10.0, guard_se=3.0)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="twin_ratio must be in"):
            scoring.ScoringRule("effect", twin_ratio=bad)
    assert scoring.ScoringRule("damped").threshold == 0.0
    assert scoring.ScoringRule("trust", threshold=0.2).threshold == 0.2


EFFECT = scoring.ScoringRule("effect")


@pytest.mark.parametrize("attack", ["label_flip", "sign_flip", "gaussian_noise", "scaling", "free_rider"])
def test_effect_rule_keeps_honest_skewed_updates_and_rejects_attacks(attack, digits_split, dominant_parts,
                                                                     trained_global, shards):  # fmt: skip
    updates = _round(attack, digits_split, dominant_parts, trained_global)
    ok = _verdicts(EFFECT, updates, trained_global, shards)
    assert [ok[i] for i in range(10) if i not in BAD] == [True] * 8, ok
    assert [ok[i] for i in BAD] == [False, False], ok


def test_effect_rule_alone_accepts_an_honest_skewed_update_and_rejects_its_sign_flip(
    digits_split, dominant_parts, trained_global, shards
):
    u = _round("honest", digits_split, dominant_parts[:1], trained_global)[0]
    flipped = {k: -v for k, v in u.delta.items()}
    for shard in shards:
        assert scoring.accept(EFFECT, scoring.score(EFFECT, "mlp", trained_global, u.delta, shard))
        assert not scoring.accept(EFFECT, scoring.score(EFFECT, "mlp", trained_global, flipped, shard))


def test_effect_scores_are_deterministic(digits_split, dominant_parts, trained_global, shards):
    deltas = [u.delta for u in _round("label_flip", digits_split, dominant_parts, trained_global)]
    first = scoring.score_updates(EFFECT, "mlp", trained_global, deltas, shards[0], [5] * 10)
    assert first == scoring.score_updates(EFFECT, "mlp", trained_global, deltas, shards[0], [5] * 10)


def test_effect_rule_is_scale_free():
    """Its margins depend on loss differences only through mean / SE, and its norm bound only on the
    ratio to the yardstick: multiplying all by a constant (as converging losses do) changes nothing."""
    import torch

    diff = torch.tensor([0.3, -0.1, 0.2, 0.05, -0.02], dtype=torch.float64)
    for k in (0.0, 1.0, 2.0):
        assert scoring.se_margin(diff * 1e-4, k) == pytest.approx(scoring.se_margin(diff, k))
    assert scoring.se_margin(diff, 0.0) < 0 < scoring.se_margin(-diff, 0.0)
    assert scoring.norm_penalty(1e-5, 1e-5, 3.0) is None
    assert scoring.norm_penalty(3.1e-5, 1e-5, 3.0) == pytest.approx(scoring.norm_penalty(3.1, 1.0, 3.0))
    assert scoring.norm_penalty(3.1, 1.0, 3.0) < -1 and scoring.norm_penalty(0.0, 1.0, 3.0) <= -1


def test_scaled_copy_buys_no_influence(digits_split, dominant_parts, trained_global, shards):
    deltas = [u.delta for u in _round("honest", digits_split, dominant_parts, trained_global)]
    boosted = {k: 10 * v for k, v in deltas[0].items()}
    scores = scoring.score_updates(EFFECT, "mlp", trained_global, [boosted, *deltas[1:]], shards[0])
    assert scores[0] < -1 and all(s >= 0 for s in scores[1:]), scores


@pytest.mark.parametrize("name", scoring.REFERENCE_RULES)
def test_a_reference_trained_ahead_gives_the_same_scores(
    name, digits_split, dominant_parts, trained_global, shards
):
    """Members train their reference while a round's updates arrive; the scores must not move."""
    rule = scoring.ScoringRule(name)
    deltas = [u.delta for u in _round("sign_flip", digits_split, dominant_parts, trained_global)]
    ahead = scoring.reference_delta(rule, "mlp", trained_global, shards[0])
    assert scoring.score_updates(rule, "mlp", trained_global, deltas, shards[0], [5] * 10, ahead) == (
        scoring.score_updates(rule, "mlp", trained_global, deltas, shards[0], [5] * 10)
    )
    if name == "trust":  # its scores are the cosines to the reference: another reference moves them
        other = scoring.reference_delta(rule, "mlp", trained_global, shards[1])
        assert scoring.score_updates(rule, "mlp", trained_global, deltas, shards[0], [5] * 10, other) != (
            scoring.score_updates(rule, "mlp", trained_global, deltas, shards[0], [5] * 10)
        )


def test_grossly_harmful_updates_leave_the_point_the_others_are_tested_at(
    digits_split, dominant_parts, trained_global, shards
):
    """gross_se: in-bound updates that lose to their negation by more than gross_se standard errors
    are left out of the aggregate, and the others are tested again at the aggregate of the rest,
    exactly as if the gross ones had not come."""
    import torch

    from fedcommittee.ml import state as st

    honest = [u.delta for u in _round("honest", digits_split, dominant_parts, trained_global)][:6]
    mean = st.unflatten(torch.stack([st.flatten(d) for d in honest]).mean(0), honest[0])
    size = statistics.median(st.l2_norm(d) for d in honest)
    flipped = st.scale(mean, -size / st.l2_norm(mean))  # in-bound: the median honest norm, pointing back
    deltas, sizes = [*honest, flipped, flipped], [5] * 8
    gross = scoring.ScoringRule("effect", gross_se=3.0)
    first = scoring.effect_tests(EFFECT, "mlp", trained_global, deltas, shards[0], sizes)
    assert all(scoring.t_stat(first[i][0]) > 3 for i in (6, 7))  # the copies harm the aggregate
    assert all(scoring.t_stat(first[i][0]) < 0 for i in range(6))
    tests = scoring.effect_tests(gross, "mlp", trained_global, deltas, shards[0], sizes)
    alone = scoring.effect_tests(EFFECT, "mlp", trained_global, honest, shards[0], sizes[:6])
    for i in range(6):
        assert torch.equal(tests[i][0], alone[i][0]) and not torch.equal(tests[i][0], first[i][0])
    assert all(torch.equal(tests[i][0], first[i][0]) for i in (6, 7))  # still judged where they were


def _paired(t: float, cos: float):
    """A paired test whose symmetric differences have mean / SE == t (loses to its negation by t)."""
    import torch

    diff = torch.tensor([1.0, -1.0] * 50, dtype=torch.float64)
    diff = diff + t * scoring.standard_error(diff)
    return diff, torch.zeros_like(diff), cos


PROBATION = scoring.ScoringRule("effect", cos_floor=-0.2, sym_se=10.0, probation_rounds=1,
                                probation_cos_floor=0.01, probation_sym_se=10.0)  # fmt: skip


def test_probation_applies_the_stricter_bars_only_to_a_provider_on_probation():
    # Pointing slightly away (cosine -0.1) and losing to its negation by 3 standard errors: inside the
    # lenient bars (cosine >= -0.2, lose by at most 10 SE), below the probation floor, where it would
    # have to beat its negation instead.
    test = _paired(3.0, -0.1)
    assert scoring.accept(PROBATION, scoring.effect_score(test, PROBATION))
    assert not scoring.accept(PROBATION, scoring.effect_score(test, PROBATION, on_probation=True))
    # Without probation_rounds the flag changes nothing.
    plain = scoring.ScoringRule("effect", cos_floor=-0.2, sym_se=10.0)
    assert scoring.effect_score(test, plain, on_probation=True) == scoring.effect_score(test, plain)
    # Pointing along the reference, within the margin: accepted either way.
    along = _paired(3.0, 0.2)
    assert scoring.accept(PROBATION, scoring.effect_score(along, PROBATION, on_probation=True))


def test_probation_after_a_rejection_and_until_a_first_acceptance():
    assert PROBATION.on_probation(rejected_lately=True, ever_accepted=True)
    assert not PROBATION.on_probation(rejected_lately=False, ever_accepted=False)  # newcomers: lenient
    earned = scoring.ScoringRule(**{**PROBATION.__dict__, "probation_until_accepted": True})
    assert earned.on_probation(rejected_lately=False, ever_accepted=False)  # newcomers: tight bars
    assert not earned.on_probation(rejected_lately=False, ever_accepted=True)
    assert earned.on_probation(rejected_lately=True, ever_accepted=True)
    assert not scoring.ScoringRule("effect").on_probation(rejected_lately=True, ever_accepted=False)  # off
    with pytest.raises(ValueError, match="probation_until_accepted needs probation_rounds"):
        scoring.ScoringRule("effect", probation_until_accepted=True)


def test_probation_flags_reach_the_scores(digits_split, dominant_parts, trained_global, shards):
    deltas = [u.delta for u in _round("sign_flip", digits_split, dominant_parts, trained_global)]
    shard = shards[0]
    free = scoring.score_updates(PROBATION, "mlp", trained_global, deltas, shard)
    nobody = [False] * 10
    assert free == scoring.score_updates(PROBATION, "mlp", trained_global, deltas, shard, probation=nobody)
    caught = scoring.score_updates(PROBATION, "mlp", trained_global, deltas, shard,
                                   probation=[i in BAD for i in range(10)])  # fmt: skip
    assert [caught[i] for i in range(10) if i not in BAD] == [free[i] for i in range(10) if i not in BAD]
    assert all(caught[i] <= free[i] and not scoring.accept(PROBATION, caught[i]) for i in BAD), (free, caught)
    with pytest.raises(ValueError, match="3 flags for 10 deltas"):
        scoring.score_updates(PROBATION, "mlp", trained_global, deltas, shard, probation=[True] * 3)


@pytest.mark.parametrize(
    "loose", [{"probation_cos_floor": -0.3}, {"probation_sym_se": 20.0}, {"probation_rescue_se": 0.5}]
)
def test_probation_bars_may_not_be_looser(loose):
    with pytest.raises(ValueError, match="at least as strict"):
        scoring.ScoringRule("effect", cos_floor=-0.2, sym_se=10.0, probation_rounds=1, **loose)
    scoring.ScoringRule("effect", cos_floor=-0.2, sym_se=10.0, **loose)  # off: not checked
    with pytest.raises(ValueError, match="probation_rounds"):
        scoring.ScoringRule("effect", probation_rounds=-1)


def test_guard_rebuilds_a_point_of_the_test_worse_than_the_global_model(digits_split, dominant_parts, shards):
    """guard_se, at the initial model (where the backdoor stalled the grid's runs): two in-bound
    updates pointing back along the honest mean at 2.9x the median norm drag the round's aggregate
    below the global model on the shard; the guard then tests every update at the aggregate of those
    most useful alone, as many as keep it within guard_se of the global model (here the six honest
    ones: their tests are those of a round without the two), and tests the two there as if they
    joined it. A round whose aggregate passes is judged exactly as without the guard."""
    import torch

    from fedcommittee.ml import models
    from fedcommittee.ml import state as st
    from fedcommittee.ml.evaluate import per_sample_loss

    g = models.initial_state("mlp", 0)
    honest = [u.delta for u in _round("honest", digits_split, dominant_parts, g)][:6]
    mean = st.unflatten(torch.stack([st.flatten(d) for d in honest]).mean(0), honest[0])
    size = statistics.median(st.l2_norm(d) for d in honest)
    back = st.scale(mean, -2.9 * size / st.l2_norm(mean))  # inside the 3x band
    deltas, sizes, shard = [*honest, back, back], [5] * 8, shards[0]
    guarded = scoring.ScoringRule("effect", guard_se=3.0)
    aggregate = st.add_scaled(g, st.add_scaled(st.scale(mean, 0.75), back, 0.25))
    worse = per_sample_loss("mlp", aggregate, shard) - per_sample_loss("mlp", g, shard)
    assert scoring.t_stat(worse) > 3  # the point of the test is worse than where the model is

    tests = scoring.effect_tests(guarded, "mlp", g, deltas, shard, sizes)
    alone = scoring.effect_tests(EFFECT, "mlp", g, honest, shard, sizes[:6])
    for i in range(6):  # the same point, summed in another order
        assert torch.allclose(tests[i][0], alone[i][0], atol=1e-6)
    # The two are tested where the honest ones take the model, at the weight they would have there.
    point = st.add_scaled(g, mean)
    joined = per_sample_loss("mlp", st.add_scaled(point, back, 5 / 35), shard)
    negated = per_sample_loss("mlp", st.add_scaled(point, back, -5 / 35), shard)
    assert torch.allclose(tests[6][0], joined - negated, atol=1e-6)
    # There they point away from the member's reference and lose to their negation: rejected.
    assert all(scoring.t_stat(tests[i][0]) > 0 and tests[i][2] < 0 for i in (6, 7))
    assert [scoring.effect_score(t, guarded) >= 0 for t in tests] == [True] * 6 + [False] * 2
    # Unguarded, the honest updates are judged at the poisoned point.
    plain = scoring.effect_tests(EFFECT, "mlp", g, deltas, shard, sizes)
    assert not any(torch.allclose(plain[i][0], alone[i][0], atol=1e-3) for i in range(6))

    clean = scoring.effect_tests(guarded, "mlp", g, honest, shard, sizes[:6])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(clean, alone, strict=True))


def test_guard_falls_back_to_the_least_harmful_prefix(digits_split, dominant_parts, shards):
    """guard_se where no prefix of the updates (most useful alone first) keeps the aggregate within
    the bar (here a bar no aggregate can meet: -inf): the point is the prefix least worse than the
    global model, and the updates in it are tested exactly as in a round of them alone."""
    import torch

    from fedcommittee.ml import models
    from fedcommittee.ml import state as st
    from fedcommittee.ml.evaluate import per_sample_loss

    g = models.initial_state("mlp", 0)
    deltas = [u.delta for u in _round("sign_flip", digits_split, dominant_parts, g)]
    sizes, shard = [5] * 10, shards[0]
    unmeetable = scoring.ScoringRule("effect", guard_se=float("-inf"))
    base = per_sample_loss("mlp", g, shard)

    def harm(state) -> float:
        return scoring.t_stat(per_sample_loss("mlp", state, shard) - base)

    def mean_of(chosen):
        step = st.zeros_like(g)
        for i in chosen:
            step = st.add_scaled(step, deltas[i], 1.0 / len(chosen))
        return st.add_scaled(g, step)

    order = sorted(range(10), key=lambda i: (harm(st.add_scaled(g, deltas[i], 0.1)), i))
    prefixes = {k: harm(mean_of(order[:k])) for k in range(2, 10)}
    assert max(prefixes.values()) - min(prefixes.values()) > 1.0  # a choice, not a tie
    weights = dict.fromkeys(range(10), 0.1)
    members, (point, _) = scoring._rebuilt_point(unmeetable, "mlp", g, deltas, shard, weights, sizes, base)
    k = len(members)
    assert sorted(members) == sorted(order[:k]) and prefixes[k] == pytest.approx(min(prefixes.values()))
    assert harm(point) == pytest.approx(prefixes[k], abs=1e-4)

    tests = scoring.effect_tests(unmeetable, "mlp", g, deltas, shard, sizes)
    inner = sorted(members)
    alone = scoring.effect_tests(EFFECT, "mlp", g, [deltas[i] for i in inner], shard, [5] * k)
    for i, test in zip(inner, alone, strict=True):
        assert torch.allclose(tests[i][0], test[0], atol=1e-6)


def test_near_copies_after_the_first_are_rejected_and_move_no_other_test(
    digits_split, dominant_parts, shards
):
    """twin_ratio: an exact copy and a 1 %-jittered copy of honest updates, sent after them, score
    below -1 (the exact copy lowest), while every other update's test is the one it gets without the
    screen; sent before, the copy is kept and the original is the one flagged. An honest round is
    untouched."""
    import torch

    from fedcommittee.ml import models
    from fedcommittee.ml import state as st

    g = models.initial_state("mlp", 0)
    honest = [u.delta for u in _round("honest", digits_split, dominant_parts, g)][:6]
    noise = st.unflatten(torch.randn(st.flatten(honest[1]).shape, generator=torch.Generator().manual_seed(1)),
                         honest[1])  # fmt: skip
    jittered = st.add_scaled(honest[1], noise, 0.01 * st.l2_norm(honest[1]) / st.l2_norm(noise))
    twins = scoring.ScoringRule("effect", twin_ratio=0.1)
    shard, deltas = shards[0], [*honest, honest[0], jittered]
    tests = scoring.effect_tests(twins, "mlp", g, deltas, shard, [5] * 8)
    assert tests[6] == -2.0 and -2.0 < tests[7] < -1.0, tests[6:]
    unscreened = scoring.effect_tests(EFFECT, "mlp", g, deltas, shard, [5] * 8)
    assert not any(isinstance(t, float) for t in unscreened)  # nothing else would have flagged them
    for mine, theirs in zip(tests[:6], unscreened[:6], strict=True):
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1]) and mine[2] == theirs[2]
    first = scoring.effect_tests(twins, "mlp", g, [honest[0], *honest], shard, [5] * 7)
    assert not isinstance(first[0], float) and first[1] == -2.0
    plain = scoring.score_updates(EFFECT, "mlp", g, honest, shard, [5] * 6)
    assert scoring.score_updates(twins, "mlp", g, honest, shard, [5] * 6) == plain
    assert min(plain) > -1.0
