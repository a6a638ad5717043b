"""Property tests of the config loader: whatever a user writes, the answer is an Experiment or a
ConfigError naming a key, never a crash from deeper down; and the CLI turns bad input into exit 2."""

from __future__ import annotations

import copy
import inspect
import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcommittee.cli import EXIT_USAGE, main
from fedcommittee.experiment import (
    _TOP,
    ConfigError,
    Experiment,
    load_experiment,
    parse_experiment,
)
from fedcommittee.layout import ORGS
from fedcommittee.ml.data import DATA_SOURCES
from fedcommittee.ml.partition import PARTITIONERS
from fedcommittee.ml.registry import PARTITIONS

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


# ------------------------------------------------- values that cannot work are refused at load time

USERS = {org: 15 for org in ORGS}  # client users per org, as crypto-config.yaml makes them


def refusal(doc, users=USERS) -> ConfigError | None:
    try:
        parse_experiment(doc, source="prop.yaml", users=users, users_from="the test's network")
    except ConfigError as exc:
        return exc
    return None


def valid_source(s: str) -> bool:
    if s in ("digits", "fashion-mnist", "fashion-mnist:train", "fashion-mnist:test", "fashion-mnist:t10k"):
        return True
    if s.startswith("npz:"):
        return bool(s[4:].strip())
    if s.startswith("py:"):
        module, sep, func = s[3:].partition(":")
        return bool(sep and module and func)
    return False


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            ["mnist", "MNIST", "cifar10", "fashion-mnist:val", "fashion_mnist", "npz:", "py:mod"]
        ),
        st.builds(
            lambda p, rest: p + rest, st.sampled_from(["npz:", "py:", "fashion-mnist:"]), st.text(max_size=8)
        ),
    ),
    st.sampled_from(["source", "test_source"]),
)
def test_a_data_source_that_cannot_load_is_refused_with_the_valid_ones(source, key):
    doc = copy.deepcopy(BASE)
    doc["data"][key] = source
    exc = refusal(doc)
    if not source.strip() or (key == "test_source" and not source):
        return  # empty: "must be a non-empty string" (or, for test_source, the default)
    if valid_source(source.strip()):
        assert exc is None, exc
        return
    assert exc is not None and exc.key == f"data.{key}", (source, exc)
    for form in DATA_SOURCES:  # the ML core's list, not a copy
        assert form in str(exc), exc


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_a_dominant_class_share_outside_0_1_is_refused_with_the_range(share):
    doc = copy.deepcopy(BASE)
    doc["partition"] = {"name": "dominant_class", "params": {"share": share}}
    exc = refusal(doc)
    if math.isfinite(share) and 0 < share <= 1:
        assert exc is None, exc
    else:
        assert exc is not None and exc.key == "partition.params.share", exc
        assert "(0, 1]" in str(exc) or "finite" in str(exc), exc


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2, 12), max_size=8))
def test_dominant_classes_need_one_class_index_per_provider(classes):
    doc = copy.deepcopy(BASE)
    doc["partition"] = {"name": "dominant_class", "params": {"classes": classes}}
    exc = refusal(doc)
    if classes and min(classes) >= 0 and len(classes) == len(doc["providers"]):
        assert exc is None, exc
    else:
        assert exc is not None and exc.key == "partition.params.classes", exc


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(PARTITIONS)), st.text(min_size=1, max_size=10))
def test_a_partition_parameter_the_partitioner_does_not_take_is_named(name, param):
    doc = copy.deepcopy(BASE)
    doc["partition"] = {"name": name, "params": {param: 1}}
    takes = set(inspect.signature(PARTITIONERS[name]).parameters) - {"labels", "n_clients", "seed"}
    exc = refusal(doc)
    if param not in takes:
        assert exc is not None and exc.key == f"partition.params.{param}", exc


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.builds(lambda o, n: f"org{o}-user{n}", st.integers(0, 12), st.integers(0, 40)),
        st.builds(lambda o: f"org{o}-admin", st.integers(0, 12)),
        st.text(max_size=14),
    ),
    st.sampled_from(["publisher", "committee", "provider"]),
)
def test_a_user_the_network_does_not_have_is_refused_with_the_valid_ones(user, where):
    doc = copy.deepcopy(BASE)
    key = {"publisher": "publisher", "committee": "committee[0].user", "provider": "providers[0].user"}[where]
    if where == "publisher":
        doc["publisher"] = user
    elif where == "committee":
        doc["committee"][0]["user"] = user
    else:
        doc["providers"][0]["user"] = user
    exc = refusal(doc)
    m = re.fullmatch(r"org(\d+)-(?:user(\d+)|admin)", user.strip())
    exists = bool(m) and int(m.group(1)) in ORGS and (m.group(2) is None or 1 <= int(m.group(2)) <= 15)
    if not exists:
        assert exc is not None and exc.key == key, (user, exc)
        if m and int(m.group(1)) not in ORGS:
            assert "org1, org2, org3" in str(exc), exc  # the orgs there are
        elif m:
            assert f"org{m.group(1)}-user15" in str(exc), exc  # the users there are
    elif exc is not None:
        # An existing user may still clash with another role of the base config; never for existing.
        assert "does not exist" not in str(exc) and "no org" not in str(exc), exc


def test_user_count_comes_from_the_running_network_else_from_the_new_network_config(tmp_path, monkeypatch):
    monkeypatch.delenv("FC_USERS_PER_ORG", raising=False)
    config = tmp_path / "exp.yaml"
    doc = copy.deepcopy(BASE)
    doc["publisher"] = "org3-user30"
    config.write_text(yaml.safe_dump(doc))
    no_network = tmp_path / "none"
    with pytest.raises(ConfigError, match=r"org3-user1 \.\. org3-user15 .*crypto-config\.yaml") as exc:
        load_experiment(config, home=no_network)
    assert exc.value.key == "publisher"
    monkeypatch.setenv("FC_USERS_PER_ORG", "37")
    assert load_experiment(config, home=no_network).publisher == "org3-user30"
    monkeypatch.delenv("FC_USERS_PER_ORG")
    # A network made with FC_USERS_PER_ORG=37 lists its users in connection.yaml: they are the truth,
    # whatever the shell that loads the config has set.
    home = tmp_path / "net"
    home.mkdir()
    ids = {f"org{o}-user{n}": {"msp_id": f"Org{o}MSP"} for o in ORGS for n in range(1, 38)}
    (home / "connection.yaml").write_text(yaml.safe_dump({"identities": {"org1-admin": {}, **ids}}))
    assert load_experiment(config, home=home).publisher == "org3-user30"
    doc["publisher"] = "org3-user38"
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"org3-user37 .*as the network at"):
        load_experiment(config, home=home)


def test_cli_refuses_a_config_that_cannot_work_with_exit_2(tmp_path, capsys):
    for edit, words in [
        (
            lambda d: d["data"].update(source="mnist"),
            "data.source: unknown data source 'mnist'; valid: digits",
        ),
        (lambda d: d["partition"]["params"].update(share=1.5), "partition.params.share: must be in (0, 1]"),
        (lambda d: d.update(publisher="org9-user4"), "publisher: 'org9-user4': there is no org9"),
        (lambda d: d.update(governance={"orgs": ["Org9MSP"]}), "governance.orgs[0]: no org 'Org9MSP'"),
    ]:
        doc = copy.deepcopy(BASE)
        edit(doc)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert main(["run", str(path), "--home", str(tmp_path / "none")]) == EXIT_USAGE
        assert words in capsys.readouterr().err
