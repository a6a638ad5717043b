"""In-process federated-learning benchmark for the ML core (no ledger, no IPFS).

Simulates 10 providers on Fashion-MNIST with a committee of members holding validation shards carved
from the training set, and prints per-round test accuracy and final tables. Scenarios:

  dominant   dominant-class 80% partition, FedAvg (target >= 0.88 within 30 rounds) + centralized
  centralized  the same budget trained centrally, alone (e.g. after `dominant --no-centralized`)
  onecls     one class per client: FedAvg / FedProx / FedAvgM / small local steps
  attacks    30% attackers of each kind under dominant-class and Dirichlet(0.1): acceptance
             precision/recall of each scoring rule; committee-filtered FedAvg vs FedAvg, median,
             trimmed mean, Krum
  throughput local training samples/s and peak memory per model

Example:  nice -n 10 .venv/bin/python benchmarks/ml/fl_bench.py dominant --rounds 30 --steps 50
Outputs go to benchmarks/ml/results/ (txt tables, json histories, png curves).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from fedcommittee.ml import partition as part
from fedcommittee.ml.aggregate import FedAvg, get_strategy
from fedcommittee.ml.attacks import Behaviour, get_behaviour, run_behaviour
from fedcommittee.ml.data import load_fashion_mnist, split_shards, train_val_split
from fedcommittee.ml.evaluate import evaluate
from fedcommittee.ml.models import initial_state
from fedcommittee.ml.scoring import ScoringRule, accept, score_updates
from fedcommittee.ml.train import TrainConfig, local_train

RESULTS = Path(__file__).resolve().parent / "results"

# Scoring rules compared in the attack scenario. "abs-acc" is the naive rule: accept iff
# acc(G + delta) >= acc(G) - 0.02 (damped with n = 1 is exactly that comparison).
RULES = {
    "abs-acc": ScoringRule("damped", metric="accuracy", damping=1.0, threshold=-0.02),
    "damped-loss": ScoringRule("damped", metric="loss", damping=10.0, threshold=0.0),
    "loo-loss": ScoringRule("loo", metric="loss", threshold=0.0),
    "trust": ScoringRule("trust"),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Env:
    """Loaded data: provider pool, committee shards, per-round test subset and full test set."""

    def __init__(self, n_members: int, val_fraction: float, eval_n: int, seed: int) -> None:
        full = load_fashion_mnist("train")
        self.pool, val = train_val_split(full, val_fraction, seed)
        self.shards = split_shards(val, n_members, seed)
        self.test = load_fashion_mnist("test")
        rng = np.random.default_rng(seed)
        self.test_small = self.test.subset(np.sort(rng.permutation(len(self.test))[:eval_n]))


def make_parts(env: Env, name: str, n_clients: int, seed: int) -> part.Partition:
    y = env.pool.y.numpy()
    if name == "dominant":
        return part.dominant_class(y, n_clients, share=0.8, seed=seed)
    if name == "onecls":
        return part.one_class_per_client(y, n_clients, seed=seed)
    if name == "dirichlet":
        return part.dirichlet(y, n_clients, alpha=0.1, seed=seed)
    if name == "iid":
        return part.iid(y, n_clients, seed=seed)
    raise ValueError(name)


def run_fl(
    env: Env,
    model: str,
    parts: part.Partition,
    rounds: int,
    cfg: TrainConfig,
    strategy: str = "fedavg",
    strategy_params: dict | None = None,
    behaviours: list[Behaviour] | None = None,
    committee_rule: str | None = None,
    score_rules: tuple[str, ...] = (),
    seed: int = 0,
    label: str = "",
) -> dict:
    """One federated run; returns a history dict. If ``committee_rule`` is set, only updates whose
    median committee score passes that rule are aggregated (FedAvg); every rule in ``score_rules``
    is also evaluated on every update to measure acceptance precision/recall."""
    n = len(parts)
    behaviours = behaviours or [get_behaviour("honest")] * n
    strat = get_strategy(strategy, **(strategy_params or {}))
    g = initial_state(model, seed)
    datasets = [env.pool.subset(p) for p in parts]
    rules = tuple(dict.fromkeys(((committee_rule,) if committee_rule else ()) + score_rules))
    hist: dict = {"label": label, "model": model, "strategy": strategy, "committee_rule": committee_rule,
                  "cfg": asdict(cfg), "acc": [], "decisions": [], "samples_per_s": []}  # fmt: skip
    t0 = time.perf_counter()
    for r in range(rounds):
        updates = []
        for i in range(n):
            c = TrainConfig(**{**asdict(cfg), "seed": seed * 100_000 + r * 100 + i})
            u = run_behaviour(behaviours[i], model, g, datasets[i], c)
            if "samples_per_s" in u.metrics:
                hist["samples_per_s"].append(u.metrics["samples_per_s"])
            updates.append(u)
        deltas = [u.delta for u in updates]
        sizes = [u.num_samples for u in updates]
        verdicts: dict[str, list[bool]] = {}
        for rn in rules:
            rule = RULES[rn]
            per_member = [score_updates(rule, model, g, deltas, shard, sizes) for shard in env.shards]
            med = [statistics.median(col) for col in zip(*per_member, strict=True)]
            verdicts[rn] = [accept(rule, s) for s in med]
        hist["decisions"].append({"honest": [b.name == "honest" for b in behaviours], **verdicts})
        if committee_rule:
            chosen = [(d, s) for d, s, ok in zip(deltas, sizes, verdicts[committee_rule], strict=True) if ok]
            if chosen:
                g = FedAvg().aggregate(g, chosen)
        else:
            g = strat.aggregate(g, list(zip(deltas, sizes, strict=True)))
        acc = evaluate(model, g, env.test_small).accuracy
        hist["acc"].append(acc)
        extra = ""
        if committee_rule:
            extra = f" accepted={sum(verdicts[committee_rule])}/{n}"
        print(
            f"[{label}] round {r + 1:>2} acc={acc:.4f}{extra} t={time.perf_counter() - t0:.0f}s", flush=True
        )
    final = evaluate(model, g, env.test)
    hist["final_test"] = final.as_dict()
    hist["seconds"] = time.perf_counter() - t0
    hist["peak_rss_mb"] = peak_rss_mb()
    return hist


def acceptance_stats(hist: dict, rule: str) -> dict:
    tp = fp = fn = tn = 0
    for d in hist["decisions"]:
        for honest, ok in zip(d["honest"], d[rule], strict=True):
            tp += honest and ok
            fp += (not honest) and ok
            fn += honest and not ok
            tn += (not honest) and not ok
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "attackers_rejected": tn / (tn + fp) if tn + fp else float("nan")}  # fmt: skip


def centralized(env: Env, model: str, cfg: TrainConfig, total_steps: int, seed: int) -> dict:
    """Same CNN, same optimizer and the same number of SGD steps x batch, on the pooled data."""
    t0 = time.perf_counter()
    g = initial_state(model, seed)
    c = TrainConfig(**{**asdict(cfg), "steps": total_steps, "seed": seed})
    u = local_train(model, g, env.pool, c)
    g = {k: g[k] + u.delta[k] for k in g}
    res = evaluate(model, g, env.test).as_dict()
    res["seconds"] = time.perf_counter() - t0
    res["samples_per_s"] = u.metrics["samples_per_s"]
    print(
        f"[centralized {model}] steps={total_steps} acc={res['accuracy']:.4f} ({res['seconds']:.0f}s)",
        flush=True,
    )
    return res


def save(name: str, payload: dict, text: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=float))
    (RESULTS / f"{name}.txt").write_text(text)
    print(text, flush=True)


def plot_curves(name: str, histories: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for h in histories:
        ax.plot(range(1, len(h["acc"]) + 1), h["acc"], label=h["label"])
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (subset)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=100)
    plt.close(fig)


def cmd_line() -> str:
    return "python benchmarks/ml/fl_bench.py " + " ".join(sys.argv[1:])


def scenario_dominant(args: argparse.Namespace, env: Env) -> None:
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, momentum=args.momentum)
    parts = make_parts(env, "dominant", args.clients, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    part.plot_partition(parts, env.pool.y.numpy(), RESULTS / "partition_dominant.png", "dominant class 80%")
    sp = {"momentum": args.server_momentum} if args.strategy == "fedavgm" else {}
    label = f"{args.strategy} dominant-80% steps={args.steps} lr={args.lr} m={args.momentum}"
    h = run_fl(env, args.model, parts, args.rounds, cfg, args.strategy, sp, seed=args.seed, label=label)
    cen = {"accuracy": float("nan")}
    if not args.no_centralized:
        cen = centralized(env, args.model, cfg, args.rounds * args.clients * args.steps, args.seed)
    first = next((i + 1 for i, a in enumerate(h["acc"]) if a >= 0.88), None)
    text = "\n".join([
        f"# dominant-class 80%, {args.clients} clients, model {args.model}, command: {cmd_line()}",
        part.format_summary(parts, env.pool.y.numpy()),
        "round accuracies (test subset): " + " ".join(f"{a:.3f}" for a in h["acc"]),
        f"{args.strategy} final full-test accuracy after {args.rounds} rounds:"
        f" {h['final_test']['accuracy']:.4f}"
        f" (macro F1 {h['final_test']['macro_f1']:.4f}); first round >= 0.88 on subset: {first}",
        f"centralized same budget ({args.rounds * args.clients * args.steps} steps x {args.batch}):"
        f" {cen['accuracy']:.4f}",
        f"local training throughput: median {statistics.median(h['samples_per_s']):.0f} samples/s;"
        f" wall {h['seconds']:.0f}s; peak RSS {peak_rss_mb():.0f} MB",
    ])  # fmt: skip
    name = f"dominant_{args.model}_{args.out_tag}"
    save(name, {"run": h, "centralized": cen}, text)
    plot_curves(name, [h])


def scenario_centralized(args: argparse.Namespace, env: Env) -> None:
    """The centralized baseline of `dominant` alone (same CNN, optimizer and steps x batch budget)."""
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, momentum=args.momentum)
    budget = args.rounds * args.clients * args.steps
    cen = centralized(env, args.model, cfg, budget, args.seed)
    text = (f"# centralized baseline, model {args.model}, command: {cmd_line()}\n"
            f"centralized same budget ({budget} steps x {args.batch}): {cen['accuracy']:.4f}"
            f" (macro F1 {cen.get('macro_f1', float('nan')):.4f}); {cen['seconds']:.0f} s,"
            f" {cen['samples_per_s']:.0f} samples/s")  # fmt: skip
    save(f"centralized_{args.model}_{args.out_tag}", {"centralized": cen}, text)


def scenario_onecls(args: argparse.Namespace, env: Env) -> None:
    parts = make_parts(env, "onecls", args.clients, args.seed)
    base = dict(batch_size=args.batch, lr=args.lr, momentum=args.momentum)
    variants = [
        ("fedavg", TrainConfig(steps=args.steps, **base), "fedavg", {}, None),
        ("fedprox mu=0.1", TrainConfig(steps=args.steps, prox_mu=0.1, **base), "fedavg", {}, None),
        ("fedavg 2 steps", TrainConfig(steps=2, **base), "fedavg", {}, None),
        ("fedavgm 2 steps", TrainConfig(steps=2, **base), "fedavgm", {"momentum": 0.9}, None),
        (f"committee {args.rule}", TrainConfig(steps=args.steps, **base), "fedavg", {}, args.rule),
    ]
    wanted = set(args.variants.split(",")) if args.variants else None
    hs = []
    for label, cfg, strat, sp, rule in variants:
        if wanted and label.split()[0] not in wanted and label not in wanted:
            continue
        hs.append(run_fl(env, args.model, parts, args.rounds, cfg, strat, sp, committee_rule=rule,
                         seed=args.seed, label=label))  # fmt: skip
    lines = [f"# one class per client, {args.clients} clients, model {args.model}, command: {cmd_line()}",
             f"{'variant':<22} {'final acc':>9} {'best subset acc':>15} {'seconds':>8}"]  # fmt: skip
    for h in hs:
        lines.append(
            f"{h['label']:<22} {h['final_test']['accuracy']:>9.4f} {max(h['acc']):>15.4f}"
            f" {h['seconds']:>8.0f}"
        )
    save(f"onecls_{args.model}", {"runs": hs}, "\n".join(lines))
    plot_curves(f"onecls_{args.model}", hs)


def scenario_attacks(args: argparse.Namespace, env: Env) -> None:
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, momentum=args.momentum)
    attacks = args.attacks.split(",")
    partitions = args.partitions.split(",")
    n_att = round(0.3 * args.clients)
    rng = np.random.default_rng(args.seed)
    bad = set(rng.choice(args.clients, size=n_att, replace=False).tolist())
    aggs = [("fedavg", "fedavg", {}), ("median", "median", {}),
            ("trimmed_mean", "trimmed_mean", {"beta": 0.3}),
            ("krum", "krum", {"f": n_att, "multi": 1})]  # fmt: skip
    rows, payload = [], {}
    for pname in partitions:
        parts = make_parts(env, pname, args.clients, args.seed)
        for att in attacks:
            behaviours = [
                get_behaviour(att) if i in bad else get_behaviour("honest") for i in range(args.clients)
            ]
            tag = f"{pname}/{att}"
            hs = [run_fl(env, args.model, parts, args.rounds, cfg, committee_rule=args.rule,
                         score_rules=tuple(RULES), behaviours=behaviours, seed=args.seed,
                         label=f"{tag} committee[{args.rule}]")]  # fmt: skip
            for label, strat, sp in aggs:
                hs.append(run_fl(env, args.model, parts, args.rounds, cfg, strat, sp, behaviours=behaviours,
                                 seed=args.seed, label=f"{tag} {label}"))  # fmt: skip
            stats = {rn: acceptance_stats(hs[0], rn) for rn in RULES}
            payload[tag] = {"runs": hs, "acceptance": stats}
            rows.append((tag, stats, {h["label"].split(" ", 1)[1]: h["final_test"]["accuracy"] for h in hs}))
            plot_curves(f"attacks_{pname}_{att}_{args.model}", hs)
    lines = [f"# 30% attackers (clients {sorted(bad)}), model {args.model}, rounds {args.rounds},"
             f" command: {cmd_line()}",
             "## acceptance per scoring rule (precision = honest share of accepted, recall = honest accepted,"
             " rej = attackers rejected)"]  # fmt: skip
    lines.append(f"{'scenario':<26}" + "".join(f"{rn:>21}" for rn in RULES))
    for tag, stats, _ in rows:
        lines.append(
            f"{tag:<26}"
            + "".join(
                f"   {s['precision']:.2f}/{s['recall']:.2f}/{s['attackers_rejected']:.2f}"
                for s in stats.values()
            )
        )
    lines.append("## final full-test accuracy")
    names = list(rows[0][2]) if rows else []
    lines.append(f"{'scenario':<26}" + "".join(f"{n:>20}" for n in names))
    for tag, _, accs in rows:
        lines.append(f"{tag:<26}" + "".join(f"{accs[n]:>20.4f}" for n in names))
    lines.append(f"peak RSS {peak_rss_mb():.0f} MB")
    save(f"attacks_{args.model}_{args.out_tag}", payload, "\n".join(lines))


def scenario_throughput(args: argparse.Namespace, env: Env) -> None:
    lines = [f"# local training throughput, {torch.get_num_threads()} torch thread(s), batch {args.batch}"]
    for model in ("mlp-fmnist", "cnn-small", "cnn-fmnist"):
        g = initial_state(model, 0)
        u = local_train(model, g, env.pool.subset(range(5000)), TrainConfig(steps=50, batch_size=args.batch))
        lines.append(
            f"{model:<12} {u.metrics['samples_per_s']:>9.0f} samples/s"
            f"  peak RSS so far {peak_rss_mb():.0f} MB"
        )
    save("throughput", {}, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["dominant", "centralized", "onecls", "attacks", "throughput"])
    ap.add_argument("--model", default="cnn-fmnist")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50, help="local SGD steps per round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--eval-n", type=int, default=2000)
    ap.add_argument("--strategy", default="fedavg", help="dominant: server strategy (fedavg or fedavgm)")
    ap.add_argument("--server-momentum", type=float, default=0.9)
    ap.add_argument("--no-centralized", action="store_true", help="dominant: skip the centralized baseline")
    ap.add_argument("--rule", default="trust", choices=sorted(RULES))
    ap.add_argument("--attacks", default="label_flip,sign_flip,gaussian_noise,scaling,free_rider")
    ap.add_argument("--partitions", default="dominant,dirichlet")
    ap.add_argument("--variants", default="", help="onecls: comma list of variant names to run")
    ap.add_argument("--out-tag", default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = Env(args.members, args.val_fraction, args.eval_n, args.seed)
    {"dominant": scenario_dominant, "centralized": scenario_centralized, "onecls": scenario_onecls,
     "attacks": scenario_attacks, "throughput": scenario_throughput}[args.scenario](args, env)  # fmt: skip


if __name__ == "__main__":
    main()
