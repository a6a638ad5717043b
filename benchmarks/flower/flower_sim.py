"""The Flower side of a benchmark setting: one Flower simulation, its result as JSON on stdout's last line.

Runs under the Flower environment (``scripts/setup-flower.sh`` prints its interpreter)::

    PY=$(bash scripts/setup-flower.sh --quiet | tail -1)
    $PY benchmarks/flower/flower_sim.py --strategy fedavg --setting '{"partition": "dominant", "rounds": 2}'

Flower's own simulation runtime (``flwr.simulation.run_simulation``, Ray backend) and Flower's
strategies (FedAvg, FedProx, FedAvgM, FedMedian, FedTrimmedAvg, Krum); the clients do exactly what a
fedcommittee provider does: the same data (the experiment's split), the same initial weights, the
same local training code, optimizer and per-(provider, round) seed, the same attack behaviour.
The server evaluates each round's global model on the experiment's test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from setting import SERVER_MOMENTUM, Setting, experiment_doc, provider_name  # noqa: E402

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedmedian", "fedtrimmedavg", "krum")
PROX_MU = 0.01  # FedProx's mu (Flower sends it to the clients as "proximal_mu")


def _experiment(setting: Setting):
    from fedcommittee.experiment import parse_experiment

    return parse_experiment(experiment_doc(setting), "<benchmark setting>").with_model_id("flower")


def _client_app(setting: Setting):
    import numpy as np
    import torch
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context

    from fedcommittee import ml
    from fedcommittee.experiment import data_split
    from fedcommittee.roles.provider import _seed  # the provider's own seed derivation

    behaviours = setting.behaviours()

    class Client(NumPyClient):
        def __init__(self, index: int) -> None:
            torch.set_num_threads(1)
            self.exp = _experiment(setting)
            split = data_split(self.exp)
            self.index = index
            self.name = provider_name(index)
            self.data = split.train.subset(split.partition[index])
            self.behaviour = ml.get_behaviour(behaviours[index])
            self.keys = list(ml.initial_state(setting.model, setting.seed))

        def fit(self, parameters, config):
            g = {
                k: torch.from_numpy(np.array(a, copy=True))
                for k, a in zip(self.keys, parameters, strict=True)
            }
            r = int(config["round"])
            cfg = self.exp.train_config(_seed(self.exp.seed, self.name, r), r)
            mu = float(config.get("proximal_mu", 0.0))
            if mu:
                from dataclasses import replace

                cfg = replace(cfg, prox_mu=mu)
            upd = ml.run_behaviour(self.behaviour, setting.model, g, self.data, cfg)
            new = [(g[k] + upd.delta[k]).numpy() for k in self.keys]
            return new, int(upd.num_samples), {}

    def client_fn(context: Context):
        return Client(int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn)


def _strategy(name: str, setting: Setting, evaluate_fn, initial):
    from flwr.server import strategy as fs

    common = dict(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=setting.providers,
        min_available_clients=setting.providers,
        evaluate_fn=evaluate_fn,
        on_fit_config_fn=lambda r: {"round": r},
        initial_parameters=initial,
    )
    f = setting.n_attackers
    if name == "fedavg":
        return fs.FedAvg(**common)
    if name == "fedprox":
        return fs.FedProx(proximal_mu=PROX_MU, **common)
    if name == "fedavgm":  # server momentum, as fedcommittee's aggregation `fedavgm`
        return fs.FedAvgM(server_momentum=SERVER_MOMENTUM, **common)
    if name == "fedmedian":
        return fs.FedMedian(**common)
    if name == "fedtrimmedavg":
        # Trim the true attacker share from each end (an oracle setting, in the baseline's favour);
        # Flower requires beta < 0.5, and trims nothing below 1/n.
        return fs.FedTrimmedAvg(beta=min(max(f / setting.providers, 0.1), 0.4), **common)
    if name == "krum":
        return fs.Krum(num_malicious_clients=f, num_clients_to_keep=0, **common)
    raise ValueError(f"unknown strategy {name!r} (have {', '.join(STRATEGIES)})")


def _count_failures(strategy) -> dict[int, int]:
    """Failed client fits per round, recorded as the strategy aggregates (Flower logs them and goes
    on with the results it has)."""
    failed: dict[int, int] = {}
    aggregate_fit = strategy.aggregate_fit

    def counting(server_round, results, failures):
        if failures:
            failed[server_round] = len(failures)
        return aggregate_fit(server_round, results, failures)

    strategy.aggregate_fit = counting
    return failed


def run(setting: Setting, strategy: str) -> dict:
    import torch
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.simulation import run_simulation

    from fedcommittee import ml
    from fedcommittee.experiment import data_split

    torch.set_num_threads(1)
    exp = _experiment(setting)
    test = data_split(exp).test
    init = ml.initial_state(setting.model, exp.seed)  # what the fedcommittee publisher publishes
    keys = list(init)
    acc: list[float] = []
    stamps: list[float] = []
    last: dict = {}  # the latest global model (the final one once the run ends)

    def evaluate_fn(server_round, parameters, config):
        state = {k: torch.from_numpy(a.copy()) for k, a in zip(keys, parameters, strict=True)}
        last["state"] = state
        res = ml.evaluate(setting.model, state, test)
        if server_round > 0:
            acc.append(res.accuracy)
        stamps.append(time.perf_counter())
        print(
            f"[flower {strategy}] round {server_round:>2} acc={res.accuracy:.4f}", file=sys.stderr, flush=True
        )
        return res.loss, {"accuracy": res.accuracy}

    initial = ndarrays_to_parameters([v.numpy() for v in init.values()])
    strat = _strategy(strategy, setting, evaluate_fn, initial)
    failures = _count_failures(strat)

    def server_fn(context):
        return ServerAppComponents(strategy=strat, config=ServerConfig(num_rounds=setting.rounds))

    started = time.perf_counter()
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=_client_app(setting),
        num_supernodes=setting.providers,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": os.cpu_count() or 1,
                "include_dashboard": False,
                "logging_level": logging.ERROR,
            },
        },
    )
    wall = time.perf_counter() - started
    if failures:
        # A failed client leaves the global model as it was: a run of failures reads as a model that
        # never learns (0.10), not as an error, unless it is refused here.
        raise SystemExit(f"flower {strategy}: client fits failed in rounds {failures} (see the log above)")
    if len(acc) != setting.rounds:
        raise SystemExit(
            f"flower {strategy}: {len(acc)} of {setting.rounds} rounds evaluated (see the log above)"
        )
    rounds = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    out = {
        "system": f"flower-{strategy}",
        "setting": json.loads(setting.to_json()),
        "accuracy": acc,
        "wall_seconds": round(wall, 1),
        "round_seconds": rounds,
    }
    if setting.attack == "backdoor":  # what fedcommittee's report measures of its final model
        out["backdoor_success"] = ml.backdoor_success(setting.model, last["state"], test)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", required=True, choices=STRATEGIES)
    ap.add_argument("--setting", required=True, help="a Setting as JSON (keys of setting.Setting)")
    args = ap.parse_args()
    try:
        setting = Setting.from_json(args.setting)
    except (TypeError, ValueError) as exc:
        print(f"error: bad --setting: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(run(setting, args.strategy)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
