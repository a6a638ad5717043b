"""In-process committee grid (no ledger, no IPFS): scoring rules against attacks on the Flower
comparison's setting (benchmarks/flower/setting.py: cnn-small, 10 providers, 3 member shards, 20
local steps, lr 0.03, momentum 0.9, the same deterministic split, seeds and provider training).

Each run is one (partition, attack, fraction, rule, seed). Per round: the providers train (round-aware
attackers see the round's honest deltas: omniscient), every member scores all updates on its shard,
an update is accepted iff the members' median score passes the rule, FedAvg aggregates the accepted
ones. ``fedavg`` accepts everything: the in-process FedAvg, the same work as Flower FedAvg
(benchmarks/flower/notes.md). ``--shadow`` also scores every round with other rules without acting
on them (screening). Runs are cached as JSON under --out; ``--table`` prints mean and sd over seeds,
``--markdown`` the tables of docs/ml.md and benchmarks/BENCHMARKS.md (clean, then one per attacker
share, with each run's drop from the same rule's clean run of the same seed and length).

  nice -n 10 .venv/bin/python benchmarks/ml/committee_grid.py --partitions dir0.5 --rules fedavg \
      trust effect --seeds 0 1 2 --rounds 30 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from itertools import product
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "flower"))

from setting import COMMITTEES, Setting, experiment_doc  # noqa: E402

OUT = ROOT / "benchmarks" / "ml" / "results" / "committee_grid"
# Grid name -> (scoring rule, parameters): variants of the effect rule measured while choosing it.
RULE_VARIANTS = {
    "effect_loo2": ("effect", {"loo_se": 2.0}),
    "effect_norm2": ("effect", {"max_norm_ratio": 2.0}),
    "effect_gross10": ("effect", {"gross_se": 10.0}),
    # The main job's bars (configs/default.yaml): chosen there to keep every honest skewed update.
    "effect_mainjob": COMMITTEES["effect_mainjob"],
    # The same with the 2x norm band of effect_norm2 (a screening variant against the backdoor).
    "effect_mainjob_norm2": ("effect", {**COMMITTEES["effect_mainjob"][1], "max_norm_ratio": 2.0}),
    # Lenient bars for providers in good standing, the tight ones after a rejection (docs/ml.md,
    # "Probation"): effect_probation keeps sym_se 10 on probation, effect_probation_sym1 tightens it.
    "effect_probation": COMMITTEES["effect_probation"],
    "effect_probation_sym1": ("effect", {**COMMITTEES["effect_probation"][1], "probation_sym_se": 1.0}),
    # Probation also until a provider's first accepted update (docs/ml.md, "When the label flips get
    # in"): configs/default.yaml's committee.
    "effect_probation_start": COMMITTEES["effect_probation_start"],
    # The same with sym_se 1 on probation (docs/ml.md, "Gossip probation": in gossip it halved the label
    # flips that got in).
    "effect_probation_start_sym1": (
        "effect",
        {**COMMITTEES["effect_probation_start"][1], "probation_sym_se": 1.0},
    ),
    # The default committee with the 2x norm band (docs/ml.md, "The backdoor's collateral"): a screen
    # against the backdoor runs whose large in-bound updates stall the model.
    "effect_probation_start_norm2": (
        "effect",
        {**COMMITTEES["effect_probation_start"][1], "max_norm_ratio": 2.0},
    ),
    # The default committee with the point of the test guarded (`guard_se` 3, docs/ml.md, "The
    # backdoor's stall"): an aggregate worse than the global model is rebuilt before anything is judged.
    "effect_probation_start_guard3": (
        "effect",
        {**COMMITTEES["effect_probation_start"][1], "guard_se": 3.0},
    ),
    # That with sym_se 1 on probation (a backdoor update tested at a guarded point passed sym_se 10):
    # configs/default.yaml's committee until near-copies were screened.
    "effect_probation_start_sym1_guard3": COMMITTEES["effect_probation_start_sym1_guard3"],
    # That with near-copies of an earlier update of the round rejected (`twin_ratio` 0.2, docs/ml.md,
    # "Near-copies": ALIE, min-max and colluders send copies, backdoor attackers near ones):
    # configs/default.yaml's committee.
    "effect_probation_start_sym1_guard3_twin20": COMMITTEES["effect_probation_start_sym1_guard3_twin20"],
}
UNSCORED = ("fedavg", "oracle")  # grid rules that score nothing (see Run)
# A grid rule name ending in this ("fedavg+la", "effect_gross10+la"): the same rule, with the
# providers (and the members' references) trained with logit adjustment 1 (`local.logit_adjust`).
LOGIT_ADJUSTED = "+la"


def training_of(name: str) -> tuple[str, float]:
    """A grid rule name's scoring rule and the local training's logit adjustment."""
    if name.endswith(LOGIT_ADJUSTED):
        return name.removesuffix(LOGIT_ADJUSTED), 1.0
    return name, 0.0


def make_rule(exp, name: str):
    """The experiment's scoring rule (reference trained like the providers) under another name."""
    from fedcommittee.ml import scoring
    from fedcommittee.policy import Policy

    base, params = RULE_VARIANTS.get(name, (name, {}))
    rule = Policy.from_experiment(exp).scoring_rule()
    return replace(rule, name=base, threshold=scoring.DEFAULT_THRESHOLDS[base], **params)


