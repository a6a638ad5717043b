"""The fedcommittee side of a benchmark setting: a whole consortium on the running local network.

``run_network`` writes the setting's experiment config, runs ``fedcommittee run`` on the network of
``--home`` (agents as processes, real Fabric and IPFS), and reads back what the report measured: test
accuracy after every round, the committee's verdicts, the per-round critical-path breakdown. Beside
it a sampler records the resident memory of the agents and of the network's nodes.

``run_inprocess`` is the overhead baseline: the same work in one process pool, without ledger and
IPFS: the providers' local training, every member's scoring (reference update + trust scores), the
acceptance rule, FedAvg of the accepted updates and each member's check of the aggregate.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml
from setting import Setting, experiment_doc, provider_name

from fedcommittee.dashboard import FINAL_EVENTS
from fedcommittee.logs import read_logs

ROOT = Path(__file__).resolve().parents[2]


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (torch's libraries, mapped by every agent) counted once
    in all, so the sum over processes is the memory they really take together."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class MemorySampler(threading.Thread):
    """Peak of the summed PSS of the run's processes (every process whose command line names the model
    id: the agents and the `fedcommittee run` orchestrator), of its provider processes alone (for the
    memory a provider costs) and of the network's nodes."""

    def __init__(self, home: Path, model_id: str, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.home, self.model_id, self.every = home, model_id, every
        self.peak_agents = self.peak_network = self.peak_agent_max = self.peak_providers = 0.0
        self._halt = threading.Event()

    def _agent_pids(self) -> list[tuple[int, bool]]:
        """(pid, hosts providers) of the run's processes."""
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes()
                except OSError:
                    continue
                if self.model_id.encode() in cmd and b"--model-id" in cmd:
                    out.append((int(d.name), b"\0provider\0" in cmd))
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            agents = [(_pss_mb(pid), provider) for pid, provider in self._agent_pids()]
            net = sum(
                _pss_mb(int(f.read_text().split()[0]))
                for f in (self.home / "pids").glob("*.pid")
                if f.read_text().split()
            )
            self.peak_agents = max(self.peak_agents, sum(mb for mb, _ in agents))
            self.peak_providers = max(self.peak_providers, sum(mb for mb, provider in agents if provider))
            self.peak_agent_max = max([self.peak_agent_max] + [mb for mb, _ in agents])
            self.peak_network = max(self.peak_network, net)
            self._halt.wait(self.every)

    def stop(self) -> dict:
        self._halt.set()
        self.join(5)
        return {
            "agents_peak_mb": round(self.peak_agents),
            "agent_max_mb": round(self.peak_agent_max),
            "provider_processes_peak_mb": round(self.peak_providers),
            "network_peak_mb": round(self.peak_network),
        }


def _acceptance(report: dict, behaviours: dict[str, str]) -> dict:
    tp = fp = fn = tn = 0
    for u in report["updates"]:
        if u["status"] not in ("accepted", "rejected"):
            continue
        honest, ok = behaviours[u["provider"]] == "honest", u["status"] == "accepted"
        tp += honest and ok
        fp += (not honest) and ok
        fn += honest and not ok
        tn += (not honest) and not ok

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "attackers_rejected": ratio(tn, tn + fp),
        "counts": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def _by_round(records: list[dict], event: str) -> dict[int, list[dict]]:
    """The ``event`` records per round (round 0: set-up, before the first round opened)."""
    out: dict[int, list[dict]] = defaultdict(list)
    for rec in records:
        if rec.get("event") == event:
            out[int(rec.get("round") or 0)].append(rec)
    return out


def round_counts(report: dict, records: list[dict], providers: int) -> dict[str, list]:
    """Per round (index 0 = round 1), from the report and the agents' logs: updates allocated (every
    provider where the round names no allocation), recorded on the ledger and judged; transactions
    committed; transactions given up; MVCC conflicts retried (``logs.race_counts``); p95 of the
    submit-to-commit seconds of the round's transactions. ``setup``: the same for round 0 (data
    registrations, approvals)."""
    from fedcommittee.logs import percentile, race_counts

    submitted, gave_up = _by_round(records, "submitted"), _by_round(records, "submit_gave_up")
    races = race_counts(records)
    updates: dict[int, list[dict]] = defaultdict(list)
    for u in report["updates"]:
        updates[int(u["round"])].append(u)

    def ledger_side(r: int) -> dict:
        secs = [float(x["seconds"]) for x in submitted.get(r, []) if "seconds" in x]
        return {
            "transactions": len(submitted.get(r, [])),
            "given_up": len(gave_up.get(r, [])),
            "mvcc_conflicts": races.get(r, {}).get("mvcc_retry", 0),
            "commit_p95_s": round(percentile(secs, 0.95), 3) if secs else None,
        }

    rounds = sorted(report["rounds"], key=lambda rd: int(rd["number"]))
    out: dict[str, list] = defaultdict(list)
    for rd in rounds:
        r = int(rd["number"])
        allocated = rd.get("allocated")
        out["allocated"].append(providers if allocated is None else len(allocated))
        out["recorded"].append(len(updates[r]))
        out["judged"].append(sum(u["status"] in ("accepted", "rejected") for u in updates[r]))
        for k, v in ledger_side(r).items():
            out[k].append(v)
    return {**out, "setup": ledger_side(0)}


MODEL_ID_MAX = 64  # the contract's limit on a model id


def model_id_of(setting: Setting, now: float) -> str:
    """The run's model id: the setting's tag and the clock's seconds modulo a million; a tag too long
    for the id keeps its head and 8 hex digits of a hash of the whole, so settings that share a head
    still get different ids."""
    tag, stamp = setting.tag(), f"-{int(now) % 10**6:06d}"
    if len(tag) + len(stamp) > MODEL_ID_MAX:
        digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
        tag = f"{tag[: MODEL_ID_MAX - len(stamp) - len(digest) - 1]}-{digest}"
    return tag + stamp


def run_network(setting: Setting, home: Path) -> dict:
    doc = experiment_doc(setting, name="bench")
    model_id = model_id_of(setting, time.time())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
        cfg = Path(f.name)
    fedcommittee = ROOT / ".venv" / "bin" / "fedcommittee"
    sampler = MemorySampler(home, model_id)
    sampler.start()
    started = time.perf_counter()
    proc = subprocess.run(
        [str(fedcommittee), "--home", str(home), "run", str(cfg), "--model-id", model_id, "--quiet"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    memory = sampler.stop()
    cfg.unlink()
    run = home / "runs" / model_id
    if proc.returncode != 0:
        raise RuntimeError(
            f"fedcommittee run {model_id} failed ({proc.returncode}); logs in {run}\n"
            f"{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        )
    report = json.loads((run / "report" / "report.json").read_text())
    by_round = {int(k): v for k, v in report["test_accuracy"].items()}
    # test_accuracy[r] is round r's *starting* global model; after round r comes r + 1, then the final.
    acc = [by_round[r + 1] for r in range(1, setting.rounds) if r + 1 in by_round]
    acc.append(report["final_test_accuracy"])
    behaviours = {p["name"]: p["behaviour"] for p in doc["providers"]}
    overhead = report["overhead"]
    records = read_logs(run / "logs")
    counts = round_counts(report, records, setting.providers)
    # An agent's last record (model finished or rejected) carries its ``reads``.
    reads = [int(r["reads"]) for r in records if r.get("event") in FINAL_EVENTS and "reads" in r]
    return {
        "system": "fedcommittee",
        "setting": json.loads(setting.to_json()),
        "model_id": model_id,
        "accuracy": acc,
        "wall_seconds": round(wall, 1),
        "round_seconds": [overhead[k]["wall"] for k in sorted(overhead, key=int)],
        "breakdown_median": report["summary"].get("round_breakdown_median_seconds"),
        "ledger_ipfs_share": report["summary"].get("ledger_ipfs_share_of_round_time"),
        "work_median": report["summary"].get("work_median_seconds"),
        "acceptance": _acceptance(report, behaviours),
        "accepted": report["summary"]["accepted"],
        "rejected": report["summary"]["rejected"],
        "transactions_per_round_median": statistics.median(counts["transactions"])
        if report["rounds"]
        else None,
        "per_round": counts,
        # Every agent's queries over its run (set-up included), per round: each is a peer's chaincode run.
        "ledger_reads_per_round": round(sum(reads) / len(report["rounds"]), 1)
        if reads and report["rounds"]
        else None,
        "ledger_backend": report.get("ledger_backend"),
        "memory": memory,
        **(
            {"backdoor_success": report["final_backdoor_success"]}
            if "final_backdoor_success" in report
            else {}
        ),
    }


# ------------------------------------------------------------------------------ in-process baseline
_W: dict = {}


def _init_worker(setting_json: str) -> None:
    import torch

    from fedcommittee import ml
    from fedcommittee.experiment import data_split, parse_experiment

    torch.set_num_threads(1)
    s = Setting.from_json(setting_json)
    exp = parse_experiment(experiment_doc(s), "<benchmark setting>").with_model_id("inprocess")
    split = data_split(exp)
    _W.update(
        s=s, exp=exp, split=split, ml=ml, shards=ml.split_shards(split.val, len(exp.committee), exp.seed + 3)
    )


def _train(args: tuple) -> tuple:
    from fedcommittee.roles.provider import _seed

    g, i, r = args
    s, exp, split, ml = _W["s"], _W["exp"], _W["split"], _W["ml"]
    name = provider_name(i)
    data = split.train.subset(split.partition[i])
    upd = ml.run_behaviour(
        ml.get_behaviour(s.behaviours()[i]), s.model, g, data, exp.train_config(_seed(exp.seed, name, r), r)
    )
    return upd.delta, int(upd.num_samples)


def _score(args: tuple) -> list[float]:
    g, deltas, sizes, k = args
    exp, ml = _W["exp"], _W["ml"]
    from fedcommittee.policy import Policy

    return ml.score_updates(
        Policy.from_experiment(exp).scoring_rule(), exp.model, g, deltas, _W["shards"][k], sizes
    )


def _check(args: tuple) -> float:
    state, k = args
    return _W["ml"].evaluate(_W["exp"].model, state, _W["shards"][k]).accuracy


def run_inprocess(setting: Setting, workers: int | None = None) -> dict:
    """Per-round wall time of the same work without ledger and IPFS (a pool of ``workers``)."""
    from fedcommittee import ml
    from fedcommittee.experiment import parse_experiment
    from fedcommittee.policy import Policy

    exp = parse_experiment(experiment_doc(setting), "<benchmark setting>").with_model_id("inprocess")
    policy = Policy.from_experiment(exp)
    rule = policy.scoring_rule()
    g = ml.initial_state(setting.model, exp.seed)
    walls, accepted = [], 0
    with ProcessPoolExecutor(
        workers or os.cpu_count() or 1, initializer=_init_worker, initargs=(setting.to_json(),)
    ) as pool:
        list(pool.map(_check, [(g, k % setting.members) for k in range(pool._max_workers)]))  # warm up
        for r in range(1, setting.rounds + 1):
            t0 = time.perf_counter()
            ups = list(pool.map(_train, [(g, i, r) for i in range(setting.providers)]))
            deltas, sizes = [d for d, _ in ups], [n for _, n in ups]
            per_member = list(pool.map(_score, [(g, deltas, sizes, k) for k in range(setting.members)]))
            med = [statistics.median(col) for col in zip(*per_member, strict=True)]
            chosen = [(d, n) for d, n, s in zip(deltas, sizes, med, strict=True) if ml.accept(rule, s)]
            accepted += len(chosen)
            # Rounds run in order in this process: the policy never needs to replay earlier ones.
            g = policy.aggregate(r, g, chosen if len(chosen) >= exp.min_accepted else [], None)
            # The members seated within the quorum check the aggregate (the others only when one of
            # those is down: roles/committee.py), as on the network.
            list(pool.map(_check, [(g, k) for k in range(min(exp.effective_quorum, setting.members))]))
            walls.append(time.perf_counter() - t0)
            print(
                f"[in-process] round {r} {walls[-1]:.2f}s accepted {len(chosen)}", file=sys.stderr, flush=True
            )
    return {
        "system": "in-process",
        "setting": json.loads(setting.to_json()),
        "round_seconds": walls,
        "accepted": accepted,
    }
