"""fedcommittee against Flower, side by side on this machine: accuracy, robustness, overhead, scale.

Needs the local network up (``scripts/network.sh up``; for ``scale`` with 100 providers, with enough
identities: ``FC_USERS_PER_ORG=37 scripts/network.sh up``) and the Flower environment
(``scripts/setup-flower.sh``). Every run's result is kept as JSON under ``--results``; a run whose
file exists is not repeated (``--force`` repeats it), so sections can be run one at a time and the
tables rebuilt from what was measured::

    .venv/bin/python benchmarks/flower/compare.py accuracy
    .venv/bin/python benchmarks/flower/compare.py robustness
    .venv/bin/python benchmarks/flower/compare.py overhead
    .venv/bin/python benchmarks/flower/compare.py scale
    .venv/bin/python benchmarks/flower/compare.py write      # benchmarks/BENCHMARKS.md + plots

Sections (defaults sized for 2 cores; every knob is a flag):
  accuracy    4 partitions x {fedcommittee, Flower FedAvg, Flower FedProx}, 10 providers, 30 rounds
  robustness  dominant-class partition; 30 % attackers of each kind, 10/20/40 % sign-flippers;
              fedcommittee vs Flower FedAvg, FedMedian, FedTrimmedAvg, Krum; drop from each one's
              clean run
  overhead    one setting on the network and the same work in-process (no ledger, no IPFS)
  scale       10/25/50/100 providers x 3/5 committee members: round time, transactions, memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from setting import AGGREGATIONS, COMMITTEES, PARTITIONS, Setting  # noqa: E402

RESULTS = HERE / "results"
ATTACKS = ("label_flip", "sign_flip", "gaussian_noise", "scaling", "free_rider", "backdoor")
ROBUST = ("fedavg", "fedmedian", "fedtrimmedavg", "krum")


def flower_python() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup-flower.sh"), "--quiet"], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"scripts/setup-flower.sh failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(args.home or os.environ.get("FC_HOME") or ROOT / ".fedcommittee")
        self._flower: str | None = None

    def path(self, section: str, system: str, s: Setting) -> Path:
        return self.args.results / section / f"{system}__{s.tag()}.json"

    def _cached(self, p: Path) -> dict | None:
        if p.exists() and not self.args.force:
            return json.loads(p.read_text())
        return None

    def _save(self, p: Path, res: dict) -> dict:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(res, indent=1))
        return res

    def _say(self, what: str, res: dict) -> None:
        acc = res.get("accuracy")
        tail = f" final {acc[-1]:.4f} best {max(acc):.4f}" if acc else ""
        print(f"  {what}: {res.get('wall_seconds', ''):>7} s{tail}", flush=True)

    def wanted(self, system: str) -> bool:
        return self.args.systems == "all" or self.args.systems == system.split("-")[0]

    def _run(self, section: str, system: str, s: Setting, start: str, compute) -> dict:
        """The result of ``compute()`` for (section, system, setting): from its file, else measured,
        timed and saved."""
        p = self.path(section, system, s)
        if (res := self._cached(p)) is not None:
            return res
        print(f"{start} ...", flush=True)
        t0 = time.perf_counter()
        res = compute(p)
        res.setdefault("wall_seconds", round(time.perf_counter() - t0, 1))
        self._say(system, self._save(p, res))
        return res

    def flower(self, section: str, strategy: str, s: Setting) -> dict | None:
        if not self.wanted("flower"):
            return None
        s = s.without_committee()  # Flower's run is the same whichever committee fedcommittee has

        def compute(p: Path) -> dict:
            self._flower = self._flower or flower_python()
            log = p.with_suffix(".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as err:
                out = subprocess.run(
                    [
                        self._flower,
                        str(HERE / "flower_sim.py"),
                        "--strategy",
                        strategy,
                        "--setting",
                        s.to_json(),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            if out.returncode != 0:
                raise SystemExit(f"flower {strategy} {s.tag()} failed ({out.returncode}); log: {log}")
            log.unlink()
            return json.loads(out.stdout.strip().splitlines()[-1])

        return self._run(section, f"flower-{strategy}", s, f"flower {strategy} {s.tag()}", compute)

    def backend(self) -> tuple[str, str]:
        """The running network's ledger backend: its key (``dev``, ``fabric``) and its words."""
        from fedcommittee.endpoints import Endpoints

        e = Endpoints.load(self.home)
        return e.backend or "fabric", e.ledger_words

    def fedcommittee(self, section: str, s: Setting, per_backend: bool = False) -> dict | None:
        """``per_backend``: one result per ledger backend (file ``fedcommittee-<backend>__...``)."""
        from fc_side import run_network

        if not self.wanted("fedcommittee"):
            return None
        system = f"fedcommittee-{self.backend()[0]}" if per_backend else "fedcommittee"
        start = f"fedcommittee {s.tag()} (network at {self.home})"
        return self._run(section, system, s, start, lambda _: run_network(s, self.home))

    def inprocess(self, section: str, s: Setting, beside_backend: bool = False) -> dict | None:
        """``beside_backend``: the baseline measured again in each backend's invocation (the ratio's
        two sides under the same machine load), recorded with the backend it was measured beside."""
        from fc_side import run_inprocess

        if not self.wanted("fedcommittee"):
            return None
        if not beside_backend:
            return self._run(section, "in-process", s, f"in-process {s.tag()}", lambda _: run_inprocess(s))
        key, words = self.backend()
        return self._run(section, f"in-process-{key}", s, f"in-process {s.tag()} (beside {words})",
                         lambda _: {**run_inprocess(s), "measured_beside": words})  # fmt: skip


