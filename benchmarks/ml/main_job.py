"""The main job (configs/default.yaml, what ``bash scripts/run.sh`` runs) in one process, without
ledger and IPFS, to choose its training and scoring settings by measurement.

The config is read as the agents read it (same split, member shards, initial weights, provider
seeds and behaviours); ``--set KEY=VALUE`` overrides a key of the YAML (dotted path, value read as
YAML) and ``--seeds`` replaces its ``seed``. Each round the providers train, every member scores
every update on its shard, an update is accepted iff the members' median score passes, and the
config's aggregation strategy (its state kept across rounds) aggregates the accepted ones; the test
set is scored after every round. ``--rule oracle`` accepts exactly the honest providers unscored
(the perfect committee: a cheap screen of training settings). Runs are cached as JSON under --out,
keyed by the resulting config, so nothing is computed twice.

  nice -n 15 .venv/bin/python benchmarks/ml/main_job.py --seeds 0 1 2 --set local.steps=50
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "ml"))

from committee_grid import Run, mean_sd  # noqa: E402

# Runs since models went channels-last (docs/ml.md, "Determinism and hashes"): the cache is keyed by
# the config, not the code, so the runs from before then stay in results/main_job, apart.
OUT = ROOT / "benchmarks" / "ml" / "results" / "main_job_channels_last"


def with_overrides(doc: dict, sets: list[str]) -> dict:
    """``doc`` with each ``dotted.key=yaml value`` of ``sets`` applied (a copy)."""
    doc = copy.deepcopy(doc)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        *path, last = key.split(".")
        node = doc
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"--set {item!r}: {part!r} is not a mapping in the config")
        node[last] = yaml.safe_load(text)
    return doc


def run_key(doc: dict, rule: str, screen: bool) -> str:
    digest = hashlib.sha256(json.dumps([doc, rule], sort_keys=True).encode()).hexdigest()[:12]
    return f"{rule}{'-screen' if screen else ''}-s{doc['seed']}-{digest}"


def run_one(args: tuple) -> dict:
    import torch

    from fedcommittee.experiment import parse_experiment

    torch.set_num_threads(1)
    doc, rule, label, screen = args
    exp = parse_experiment(doc, "<main_job>").with_model_id("main-job")
    behaviours = [p.behaviour for p in exp.providers]
    # "config": the config's own rule; otherwise a grid rule name (fedavg, oracle, trust, effect...).
    run = Run(exp, behaviours, exp.scoring.rule if rule == "config" else rule, [])
    g = run.ml.initial_state(exp.model, exp.seed)
    out: dict = {"doc": doc, "rule": rule, "honest": [b == "honest" for b in behaviours], "rounds": []}
    for r in range(1, exp.rounds + 1):
        g, rec = run.step(g, r, screen)
        result = run.ml.evaluate(exp.model, g, run.split.test)
        rec["accuracy"] = result.accuracy
        if r == exp.rounds:  # where the skew shows: the classes no honest provider holds most of
            rec["per_class"] = [float(a) for a in result.per_class_accuracy]
        out["rounds"].append(rec)
        print(f"[{label}] round {r} acc {rec['accuracy']:.3f} accepted {sum(rec['accepted'])} "
              f"score {rec['score_s']:.2f}s train {rec['train_s']:.2f}s",
              file=sys.stderr, flush=True)  # fmt: skip
    return out


def centralized(doc: dict, steps: int, lr: float) -> str:
    """The ceiling of the honest providers' data: one model trained on all of it pooled (the
    config's model, batch and momentum), scored on the same test set."""
    import numpy as np
    import torch

    from fedcommittee import ml
    from fedcommittee.experiment import data_split, parse_experiment
    from fedcommittee.ml import state as st

    torch.set_num_threads(1)
    exp = parse_experiment(doc, "<main_job>").with_model_id("main-job")
    split = data_split(exp)
    honest = [split.partition[i] for i, p in enumerate(exp.providers) if p.behaviour == "honest"]
    pool = split.train.subset(np.sort(np.concatenate(honest)))
    g = ml.initial_state(exp.model, exp.seed)
    cfg = ml.TrainConfig(steps=steps, lr=lr, momentum=exp.local.momentum, batch_size=exp.local.batch_size,
                         seed=exp.seed)  # fmt: skip
    trained = st.add_scaled(g, ml.local_train(exp.model, g, pool, cfg).delta)
    r = ml.evaluate(exp.model, trained, split.test)
    per_class = " ".join(f"{a:.2f}" for a in r.per_class_accuracy)
    return (f"{exp.model} seed {exp.seed}, {steps} steps at lr {lr} on the honest providers' "
            f"{len(pool)} samples (per class {pool.class_counts().tolist()}): test accuracy "
            f"{r.accuracy:.3f}, per class {per_class}")  # fmt: skip


