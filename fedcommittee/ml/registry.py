"""What the ML core offers, by name, with each choice's parameters: readable without torch.

A config is checked by processes that never train (the CLI, ``fedcommittee run`` before it starts
agents), so the names and parameter ranges a config may use live here, in the standard library only,
and the torch modules that implement them (``aggregate``, ``attacks``, ``scoring``, ``partition``,
``models``) are held equal to this table by tests/unit/ml/test_registry.py: a name added on one side
only fails there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One parameter of a registered choice: its type and range (``lo``/``hi`` bounds, open or closed)."""

    kind: type = float  # float, int, bool, str, or list (of integers, each within lo/hi)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    required: bool = False
    choices: tuple[str, ...] = ()  # kind str: the accepted values

    def problem(self, value: object) -> str | None:
        """Why ``value`` does not fit, or None."""
        if self.kind is str:
            return None if value in self.choices else f"must be one of {list(self.choices)}, got {value!r}"
        if self.kind is bool:
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind is list:
            return self._list_problem(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.kind is int else 'a number'}, got {value!r}"
        if self.kind is int and not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        return f"must be in {self.range()}, got {value!r}" if below or above else None

    def _list_problem(self, value: object) -> str | None:
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list of integers, got {value!r}"
        item = Param(kind=int, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
        for i, element in enumerate(value):
            if problem := item.problem(element):
                return f"item {i} {problem}"
        return None

    def range(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        return f"{left}{lo}, {hi}{right}"


def params_problem(schema: dict[str, Param], params: dict[str, object]) -> tuple[str, str] | None:
    """``(parameter name, problem)`` for the first parameter that ``schema`` does not accept (unknown,
    out of range, or a required one missing), else None."""
    for name, value in params.items():
        if name not in schema:
            takes = f"takes {sorted(schema)}" if schema else "takes no parameters"
            return name, f"unknown parameter ({takes})"
        if problem := schema[name].problem(value):
            return name, problem
    for name, p in schema.items():
        if p.required and name not in params:
            return name, "is required"
    return None


_POSITIVE = Param(lo=0, lo_open=True)
_FRACTION = Param(lo=0, hi=1, hi_open=True)

# Server-side aggregation (ml.aggregate.STRATEGIES). Keys are the strategies' keyword arguments.
STRATEGIES: dict[str, dict[str, Param]] = {
    "fedavg": {"server_lr": _POSITIVE, "weighted": Param(kind=bool)},
    "fedavgm": {"server_lr": _POSITIVE, "momentum": _FRACTION},
    "fedadam": {"server_lr": _POSITIVE, "beta1": _FRACTION, "beta2": _FRACTION, "tau": _POSITIVE},
    "median": {},
    "trimmed_mean": {"beta": Param(lo=0, hi=0.5, hi_open=True)},
    "krum": {"f": Param(kind=int, lo=0), "multi": Param(kind=int, lo=1)},
}

# Committee scoring rules (ml.scoring.RULES) and what they measure.
SCORING_RULES = ("absolute", "damped", "loo", "trust", "effect")
SCORING_METRICS = ("loss", "accuracy")

# Provider behaviours (ml.attacks.BEHAVIOURS): honest training and the poisoning attacks.
BEHAVIOURS: dict[str, dict[str, Param]] = {
    "honest": {},
    "label_flip": {"target": Param(kind=int, lo=0)},  # a class index; absent = y -> n_classes-1-y
    "sign_flip": {"factor": Param()},
    "gaussian_noise": {"sigma": Param(lo=0), "replace": Param(kind=bool)},
    "scaling": {"factor": Param()},
    "free_rider": {},
    # Round-aware attacks: in the provider network they estimate the round from their own data.
    "alie": {"n": Param(kind=int, lo=1), "m": Param(kind=int, lo=0)},  # providers, colluders
    "min_max": {},
    "min_sum": {},
    "collude": {"jitter": Param(lo=0)},
    "adaptive": {
        "margin": Param(lo=0),
        "rule": Param(kind=str, choices=SCORING_RULES),  # the rule it assumes the committee uses
    },
    "backdoor": {
        "target": Param(kind=int, lo=0),
        "fraction": Param(lo=0, hi=1, lo_open=True),
        "boost": Param(lo=0, lo_open=True),
    },
}

# Data partitioners (ml.partition.PARTITIONERS); labels, n_clients and seed come from the run.
PARTITIONS: dict[str, dict[str, Param]] = {
    "iid": {},
    "dirichlet": {
        "alpha": Param(lo=0, lo_open=True, required=True),  # Dirichlet concentration
        "n_classes": Param(kind=int, lo=2),
        "min_size": Param(kind=int, lo=0),
    },
    "dominant_class": {
        "share": Param(lo=0, hi=1, lo_open=True),
        "n_classes": Param(kind=int, lo=2),
        "classes": Param(kind=list, lo=0),  # client i's dominant class; default i mod n_classes
    },
    "one_class_per_client": {"n_classes": Param(kind=int, lo=2)},
    "quantity_skew": {"alpha": Param(lo=0, lo_open=True), "min_size": Param(kind=int, lo=0)},
}

# Model architectures (ml.models.list_models()).
MODELS = ("cnn-fmnist", "cnn-medium", "cnn-small", "linear-fmnist", "mlp", "mlp-fmnist")

# Every form of data source ml.data.load_dataset understands, as a user writes it.
DATA_SOURCES = ("digits", "fashion-mnist:train", "fashion-mnist:test", "npz:PATH", "py:MODULE:FUNCTION")


def source_problem(source: str) -> str | None:
    """Why ``source`` is not a data source load_dataset can load, found without loading it, with the
    valid forms (None: its form is valid). Whether the data is there shows when it loads."""
    problem = None
    if source.startswith("fashion-mnist:"):
        if source.partition(":")[2] not in ("train", "test", "t10k"):
            problem = f"unknown Fashion-MNIST split in {source!r}"
    elif source.startswith("npz:"):
        if not source[4:].strip():
            problem = "'npz:' needs a file path"
    elif source.startswith("py:"):
        module, sep, func = source[3:].partition(":")
        if not (sep and module and func):
            problem = f"{source!r} is not 'py:module:function'"
    elif source not in ("digits", "fashion-mnist"):
        problem = f"unknown data source {source!r}"
    return f"{problem}; valid: {', '.join(DATA_SOURCES)}" if problem else None