def run_key(partition: str, attack: str, fraction: float, rule: str, seed: int, rounds: int) -> str:
    return f"{partition}-{attack}{round(100 * fraction)}-{rule}-s{seed}-r{rounds}"


class Run:
    """One run's fixed parts: the experiment, its split, shards and providers' behaviours.

    ``rule``: a scoring rule name (or RULE_VARIANTS key), ``fedavg`` (accept everything) or
    ``oracle`` (accept exactly the honest providers: what a perfect committee would do, unscored)."""

    def __init__(self, exp, behaviours: list[str], rule: str, shadow: list[str]) -> None:
        from fedcommittee import ml
        from fedcommittee.experiment import data_split

        self.exp, self.ml, self.model = exp, ml, exp.model
        self.names = [p.name for p in exp.providers]
        self.split = data_split(exp)
        self.shards = ml.split_shards(self.split.val, len(exp.committee), exp.seed + 3)
        self.rule_name = rule
        self.rule = None if rule in UNSCORED else make_rule(exp, rule)
        self.shadow = {name: make_rule(exp, name) for name in shadow if name != rule}
        self.behaviours = behaviours
        self.data = [self.split.train.subset(part) for part in self.split.partition]
        self.strategy = ml.get_strategy(exp.aggregation, **exp.aggregation_params)  # kept across rounds
        self.history: list[list[bool]] = []  # the run's verdicts, round by round (for probation)

    @classmethod
    def from_setting(cls, s: Setting, rule: str, shadow: list[str]) -> Run:
        from fedcommittee.experiment import parse_experiment

        # The behaviours come from the setting (s.behaviours()); the split, seeds and training do not
        # depend on them, so the experiment is parsed from the clean setting.
        doc = experiment_doc(s.clean())
        rule, logit_adjust = training_of(rule)
        doc["local"]["logit_adjust"] = logit_adjust
        exp = parse_experiment(doc, "<grid>").with_model_id("grid")
        return cls(exp, s.behaviours(), rule, shadow)

    def on_probation(self, rule) -> list[bool] | None:
        """Per provider, whether ``rule`` judges it on probation: rejected in one of the last
        ``probation_rounds`` rounds (None when the rule has no probation)."""
        k = getattr(rule, "probation_rounds", 0)
        if not k:
            return None
        recent = self.history[-k:]
        return [rule.on_probation(any(not v[i] for v in recent), any(v[i] for v in self.history))
                for i in range(len(self.names))]  # fmt: skip

    def train(self, g, r: int) -> tuple[list, list[int], float]:
        """Honest providers first, then attackers with the honest deltas as their view."""
        from fedcommittee.ml.attacks import RoundView
        from fedcommittee.roles.provider import _seed

        ml, exp = self.ml, self.exp
        deltas: list = [None] * len(self.names)
        sizes = [len(d) for d in self.data]
        honest = [i for i, b in enumerate(self.behaviours) if b == "honest"]
        t0 = time.perf_counter()
        for i in honest:
            cfg = exp.train_config(_seed(exp.seed, self.names[i], r), r)
            deltas[i] = ml.local_train(self.model, g, self.data[i], cfg).delta
        train_s = (time.perf_counter() - t0) / max(len(honest), 1)
        view_rule = self.rule or make_rule(exp, "trust")
        probation = self.on_probation(view_rule) or [False] * len(self.names)
        for i, b in enumerate(self.behaviours):
            if b == "honest":
                continue
            cfg = exp.train_config(_seed(exp.seed, self.names[i], r), r)
            surrogate = self.data[i].subset(range(min(256, len(self.data[i]))))
            view = RoundView([deltas[j] for j in honest], self.model, g, view_rule, surrogate, probation[i])
            deltas[i] = ml.run_behaviour(ml.get_behaviour(b), self.model, g, self.data[i], cfg, view).delta
        return deltas, sizes, train_s

    def verdicts(self, rule, g, deltas, sizes) -> tuple[list[bool], list[float], float, list]:
        """Verdicts on the members' median scores, those medians, scoring seconds per member, and
        every member's scores."""
        ml = self.ml
        t0 = time.perf_counter()
        flags = self.on_probation(rule)
        per_member = [ml.score_updates(rule, self.model, g, deltas, sh, sizes, probation=flags)
                      for sh in self.shards]  # fmt: skip
        seconds = (time.perf_counter() - t0) / len(self.shards)
        med = [statistics.median(col) for col in zip(*per_member, strict=True)]
        return [ml.accept(rule, m) for m in med], med, seconds, per_member

    def judge(self, g, deltas, sizes) -> tuple[list[bool], list[float], float, list]:
        """As ``verdicts``, for the run's rule (or for ``fedavg`` / ``oracle``)."""
        if self.rule is not None:
            return self.verdicts(self.rule, g, deltas, sizes)
        if self.rule_name == "oracle":
            return [b == "honest" for b in self.behaviours], [], 0.0, []
        return [True] * len(deltas), [], 0.0, []

    def step(self, g, r: int, screen: bool = False) -> tuple[dict, dict]:
        """Round ``r`` from global model ``g``: (the next global model, the round's record)."""
        deltas, sizes, train_s = self.train(g, r)
        ok, med, score_s, per_member = self.judge(g, deltas, sizes)
        shadow_ok = {n: self.verdicts(sr, g, deltas, sizes)[0] for n, sr in self.shadow.items()}
        t_stats = self.effect_t(g, deltas, sizes) if screen else None
        self.history.append(ok)
        chosen = [(d, n) for d, n, a in zip(deltas, sizes, ok, strict=True) if a]
        if len(chosen) >= self.exp.min_accepted:
            g = self.strategy.aggregate(g, chosen)
        rec = {"round": r, "accepted": ok, "scores": med, "member_scores": per_member, "shadow": shadow_ok,
               "train_s": train_s, "score_s": score_s, "t_stats": t_stats, "accuracy": None}  # fmt: skip
        return g, rec

    def effect_t(self, g, deltas, sizes) -> list[list]:
        """Screening: per member and update, the effect rule's two t statistics (mean / SE of the
        paired loss differences) and the cosine to the reference, or None for a norm violator."""
        from fedcommittee.ml import scoring

        t = scoring.t_stat

        def by_class(diff, y) -> list[list[float]]:
            # The symmetric test's mean and standard error on each class of the shard: an honest
            # skewed update helps its own classes most, a flipped one harms them most.
            out = []
            for c in range(int(y.max()) + 1):
                d = diff[y == c]
                out.append([float(d.mean()) if len(d) else 0.0, scoring.standard_error(d)])
            return out

        rule = make_rule(self.exp, "effect")
        tests = [scoring.effect_tests(rule, self.model, g, deltas, sh, sizes) for sh in self.shards]
        return [
            [None if isinstance(x, float) else (t(x[0]), t(x[1]), x[2], by_class(x[0], sh.y)) for x in m]
            for m, sh in zip(tests, self.shards, strict=True)
        ]

    def backdoor_success(self, g) -> float:
        """Share of triggered test images (true class not the target) classified as the target."""
        return self.ml.backdoor_success(self.model, g, self.split.test)