# Offline screening. A rule whose verdicts on the oracle trajectory are the oracle's in every round
# would, run for real, produce exactly that trajectory (training and scoring are deterministic), so
# scoring a variant on a screened oracle run says all there is to know about it.
def effect_stat_score(stat: list | None, cos_floor: float, sym_se: float, rescue_se: float) -> float:
    """One member's effect score (no leave-one-out test) from its screened statistics: (t of the
    symmetric test, t of leave-one-out, cosine), None for a norm violator (scored -2 here: any
    violator scores below -1). The standard error cancels: se_margin is (k - t) / (|k| + |t|)."""
    if stat is None:
        return -2.0
    t_sym, cos = stat[0], stat[2]
    k = sym_se if cos >= cos_floor else -rescue_se
    if k == float("inf"):
        return 1.0
    return 1.0 if abs(k) + abs(t_sym) == 0 else (k - t_sym) / (abs(k) + abs(t_sym))


def classwise_stat_score(stat: list | None, harm_ratio: float) -> float:
    """A class-wise reading of the symmetric test (screened; not a rule of fedcommittee.ml): the
    update's largest help to one class of the shard (its loss there below its negation's) against
    its largest harm to one (above), >= 0 iff help >= harm_ratio x harm. The idea: an honest skewed
    update helps its own classes most, a flipped one harms them most."""
    if stat is None:
        return -2.0
    means = [mean for mean, _ in stat[3]]
    helps, harms = max(0.0, max(-m for m in means)), harm_ratio * max(0.0, max(means))
    return 0.0 if helps + harms == 0 else (helps - harms) / (helps + harms)


def trust_stat_scores(stats: list, peer_fraction: float) -> list[float]:
    """One member's trust scores of a round from the same statistics (the cosine to the same
    reference; a norm violator here is the free rider's empty update, whose cosine is 0)."""
    raw = [0.0 if x is None else x[2] for x in stats]
    peer = max(statistics.median(raw), 0.0)
    return [c - peer_fraction * peer if c >= 0 else c for c in raw]


def history_bars(params: dict, rejected_lately: bool) -> tuple[float, float, float]:
    """``effect_history`` (screened; not a rule of fedcommittee.ml): (cos_floor, sym_se, rescue_se),
    the ``strict_`` ones for a provider whose update was rejected within the last ``memory`` rounds.
    The idea: an attacker once caught is judged at tighter bars, an honest provider rarely is."""
    prefix = "strict_" if rejected_lately else ""
    return params[prefix + "cos_floor"], params[prefix + "sym_se"], params[prefix + "rescue_se"]


def offline(run: dict, rule: str, quorum: int | None = None, **params) -> list[list[bool]]:
    """Per round, the committee's verdicts under a rule: the median score of all members passes
    (quorum None), or of *every* ``quorum`` of them (the contract decides on the first ``quorum``
    verdicts in, whichever members they come from): an update counts as accepted only if every
    quorum accepts it, rejected only if every quorum rejects it, else as the oracle's opposite."""
    threshold = params.pop("threshold", 0.0)
    out, honest = [], run["honest"]
    for rec in run["rounds"]:
        if rule == "effect":
            member = [[effect_stat_score(x, **params) for x in m] for m in rec["t_stats"]]
        elif rule == "effect_history":
            lately = out[-int(params["memory"]) :]
            flagged = [any(not v[i] for v in lately) for i in range(len(honest))]
            bars = [history_bars(params, f) for f in flagged]
            member = [
                [effect_stat_score(x, *b) for x, b in zip(m, bars, strict=True)] for m in rec["t_stats"]
            ]
        elif rule == "classwise":
            member = [[classwise_stat_score(x, **params) for x in m] for m in rec["t_stats"]]
        else:
            member = [trust_stat_scores(m, **params) for m in rec["t_stats"]]
        size = quorum or len(member)
        verdicts = []
        for col, h in zip(zip(*member, strict=True), honest, strict=True):
            votes = {statistics.median(q) >= threshold for q in combinations(col, size)}
            verdicts.append(votes.pop() if len(votes) == 1 else not h)
        out.append(verdicts)
    return out


