"""The torch-free registry names exactly what the ML modules implement, and reading a config needs no
torch."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from fedcommittee.ml import registry
from fedcommittee.ml.aggregate import STRATEGIES
from fedcommittee.ml.attacks import BEHAVIOURS
from fedcommittee.ml.models import list_models
from fedcommittee.ml.partition import PARTITIONERS
from fedcommittee.ml.scoring import RULES

ROOT = Path(__file__).resolve().parents[3]


def keywords(fn, fixed=()) -> set[str]:
    return {n for n in inspect.signature(fn).parameters if n not in {"self", *fixed}}


def test_every_strategy_is_registered_with_its_keywords_and_nothing_else():
    assert set(registry.STRATEGIES) == set(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert set(registry.STRATEGIES[name]) == keywords(cls), name
        assert cls.name == name


def test_every_behaviour_is_registered_with_its_fields_and_nothing_else():
    assert set(registry.BEHAVIOURS) == set(BEHAVIOURS)
    for name, cls in BEHAVIOURS.items():
        assert set(registry.BEHAVIOURS[name]) == {f.name for f in dataclasses.fields(cls)}, name


def test_every_partitioner_is_registered_with_its_parameters_and_nothing_else():
    assert set(registry.PARTITIONS) == set(PARTITIONERS)
    for name, fn in PARTITIONERS.items():
        assert set(registry.PARTITIONS[name]) == keywords(fn, ("labels", "n_clients", "seed")), name
        for param, p in registry.PARTITIONS[name].items():
            no_default = inspect.signature(fn).parameters[param].default is inspect.Parameter.empty
            assert p.required == no_default, (name, param)


def test_scoring_rules_and_models_match():
    assert tuple(registry.SCORING_RULES) == tuple(RULES)
    assert sorted(registry.MODELS) == list_models()


def test_registered_defaults_fit_their_own_ranges():
    for schemas, classes in ((registry.STRATEGIES, STRATEGIES), (registry.BEHAVIOURS, BEHAVIOURS)):
        for name, cls in classes.items():
            sig = inspect.signature(cls)
            for param, schema in schemas[name].items():
                default = sig.parameters[param].default
                if default is not None and default is not inspect.Parameter.empty:
                    assert schema.problem(default) is None, (name, param, default)


@pytest.mark.parametrize(
    "value, problem",
    [(0.5, None), (1.0, "[0, 1)"), (-0.1, "[0, 1)"), (True, "a number"), (float("nan"), "finite")],
)
def test_a_parameter_out_of_range_says_the_range(value, problem):
    found = registry.params_problem(registry.STRATEGIES["fedavgm"], {"momentum": value})
    assert (found is None) if problem is None else (found[0] == "momentum" and problem in found[1])


def test_reading_every_shipped_config_imports_no_torch():
    # A fresh interpreter: in this one, other tests have imported torch already.
    code = (
        "import sys, pathlib\n"
        "from fedcommittee.experiment import load_experiment\n"
        "from fedcommittee.policy import Policy\n"
        "paths = sorted(pathlib.Path('configs').glob('*.yaml'))\n"
        "paths = [p for p in paths if p.name != 'connection-local.yaml']\n"
        "assert paths\n"
        "for p in paths:\n"
        "    Policy.from_experiment(load_experiment(p))\n"
        "print(len(paths), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    count, torch_loaded = out.stdout.split()
    assert int(count) >= 4 and torch_loaded == "False", out.stdout


@pytest.mark.parametrize(
    "value, problem",
    [([0, 1, 9], None), ([], "non-empty list"), (3, "non-empty list"), ([0, -1], "item 1 must be in"),
     ([0, 1.5], "item 1 must be an integer"), ([True], "item 0 must be an integer")],
)  # fmt: skip
def test_a_list_parameter_checks_every_item(value, problem):
    found = registry.params_problem(registry.PARTITIONS["dominant_class"], {"classes": value})
    assert (found is None) if problem is None else (found[0] == "classes" and problem in found[1])


def test_the_lazy_package_pickles_by_name_like_a_module():
    # Ray (the Flower benchmark) pickles closures that refer to the package; its lazy-loading class
    # must come back as the same module, not fail as an unknown object.
    import pickle

    from fedcommittee import ml

    assert pickle.loads(pickle.dumps(ml)) is ml
