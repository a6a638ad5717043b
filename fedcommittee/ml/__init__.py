"""ML core of fedcommittee: data, partitions, model registry, local training, aggregation, committee
scoring, metrics, canonical weight serialization, attacks and DP. Knows nothing of Fabric or IPFS.

Typical provider / committee / auditor calls::

    from fedcommittee import ml
    g = ml.initial_state("cnn-fmnist", seed=0)
    upd = ml.local_train("cnn-fmnist", g, my_data, ml.TrainConfig(steps=50, lr=0.05))
    blob = ml.dumps(upd.delta); digest = ml.sha256_hex(blob)          # -> IPFS + ledger
    delta = ml.loads(blob, "cnn-fmnist", max_bytes=16 << 20)          # committee, after hash check
    s = ml.score(ml.DEFAULT_RULE, "cnn-fmnist", g, delta, shard); ok = ml.accept(ml.DEFAULT_RULE, s)
    g2 = ml.get_strategy("fedavg").aggregate(g, [(delta, upd.num_samples), ...])

Names are loaded on first use (``ml.X`` imports the submodule that defines X): importing a torch-free
submodule such as ``fedcommittee.ml.registry`` (the names a config may use) does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# Public name -> the submodule that defines it.
_HOME = {
    "aggregate": ("FedAdam", "FedAvg", "FedAvgM", "Krum", "Median", "Strategy", "TrimmedMean",
                  "get_strategy"),
    "attacks": ("Behaviour", "backdoor_success", "get_behaviour", "run_behaviour"),
    "data": ("DataError", "Dataset", "from_arrays", "load_dataset", "load_digits", "load_entry_point",
             "load_fashion_mnist", "load_npz", "split_shards", "train_val_split"),
    "dp": ("DPProvider", "clip_delta", "epsilon"),
    "evaluate": ("EvalResult", "evaluate"),
    "models": ("get_model", "get_spec", "initial_state", "list_models", "spec_hash", "state_layout"),
    "partition": ("format_summary", "make_partition", "plot_partition", "summary"),
    "scoring": ("DEFAULT_RULE", "REFERENCE_RULES", "ScoringRule", "accept", "reference_delta", "score",
                "score_updates"),
    "serialize": ("WeightsError", "dumps", "loads", "sha256_hex", "state_hash"),
    "train": ("TrainConfig", "Update", "local_train"),
}  # fmt: skip
_WHERE = {name: module for module, names in _HOME.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


class _Package(types.ModuleType):
    """``ml.evaluate`` stays the function although a submodule has its name: importing a submodule sets
    the package attribute of that name to the module, which would hide the lazily loaded function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple:
        # Pickled by name, as pickle libraries treat plain modules: cloudpickle (Ray, in the Flower
        # benchmark) dispatches on the exact type and failed on this subclass ("cannot pickle
        # '_Package' object") when a closure referred to the package.
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package