def screen_row(runs: list[dict], rule: str, **params) -> str:
    """Per run: honest recall / malicious rejected on the members' median, and the rounds whose
    verdicts are all the oracle's on the median of all members / on every quorum of 2."""
    cells = []
    for run in runs:
        honest, verdicts = run["honest"], offline(run, rule, **params)
        pairs = [(a, h) for v in verdicts for a, h in zip(v, honest, strict=True)]
        recall = sum(a for a, h in pairs if h) / sum(h for _, h in pairs)
        bad = [a for a, h in pairs if not h]
        rejected = f"{1 - sum(bad) / len(bad):.3f}" if bad else "-"
        by_two = sum(v == honest for v in offline(run, rule, quorum=2, **params))
        right = sum(v == honest for v in verdicts)
        cells.append(f"{recall:.3f} / {rejected} ({right}, {by_two} of {len(verdicts)})")
    name = f"{rule} " + " ".join(f"{k}={v:g}" for k, v in params.items())
    return f"| {name} | " + " | ".join(cells) + " |"


# The variants --variants scores offline: today's rules and the knobs that move their bars.
INF = float("inf")
VARIANTS = [
    ("trust", {"peer_fraction": pf, "threshold": th}) for pf, th in ((0.25, 0.01), (0.1, 0.01), (0.0, 0.001))
] + [
    ("effect", {"cos_floor": cf, "sym_se": k, "rescue_se": rs})
    for cf, k, rs in ((0.01, 1, 1), (0.01, 3, 1), (0.01, 10, 1), (0.0, 10, 0), (0.0, INF, 0), (-0.05, 3, 1),
                      (-0.05, 10, 1), (-0.05, 10, 0), (-0.05, 10, -1), (-0.05, 10, -3), (-0.05, INF, 1),
                      (-0.1, 10, 1), (-0.15, 10, 1), (-0.2, 10, 1))
] + [
    ("effect_history", {"cos_floor": -0.05, "sym_se": 10, "rescue_se": 1, "strict_cos_floor": cf,
                        "strict_sym_se": k, "strict_rescue_se": 1, "memory": m})
    for cf, k, m in ((0.01, 1, 1), (-0.05, 3, 1), (0.01, 1, 3), (-0.05, 3, 3))
] + [("classwise", {"harm_ratio": h}) for h in (1.0, 1.5)]  # fmt: skip


def run_name(run: dict) -> str:
    """'seed N' for a main-job run, 'partition attack seed N' for a committee_grid one."""
    if "doc" in run:
        return f"seed {run['doc']['seed']}"
    s = run["setting"]
    return f"{s['partition']} {s['attack']} seed {s['seed']}"


def variants_table(runs: list[dict]) -> str:
    seeds = " | ".join(f"{run_name(r)}: recall / rejected (rounds right: median, any 2)" for r in runs)
    lines = [f"| variant | {seeds} |", "|---|" + "---|" * len(runs)]
    # Runs screened before the per-class statistics were recorded cannot be read class-wise.
    stats = [x for run in runs for rec in run["rounds"] for m in rec["t_stats"] for x in m if x]
    by_class = all(len(x) > 3 for x in stats)
    rows = [(rule, params) for rule, params in VARIANTS if rule != "classwise" or by_class]
    return "\n".join(lines + [screen_row(runs, rule, **params) for rule, params in rows])


