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
"""

from fedcommittee.ml.aggregate import (
    FedAdam,
    FedAvg,
    FedAvgM,
    Krum,
    Median,
    Strategy,
    TrimmedMean,
    get_strategy,
)
from fedcommittee.ml.attacks import Behaviour, get_behaviour, run_behaviour
from fedcommittee.ml.data import (
    DataError,
    Dataset,
    from_arrays,
    load_dataset,
    load_digits,
    load_entry_point,
    load_fashion_mnist,
    load_npz,
    split_shards,
    train_val_split,
)
from fedcommittee.ml.dp import DPProvider, clip_delta, epsilon
from fedcommittee.ml.evaluate import EvalResult, evaluate
from fedcommittee.ml.models import get_model, get_spec, initial_state, list_models, spec_hash, state_layout
from fedcommittee.ml.partition import format_summary, make_partition, plot_partition, summary
from fedcommittee.ml.scoring import DEFAULT_RULE, ScoringRule, accept, score, score_updates
from fedcommittee.ml.serialize import WeightsError, dumps, loads, sha256_hex, state_hash
from fedcommittee.ml.train import TrainConfig, Update, local_train

__all__ = [
    "DEFAULT_RULE", "Behaviour", "DPProvider", "DataError", "Dataset", "EvalResult", "FedAdam", "FedAvg",
    "FedAvgM", "Krum", "Median", "ScoringRule", "Strategy", "TrainConfig", "TrimmedMean", "Update",
    "WeightsError", "accept", "clip_delta", "dumps", "epsilon", "evaluate", "format_summary", "from_arrays",
    "get_behaviour", "get_model", "get_spec", "get_strategy", "initial_state", "list_models", "load_dataset",
    "load_digits", "load_entry_point", "load_fashion_mnist", "load_npz", "loads", "local_train",
    "make_partition", "plot_partition", "run_behaviour", "score", "score_updates", "sha256_hex",
    "spec_hash", "split_shards", "state_hash", "state_layout", "summary", "train_val_split",
]  # fmt: skip
