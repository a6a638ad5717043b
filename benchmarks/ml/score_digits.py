"""Per-provider committee scores on sklearn digits (seconds, not minutes): why the default is 'trust'.

Trains an MLP with FedAvg for 8 rounds on a partition of digits, then runs one more round in which
providers 2, 5 and 8 attack, and prints the median (over 3 member shards) score of every provider
under each rule, with A/R for accept/reject and * marking attackers.

    python benchmarks/ml/score_digits.py > benchmarks/ml/results/score_digits.txt
"""

from __future__ import annotations

import statistics

import torch

from fedcommittee.ml import aggregate, models, partition, scoring, train
from fedcommittee.ml.attacks import get_behaviour, run_behaviour
from fedcommittee.ml.data import load_digits, split_shards, train_val_split
from fedcommittee.ml.evaluate import evaluate

RULES = {
    "abs-acc": scoring.ScoringRule("damped", metric="accuracy", damping=1.0, threshold=-0.02),
    "damped-loss": scoring.ScoringRule("damped"),
    "loo-loss": scoring.ScoringRule("loo"),
    "trust": scoring.ScoringRule("trust"),
}
BAD = (2, 5, 8)


def main() -> None:
    torch.set_num_threads(1)
    tr, va = train_val_split(load_digits(), 0.3, seed=0)
    shards = split_shards(va, 3, seed=0)
    y = tr.y.numpy()
    partitions = {
        "dominant-80%": partition.dominant_class(y, 10, 0.8, seed=0),
        "one-class": partition.one_class_per_client(y, 10, seed=0),
        "dirichlet-0.1": partition.dirichlet(y, 10, 0.1, seed=0),
    }
    for pname, parts in partitions.items():
        g = models.initial_state("mlp", 0)
        for r in range(8):
            ups = [
                train.local_train(
                    "mlp", g, tr.subset(p), train.TrainConfig(steps=20, lr=0.1, batch_size=16, seed=s)
                )
                for s, p in enumerate(parts, start=r * 100)
            ]
            g = aggregate.FedAvg().aggregate(g, [(u.delta, u.num_samples) for u in ups])
        print(f"## {pname}: global accuracy {evaluate('mlp', g, va).accuracy:.3f}; attackers {BAD}")
        for attack in ("label_flip", "sign_flip", "gaussian_noise", "scaling", "free_rider"):
            cfg = train.TrainConfig(steps=20, lr=0.1, batch_size=16)
            ups = [run_behaviour(get_behaviour(attack if i in BAD else "honest"), "mlp", g, tr.subset(p),
                                 train.TrainConfig(**{**cfg.__dict__, "seed": 99 + i}))
                   for i, p in enumerate(parts)]  # fmt: skip
            for rn, rule in RULES.items():
                deltas, sizes = [u.delta for u in ups], [u.num_samples for u in ups]
                per_member = [scoring.score_updates(rule, "mlp", g, deltas, s, sizes) for s in shards]
                med = [statistics.median(c) for c in zip(*per_member, strict=True)]
                cells = [("*" if i in BAD else " ") + f"{m:+.3f}" + ("A" if scoring.accept(rule, m) else "R")
                         for i, m in enumerate(med)]  # fmt: skip
                print(f"{attack:<15}{rn:<12}" + " ".join(cells))


if __name__ == "__main__":
    main()
