"""Gossip in its synchronous limit, in process: why gossip finishes on the mix of providers' models.

configs/gossip.yaml's honest providers, data split and training, no ledger, no committee: each
provider's n-th update starts from the mean of the best model (shard accuracy on the publisher's
validation set) of every provider so far, as if every update of generation n-1 were accepted before
any of generation n began. Prints, over seeds, the final test accuracy of

* ``fedavg``: FedAvg for as many rounds as gossip generations;
* ``gossip``: the best single model (what a gossip run ended on before ``FinishWithMix``), and the
  mean of each provider's best (what it ends on now).

    .venv/bin/python benchmarks/ml/gossip_sync_sim.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fedcommittee import ml  # noqa: E402
from fedcommittee.experiment import data_split, load_experiment  # noqa: E402
from fedcommittee.ml import state as st  # noqa: E402


def mean(states: list, weights: list[float] | None = None) -> dict:
    weights = weights or [1.0] * len(states)
    total = sum(weights)
    pairs = list(zip(states, weights, strict=True))
    return {k: (sum(s[k].double() * w for s, w in pairs) / total).to(states[0][k].dtype) for k in states[0]}


def run(config: Path, seed: int, generations: int) -> dict[str, float]:
    exp = replace(load_experiment(config), seed=seed)
    split = data_split(exp)
    honest = [i for i, p in enumerate(exp.providers) if p.behaviour == "honest"]
    data = [split.train.subset(split.partition[i]) for i in honest]
    init = ml.initial_state(exp.model, seed=seed)

    def acc(s, d) -> float:
        return ml.evaluate(exp.model, s, d).accuracy

    def trained(base, i: int, n: int):
        return ml.local_train(exp.model, base, data[i], exp.train_config(seed * 100 + n * 10 + i))

    g = init
    for n in range(generations):
        ups = [trained(g, i, n) for i in range(len(data))]
        g = st.add_scaled(g, mean([u.delta for u in ups], [u.num_samples for u in ups]))
    best: dict[int, tuple[float, dict]] = {}  # provider -> (validation accuracy, model)
    for n in range(generations):
        base = mean([m for _, m in best.values()]) if best else init
        new = {i: st.add_scaled(base, trained(base, i, n).delta) for i in range(len(data))}
        for i, m in new.items():
            q = acc(m, split.val)
            if i not in best or q > best[i][0]:
                best[i] = (q, m)
    single = max(best.values(), key=lambda t: t[0])[1]
    return {"fedavg": acc(g, split.test), "gossip_best_single": acc(single, split.test),
            "gossip_mix": acc(mean([m for _, m in best.values()]), split.test)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "gossip.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--generations", type=int, default=3, help="updates per provider (FedAvg rounds)")
    a = ap.parse_args(argv)
    rows = [run(a.config, s, a.generations) for s in a.seeds]
    print(f"{a.config.name}, seeds {a.seeds}, {a.generations} generations, in process (no ledger):")
    for key in rows[0]:
        xs = [r[key] for r in rows]
        sd = f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else ""
        print(f"  {key:20s} {statistics.mean(xs):.4f}{sd}   per seed: {', '.join(f'{x:.4f}' for x in xs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