def summarize(run: dict) -> dict:
    honest, rounds = run["honest"], run["rounds"]
    ok = [r["accepted"] for r in rounds]
    n_h, n_m = sum(honest), len(honest) - sum(honest)
    acc = [r["accuracy"] for r in rounds]
    local = run["doc"]["local"]
    return {
        "final": acc[-1],
        "best": max(acc),
        "recall": sum(a for v in ok for a, h in zip(v, honest, strict=True) if h) / (n_h * len(ok)),
        "rejected": sum(not a for v in ok for a, h in zip(v, honest, strict=True) if not h) / (n_m * len(ok))
        if n_m
        else None,
        # Provider steps over the run: the main job's training cost (members train a reference of
        # scoring.reference_steps a round as well).
        "steps": local["steps"] * len(rounds),
        "train_s": statistics.mean(r["train_s"] for r in rounds),
        "score_s": statistics.mean(r["score_s"] for r in rounds),
    }


def changes(doc, base, prefix: str = "") -> list[str]:
    """``key=value`` for every dotted key where ``doc`` differs from ``base`` (the seed aside)."""
    if isinstance(doc, dict) and isinstance(base, dict):
        keys = sorted((set(doc) | set(base)) - ({"seed"} if not prefix else set()))
        return [c for k in keys for c in changes(doc.get(k), base.get(k), f"{prefix}{k}.")]
    return [] if doc == base else [f"{prefix[:-1]}={json.dumps(doc)}"]


def cached(out: Path, base: dict) -> dict[str, list[dict]]:
    """Every cached run under ``out``, grouped by its changes to ``base`` and its rule."""
    groups: dict[str, list[dict]] = {}
    for f in sorted(out.glob("*.json")):
        run = json.loads(f.read_text())
        label = " ".join(changes(run["doc"], base)) or "the config"
        groups.setdefault(f"{label} [{run['rule']}]", []).append(run)
    return groups


def table(runs: dict[str, list[dict]]) -> str:
    cols = ["final", "best", "recall", "rejected", "steps", "train_s", "score_s"]
    lines = ["| variant | seeds | " + " | ".join(cols) + " |", "|" + "---|" * (2 + len(cols))]
    for label, group in runs.items():
        sums = [summarize(r) for r in group]
        cells = [mean_sd([s[c] for s in sums]) for c in cols]
        lines.append(f"| {label} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--rule", default="config", help="config (its own rule), oracle, fedavg, trust, effect")
    ap.add_argument("--label", default="", help="the variant's name in the table (default: the --set items)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--screen",
        action="store_true",
        help="also record the effect rule's statistics per member and update (offline screening)",
    )
    ap.add_argument("--variants", action="store_true",
                    help="with --screen: score rule variants offline on the screened runs")  # fmt: skip
    ap.add_argument("--screened", nargs="+", type=Path, default=[], metavar="JSON",
                    help="instead: the --variants table of these screened runs (grid runs too)")  # fmt: skip
    ap.add_argument("--table", action="store_true", help="only print the table of every cached run")
    ap.add_argument("--centralized", nargs="+", default=[], metavar="STEPS:LR",
                    help="instead: train one model on the honest providers' pooled data")  # fmt: skip
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(a.config.read_text())
    if a.screened:
        print(variants_table([json.loads(p.read_text()) for p in a.screened]))
        return
    if a.table:
        print(table(cached(a.out, config)))
        return
    base = with_overrides(config, a.sets)
    for item in a.centralized:  # cheap, not cached
        steps, _, lr = item.partition(":")
        for seed in a.seeds:
            print(centralized(dict(base, seed=seed), int(steps), float(lr)), flush=True)
    if a.centralized:
        return
    label = a.label or (" ".join(a.sets) or "config") + f" [{a.rule}]"
    docs = [dict(base, seed=seed) for seed in a.seeds]
    paths = [a.out / f"{run_key(d, a.rule, a.screen)}.json" for d in docs]
    todo = [(d, p) for d, p in zip(docs, paths, strict=True) if not p.exists()]
    with ProcessPoolExecutor(a.workers) as pool:
        jobs = [(d, a.rule, f"{label} s{d['seed']}", a.screen) for d, _ in todo]
        for (_, path), res in zip(todo, pool.map(run_one, jobs), strict=True):
            path.write_text(json.dumps(res))
            print(f"saved {path.name}", file=sys.stderr, flush=True)
    runs = [json.loads(p.read_text()) for p in paths]
    print(variants_table(runs) if a.variants else table({label: runs}))


if __name__ == "__main__":
    main()
