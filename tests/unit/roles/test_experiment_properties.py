"""Property tests of the config loader: whatever a user writes, the answer is an Experiment or a
ConfigError naming a key, never a crash from deeper down; and the CLI turns bad input into exit 2."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcommittee.cli import EXIT_USAGE, main
from fedcommittee.experiment import _TOP, ConfigError, Experiment, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[3]
BASE = yaml.safe_load((ROOT / "configs" / "rules.yaml").read_text())

# Anything YAML can produce for one value.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(doc, prefix=()):
    """Every (path, value) in a parsed config, mappings and list items included."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k), v
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i), v
            yield from paths(v, (*prefix, i))


PATHS = [p for p, _ in paths(BASE)]


def set_path(doc, path, value):
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def outcome(doc) -> str:
    try:
        exp = parse_experiment(doc, source="prop.yaml")
    except ConfigError as exc:
        assert isinstance(exc.key, str) and exc.key, exc
        assert str(exc).startswith("prop.yaml: "), exc
        return "refused"
    assert isinstance(exp, Experiment)
    return "accepted"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_any_edit_is_accepted_or_refused_with_a_key(edits):
    doc = copy.deepcopy(BASE)
    for path, value in edits:
        try:
            set_path(doc, path, value)
        except (TypeError, KeyError, IndexError):
            continue  # an earlier edit replaced a parent: nothing to edit there any more
    outcome(doc)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in _TOP))
def test_an_unknown_top_level_key_is_named(key):
    doc = dict(copy.deepcopy(BASE), **{key: 1})
    try:
        parse_experiment(doc, source="prop.yaml")
    except ConfigError as exc:
        assert exc.key == key
    else:
        raise AssertionError(f"unknown key {key!r} was accepted")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_arbitrary_file_text_is_accepted_or_refused(tmp_path, text):
    path = tmp_path / "any.yaml"
    path.write_text(text)
    try:
        load_experiment(path)
    except ConfigError as exc:
        assert exc.key
    # (an accepted one would be a valid experiment: vanishingly unlikely from random text)


@given(st.floats(allow_nan=True, allow_infinity=True))
@settings(max_examples=60, deadline=None)
def test_numbers_out_of_range_never_reach_the_experiment(x):
    doc = copy.deepcopy(BASE)
    doc["local"]["lr"] = x
    if outcome(doc) == "accepted":
        assert math.isfinite(x) and x > 0


def test_cli_bad_input_is_exit_2_with_the_reason(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert main(["provider", str(missing), "--name", "p1"]) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["committee", str(bad), "--name", "member1"]) == EXIT_USAGE
    assert "not valid YAML" in capsys.readouterr().err
    config = str(ROOT / "configs" / "rules.yaml")
    assert main(["provider", config, "--name", "nobody"]) == EXIT_USAGE
    assert "no provider named 'nobody'" in capsys.readouterr().err
    assert main(["run", config, "--model-id", "bad id!"]) == EXIT_USAGE
    assert "model_id" in capsys.readouterr().err


def test_cli_refuses_user_with_several_provider_names(capsys):
    config = str(ROOT / "configs" / "rules.yaml")
    assert main(["provider", config, "--name", "p1", "--name", "p2", "--user", "org1-user3"]) == EXIT_USAGE
    assert "--user names one identity" in capsys.readouterr().err