def run_one(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    partition, attack, fraction, rule, seed, rounds, shadow, screen = args
    s = Setting(partition=partition, rounds=rounds, seed=seed, attack=attack, attack_fraction=fraction)
    run = Run.from_setting(s, rule, shadow)
    g = run.ml.initial_state(s.model, run.exp.seed)
    honest = [b == "honest" for b in run.behaviours]
    out: dict = {"setting": json.loads(s.to_json()), "rule": rule, "honest": honest, "rounds": []}
    for r in range(1, rounds + 1):
        g, rec = run.step(g, r, screen)
        if r > rounds - 3:  # the test set is scored where the tables read it: the last 3 rounds
            rec["accuracy"] = run.ml.evaluate(s.model, g, run.split.test).accuracy
            if attack == "backdoor":
                rec["backdoor_success"] = run.backdoor_success(g)
        out["rounds"].append(rec)
        print(f"[{run_key(partition, attack, fraction, rule, seed, rounds)}] round {r} acc "
              f"{rec['accuracy'] or 0:.3f} accepted {sum(rec['accepted'])} score {rec['score_s']:.2f}s "
              f"train {rec['train_s']:.2f}s", file=sys.stderr, flush=True)  # fmt: skip
    return out


def _rates(honest: list[bool], verdicts: list[list[bool]]) -> dict:
    tp = sum(a and h for v in verdicts for a, h in zip(v, honest, strict=True))
    fp = sum(a and not h for v in verdicts for a, h in zip(v, honest, strict=True))
    n_h = sum(honest) * len(verdicts)
    n_m = (len(honest) - sum(honest)) * len(verdicts)
    return {
        "recall": tp / n_h if n_h else None,
        "rejected": (n_m - fp) / n_m if n_m else None,
        "precision": tp / (tp + fp) if tp + fp else None,
    }


def summarize(run: dict) -> dict:
    rounds = run["rounds"]
    acc = [r["accuracy"] for r in rounds if r["accuracy"] is not None]
    out = {
        "final": acc[-1],
        "tail3": statistics.mean(acc[-3:]),
        **_rates(run["honest"], [r["accepted"] for r in rounds]),
    }
    out["score_s"] = statistics.mean(r["score_s"] for r in rounds)
    out["train_s"] = statistics.mean(r["train_s"] for r in rounds)
    if "backdoor_success" in rounds[-1]:
        out["backdoor"] = rounds[-1]["backdoor_success"]
    for name in rounds[0]["shadow"]:
        for k, v in _rates(run["honest"], [r["shadow"][name] for r in rounds]).items():
            out[f"{name}.{k}"] = v
    return out


def mean_sd(values: list) -> str:
    """'mean±sd' of the values that are not None ('-' if none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3f}±{sd:.3f}"


def load_runs(out: Path, rounds: int | None = None) -> dict[tuple, dict[int, dict]]:
    """The cached runs' summaries by (partition, attack, fraction, rounds, rule), then by seed."""
    groups: dict = {}
    for f in sorted(out.glob("*.json")):
        run = json.loads(f.read_text())
        s = run["setting"]
        if rounds and s["rounds"] != rounds:
            continue
        key = (s["partition"], s["attack"], s["attack_fraction"], s["rounds"], run["rule"])
        groups.setdefault(key, {})[s["seed"]] = summarize(run)
    return groups


def table(out: Path, rounds: int | None) -> str:
    groups = {k: list(v.values()) for k, v in load_runs(out, rounds).items()}
    cols = ["final", "tail3", "recall", "rejected", "precision", "backdoor", "score_s", "train_s"]
    lines = ["| partition | attack | frac | rounds | rule | seeds | " + " | ".join(cols) + " |",
             "|" + "---|" * (6 + len(cols))]  # fmt: skip
    for (p, a, fr, rd, rule), runs in sorted(groups.items()):
        cells = [mean_sd([r.get(c) for r in runs]) for c in cols]
        lines.append(f"| {p} | {a} | {fr} | {rd} | {rule} | {len(runs)} | " + " | ".join(cells) + " |")
    shadow = sorted({k for runs in groups.values() for r in runs for k in r if "." in k})
    if shadow:
        lines.append("\nShadow rules (scored on the same updates, not acted on):")
        for (p, a, fr, rd, rule), runs in sorted(groups.items()):
            cells = [f"{k}={mean_sd([r.get(k) for r in runs])}" for k in shadow if any(k in r for r in runs)]
            lines.append(f"{p} {a}{fr} r{rd} driven by {rule}: " + " ".join(cells))
    return "\n".join(lines)


# Markdown tables (docs/ml.md, benchmarks/BENCHMARKS.md): rows in this order, unknown names last.
RULE_ORDER = ("fedavg", "trust", "effect", "effect_mainjob", "effect_probation", "effect_probation_sym1",
              "effect_probation_start", "effect_probation_start_sym1", "effect_probation_start_norm2",
              "effect_probation_start_guard3", "effect_probation_start_sym1_guard3",
              "effect_probation_start_sym1_guard3_twin20",
              "fedavg+la", "effect+la", "effect_mainjob+la")  # fmt: skip
ATTACK_ORDER = ("label_flip", "sign_flip", "scaling", "gaussian_noise", "free_rider", "alie",
                "min_max", "min_sum", "collude", "adaptive", "backdoor")  # fmt: skip
# Summary key -> (column header, decimals).
STATS = {
    "final": ("final acc", 3),
    "tail3": ("tail-3 mean", 3),
    "drop": ("drop (points)", 1),
    "recall": ("honest recall", 2),
    "rejected": ("malicious rejected", 2),
    "precision": ("precision", 2),
    "backdoor": ("backdoor success", 2),
    "score_s": ("scoring s/member/round", 2),
    "train_s": ("training s/provider/round", 2),
}
CLEAN_STATS = ("final", "tail3", "recall", "precision", "score_s", "train_s")
ATTACK_STATS = tuple(STATS)


def _ranked(names, order: tuple) -> list:
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def cell(values: list, decimals: int) -> str:
    """'mean ± sd' over seeds of the values that are not None; one value alone, '-' for none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{decimals}f}"
    return f"{statistics.mean(vals):.{decimals}f} ± {statistics.stdev(vals):.{decimals}f}"


def seeds_cell(seeds) -> str:
    """How many seeds a row averages; which ones where fewer than 3."""
    seeds = sorted(seeds)
    if len(seeds) >= 3:
        return str(len(seeds))
    return f"{len(seeds)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"


def with_drops(runs: dict[int, dict], clean: dict[int, dict]) -> dict[int, dict]:
    """The runs' summaries plus "drop": the same rule's clean final accuracy minus this run's, in
    points, seed by seed (None where that seed has no clean run)."""
    out = {}
    for seed, r in runs.items():
        ref = clean.get(seed)
        out[seed] = {**r, "drop": None if ref is None else 100 * (ref["final"] - r["final"])}
    return out


def _markdown(head: list[str], stats: tuple, rows: list[tuple[list[str], dict[int, dict]]]) -> list[str]:
    headers = head + ["seeds"] + [STATS[k][0] for k in stats]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for labels, runs in rows:
        cells = [cell([r.get(k) for r in runs.values()], STATS[k][1]) for k in stats]
        lines.append("| " + " | ".join([*labels, seeds_cell(runs), *cells]) + " |")
    return lines


def clean_table(groups: dict, rounds: int) -> list[str]:
    """Markdown: every partition's clean runs of ``rounds`` rounds, one row per rule."""
    rows = []
    for p in sorted({k[0] for k in groups if k[1] == "honest" and k[3] == rounds}):
        keys = [k for k in groups if k[:2] == (p, "honest") and k[3] == rounds]
        rows += [
            ([p, rule], groups[(p, "honest", 0.0, rounds, rule)])
            for rule in _ranked({k[4] for k in keys}, RULE_ORDER)
        ]
    return _markdown(["partition", "rule"], CLEAN_STATS, rows)


def attack_tables(groups: dict, partition: str, rounds: int) -> dict[float, list[str]]:
    """Markdown per attacker share: every attack's runs on ``partition``, one row per rule, with the
    drop from the same rule's clean run of the same length."""
    tables = {}
    attacked = {k for k in groups if k[0] == partition and k[3] == rounds and k[1] != "honest"}
    for frac in sorted({k[2] for k in attacked}):
        rows = []
        for atk in _ranked({k[1] for k in attacked if k[2] == frac}, ATTACK_ORDER):
            for rule in _ranked({k[4] for k in attacked if k[1:3] == (atk, frac)}, RULE_ORDER):
                clean = groups.get((partition, "honest", 0.0, rounds, rule), {})
                rows.append(([atk, rule], with_drops(groups[(partition, atk, frac, rounds, rule)], clean)))
        tables[frac] = _markdown(["attack", "rule"], ATTACK_STATS, rows)
    return tables


# Issue 17's targets with attackers in the round: (summary key, bound, True if the mean must stay at or
# below the bound, the target in words).
TARGETS = (
    ("drop", 2.0, True, "final accuracy within 2 points of the clean run"),
    ("rejected", 0.95, False, "malicious rejected >= 0.95"),
    ("backdoor", 0.10, True, "backdoor success <= 10 %"),
)


def target_misses(groups: dict, partition: str, rounds: int, frac: float, rule: str) -> list[str]:
    """Where ``rule``'s mean over seeds misses a target at attacker share ``frac``, one line each."""
    clean = groups.get((partition, "honest", 0.0, rounds, rule), {})
    misses = []
    for atk in _ranked(
        {k[1] for k in groups if k[:4] == (partition, k[1], frac, rounds)} - {"honest"}, ATTACK_ORDER
    ):
        runs = with_drops(groups.get((partition, atk, frac, rounds, rule), {}), clean)
        for key, bound, at_most, words in TARGETS:
            vals = [r[key] for r in runs.values() if r.get(key) is not None]
            if vals and (statistics.mean(vals) > bound if at_most else statistics.mean(vals) < bound):
                misses.append(f"{atk}: {STATS[key][0]} {cell(vals, STATS[key][1])} (target: {words})")
    return misses


# The rules whose attack rows are checked against issue 17's targets under each attack table: the
# rule of issue 17, configs/default.yaml's committee before trust had to be earned, the committee
# before the guard (probation also until a provider's first acceptance), and the committee.
TARGET_RULES = ("effect", "effect_probation", "effect_probation_start", "effect_probation_start_sym1_guard3")


def markdown(out: Path, partitions: list[str], rounds: int, clean: bool = True) -> list[str]:
    """Markdown lines: the clean table of ``rounds``-round runs (unless ``clean`` is False), then per
    attacker share the attack table on each partition and, for each of ``TARGET_RULES`` with runs in
    it, where its mean misses the targets."""
    groups = load_runs(out, rounds)
    parts = [f"**Clean, {rounds} rounds**", "", *clean_table(groups, rounds)] if clean else []
    for p in partitions:
        for frac, lines in attack_tables(groups, p, rounds).items():
            if parts:
                parts.append("")
            parts += [f"**{p}, {round(100 * frac)} % attackers, {rounds} rounds**", "", *lines]
            for rule in TARGET_RULES:
                if not any(k[0] == p and k[2] == frac and k[4] == rule for k in groups):
                    continue  # no run of this rule here: nothing to claim
                misses = target_misses(groups, p, rounds, frac, rule)
                if misses:
                    parts += ["", f"Where `{rule}`'s mean misses issue 17's targets:", "",
                              *[f"- {m}" for m in misses]]  # fmt: skip
                else:
                    parts += ["", f"`{rule}`'s means meet issue 17's targets here."]
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", nargs="+", default=["dir0.5"])
    ap.add_argument("--attacks", nargs="+", default=["honest"])
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--rules", nargs="+", default=["fedavg", "trust", "effect"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--shadow", nargs="*", default=[])
    ap.add_argument(
        "--screen",
        action="store_true",
        help="also record the effect rule's statistics (offline screening of its parameters)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", action="store_true", help="only print the table of the cached runs")
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="only print the cached --rounds runs as markdown: clean, then per attacker share",
    )
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.markdown:
        print("\n".join(markdown(a.out, a.partitions, a.rounds)))
        return
    if not a.table:
        todo = []
        # Seed by seed: an interrupted grid still has every cell at its first seeds.
        for seed, p, atk, rule in product(a.seeds, a.partitions, a.attacks, a.rules):
            frac = 0.0 if atk == "honest" else a.fraction
            path = a.out / f"{run_key(p, atk, frac, rule, seed, a.rounds)}.json"
            if not path.exists():
                todo.append(((p, atk, frac, rule, seed, a.rounds, a.shadow, a.screen), path))
        with ProcessPoolExecutor(a.workers) as pool:
            for (_, path), res in zip(todo, pool.map(run_one, [t for t, _ in todo]), strict=True):
                path.write_text(json.dumps(res))
                print(f"saved {path.name}", file=sys.stderr, flush=True)
    print(table(a.out, a.rounds))


if __name__ == "__main__":
    main()
