"""Gossip against federated on the same consortium: final accuracy, and whether gossip's final model
is at least as accurate as every model it accepted.

For each seed it runs ``--config`` (a gossip config, default configs/gossip.yaml) as it is and as a
federated run with the same data, partition, providers, attackers, training and committee, and as many
rounds as the gossip run has updates per provider. Both run on one network of their own (scripts/
network.sh, a temporary FC_HOME on free ports, ``--backend``). From each run's report.json it reads
the final test accuracy and, for gossip, the test accuracy of every accepted model: the final model
(what the committee's median shard quality put first: the mean of each provider's best model or
one accepted model, ``ProposeFinal``) is checked against the most accurate of them.

    .venv/bin/python benchmarks/gossip_bench.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.layout import BACKEND_NAMES  # noqa: E402
from tests.integration.network import LocalNetwork  # noqa: E402


def federated_twin(doc: dict) -> dict:
    """The gossip config as a federated run: one round per gossip update of each provider."""
    twin = {k: v for k, v in doc.items() if k != "gossip"}
    rounds = int(doc["gossip"]["updates_per_provider"])
    twin.update(mode="federated", rounds=rounds, min_accepted=1, deadline_seconds=240, settle_seconds=3)
    return twin


def run_config(net: LocalNetwork, doc: dict, model_id: str, workdir: Path) -> dict:
    path = workdir / f"{model_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    fedcommittee = Path(sys.executable).parent / "fedcommittee"
    proc = subprocess.run(
        [str(fedcommittee), "--home", str(net.home), "run", str(path), "--model-id", model_id],
        env=net.env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = proc.stdout[-3000:] + proc.stderr[-2000:]
        raise SystemExit(f"{model_id} failed ({proc.returncode}):\n{tail}")
    return json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())


def gossip_figures(report: dict) -> dict:
    s = report["summary"]
    points = {int(k): v for k, v in report["test_accuracy"].items() if int(k) > 0 and v is not None}
    best = max(points.values()) if points else None
    final = s["test_accuracy_final"]
    prop = report["model"].get("finalProposal") or {}
    medians = prop.get("medians") or []
    return {
        "final": final,
        "best_accepted": best,
        "final_is_best": best is not None and final >= best - 1e-9,
        # The mix's test accuracy, whether the committee chose it or not: the committee chose as the
        # test set would where the final is at least as accurate as the mix and every accepted model.
        "mix": s.get("test_accuracy_mix"),
        "chose_as_test": best is not None and final >= max(best, s.get("test_accuracy_mix") or 0.0) - 1e-9,
        "accepted": s["accepted"],
        "rejected": s["rejected"],
        # What the committee finished on (ProposeFinal, JudgeFinal): the mix or one accepted model,
        # with the members' median shard quality of the mix and of the best candidate.
        "final_on": "mix" if report["model"].get("finalMix") else "accepted model",
        "committee_mix_quality": medians[0] if medians else None,
        "committee_best_candidate_quality": max(medians[1:]) if len(medians) > 1 else None,
        "verdicts_by_provider": verdicts_by_provider(report),
    }


def verdicts_by_provider(report: dict) -> dict[str, str]:
    """Each provider's updates in submission order, A accepted and r rejected (p pending), keyed
    "name (behaviour)": which attacker got in, and with which of its updates."""
    behaviours = {n: v.get("behaviour") or "" for n, v in (report.get("participants") or {}).items()}
    out: dict[str, str] = {}
    for u in sorted(report["updates"], key=lambda u: (u.get("submittedAt") or 0, u["id"])):
        key = f"{u['provider']} ({behaviours.get(u['provider'], '?')})"
        out[key] = out.get(key, "") + {"accepted": "A", "rejected": "r"}.get(u["status"], "p")
    return out


def mean_sd(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "gossip.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--backend", choices=["dev", "fabric"], default="dev")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    a = ap.parse_args(argv)
    base = yaml.safe_load(a.config.read_text())
    if base.get("mode") != "gossip":
        ap.error(f"--config {a.config}: mode is {base.get('mode')!r}, not gossip")
    backend = BACKEND_NAMES[a.backend]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fc-gossip-") as tmp:
        net = LocalNetwork(home=Path(tmp) / "state", extra_env={"FC_LEDGER": a.backend})
        net.up()
        try:
            for seed in a.seeds:
                stamp, doc = int(time.time()), {**base, "seed": seed}
                gossip = run_config(net, doc, f"gossip-s{seed}-{stamp}", Path(tmp))
                fed = run_config(net, federated_twin(doc), f"fed-s{seed}-{stamp}", Path(tmp))
                row = {"seed": seed, "backend": backend, "gossip": gossip_figures(gossip),
                       "federated_final": fed["summary"]["test_accuracy_final"]}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            net.run("down", check=False)
    g = [r["gossip"]["final"] for r in rows]
    f = [r["federated_final"] for r in rows]
    best = [r["gossip"]["best_accepted"] for r in rows]
    print(f"\n{a.config.name}, seeds {a.seeds}, {backend}:")
    print("| run | final test accuracy (mean ± sd) |\n|---|---|")
    print(f"| gossip, final model | {mean_sd(g)} |")
    print(f"| gossip, most accurate accepted model | {mean_sd(best)} |")
    print(f"| federated, same data and updates | {mean_sd(f)} |")
    gaps = [gi - fi for gi, fi in zip(g, f, strict=True)]
    print(f"gossip - federated: {mean_sd(gaps)} ({100 * statistics.mean(gaps):+.1f} points)")
    picked = sum(r["gossip"]["final_is_best"] for r in rows)
    print(f"final model at least as accurate as every accepted model in {picked} of {len(rows)} runs")
    on_mix = sum(r["gossip"]["final_on"] == "mix" for r in rows)
    agreed = sum(r["gossip"]["chose_as_test"] for r in rows)
    print(f"final at least as accurate as the mix and every accepted model in {agreed} of {len(rows)} runs")
    print(f"the committee finished on the mix in {on_mix} of {len(rows)} runs, else on an accepted model")
    for r in rows:  # A accepted, r rejected, in submission order
        marks = ", ".join(f"{k} {v}" for k, v in r["gossip"]["verdicts_by_provider"].items())
        print(f"seed {r['seed']} verdicts: {marks}")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