def base_setting(a: argparse.Namespace, **kw) -> Setting:
    return Setting(
        model=a.model,
        rounds=a.rounds,
        steps=a.steps,
        lr=a.lr,
        momentum=a.momentum,
        seed=a.seed,
        committee=a.committee,
        aggregation=a.aggregation,
        **kw,
    )


def section_accuracy(r: Runner, a: argparse.Namespace) -> None:
    for part in a.partitions.split(","):
        s = base_setting(a, partition=part)
        r.fedcommittee("accuracy", s)
        # With server momentum on fedcommittee's side, Flower's FedAvgM too: the same aggregator.
        extra = ("fedavgm",) if s.aggregation == "fedavgm" else ()
        for strategy in ("fedavg", "fedprox", *extra):
            r.flower("accuracy", strategy, s)


def section_robustness(r: Runner, a: argparse.Namespace) -> None:
    base = base_setting(a, partition=a.partition)
    grid = [(att, 0.3) for att in a.attacks.split(",")]
    grid += [(a.fraction_attack, f) for f in (0.1, 0.2, 0.4) if a.fraction_attack]
    for s in [base] + [replace(base, attack=att, attack_fraction=f) for att, f in grid]:
        r.fedcommittee("robustness", s)
        for strategy in ROBUST:
            r.flower("robustness", strategy, s)


def section_overhead(r: Runner, a: argparse.Namespace) -> None:
    # At the accuracy runs' local work and at the main job's (150 steps): the share of the ledger and
    # IPFS depends on how much computing a round has to do.
    for steps in (int(x) for x in a.overhead_steps.split(",")):
        s = replace(base_setting(a, partition=a.partition), steps=steps)
        r.fedcommittee("overhead", s, per_backend=True)
        r.inprocess("overhead", s, beside_backend=True)


def section_scale(r: Runner, a: argparse.Namespace) -> None:
    for members in (int(m) for m in a.members.split(",")):
        for n in (int(p) for p in a.providers.split(",")):
            s = replace(
                base_setting(a, partition="dominant"),
                providers=n,
                members=members,
                max_samples=a.max_samples,
                test_samples=1000,
                providers_per_process=a.providers_per_process,
                settle_seconds=a.settle,
                deadline_seconds=a.deadline,
            )
            try:
                # One file per backend: under one name, a run on one ledger replaced the other's.
                r.fedcommittee("scale", s, per_backend=True)
            except RuntimeError as exc:
                print(f"  failed: {exc}", flush=True)
                if not a.keep_going:
                    raise


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["accuracy", "robustness", "overhead", "scale", "write"])
    ap.add_argument("--home", help="state dir of the running network ($FC_HOME)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--force", action="store_true", help="repeat runs whose result file exists")
    ap.add_argument(
        "--systems",
        choices=["all", "fedcommittee", "flower"],
        default="all",
        help="run only one side (fedcommittee includes the in-process baseline)",
    )
    ap.add_argument("--model", default="cnn-small", help="architecture (linear-fmnist: the light model)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--steps", type=int, default=20, help="local SGD steps per round (batch 32)")
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument(
        "--seeds",
        default="0",
        help="comma-separated seeds: the section runs once per seed (split, draws, training)",
    )
    ap.add_argument(
        "--committee",
        choices=sorted(COMMITTEES),
        default="trust",
        help="fedcommittee's scoring (benchmarks/flower/setting.py): trust is the rule of the first runs,"
        " effect_probation_start_sym1_guard3 configs/default.yaml's committee",
    )
    ap.add_argument(
        "--aggregation",
        choices=AGGREGATIONS,
        default="fedavg",
        help="fedcommittee's aggregation (fedavgm: server momentum 0.9; accuracy then runs Flower's"
        " FedAvgM beside FedAvg and FedProx)",
    )
    ap.add_argument("--partitions", default=",".join(PARTITIONS), help="accuracy: partitions to run")
    ap.add_argument("--partition", default="dominant", help="robustness, overhead: the partition")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="robustness: attacks run at 30 %%")
    ap.add_argument(
        "--fraction-attack", default="sign_flip", help="robustness: the attack run at 10/20/40 %%"
    )
    ap.add_argument("--overhead-steps", default="20,150", help="overhead: local steps per setting")
    ap.add_argument("--providers", default="10,25,50,100", help="scale: provider counts")
    ap.add_argument("--members", default="3,5", help="scale: committee sizes")
    ap.add_argument("--max-samples", type=int, default=12000, help="scale: training pool size")
    ap.add_argument("--keep-going", action="store_true", help="scale: go on after a failed size")
    ap.add_argument("--providers-per-process", type=int, default=5, help="scale: providers per agent process")
    ap.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="scale: a round closes after this many seconds with no new update (raise it to the"
        " deadline to make every round wait for every allocated provider)",
    )
    ap.add_argument("--deadline", type=int, default=300, help="scale: seconds a round stays open at most")
    a = ap.parse_args()
    if a.rounds is None:
        a.rounds = {"accuracy": 30, "robustness": 15, "overhead": 10, "scale": 3}.get(a.section, 30)
    if a.section == "write":
        from report import write

        write(a.results, ROOT / "benchmarks" / "BENCHMARKS.md")
        return 0
    r = Runner(a)
    started = time.perf_counter()
    section = {
        "accuracy": section_accuracy,
        "robustness": section_robustness,
        "overhead": section_overhead,
        "scale": section_scale,
    }[a.section]
    for seed in (int(x) for x in a.seeds.split(",")):
        a.seed = seed
        section(r, a)
    print(f"{a.section}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
