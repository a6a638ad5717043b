"""Privacy drills, unit level: what a provider uploads and submits holds no raw sample, and DP runs
report epsilon.

The real ``Provider`` (fedcommittee/roles/provider.py) runs its federated and gossip steps on its
partition as ``experiment.data_split`` derives it, over an in-memory ledger and store
(``tests.privacy.CapturingAgent``): the bytes checked are exactly the bytes it hands to
``Agent.put``, and the record checked is exactly the ``SubmitUpdate`` argument it hands to the
contract. tests/integration/test_privacy.py repeats the upload check through the real IPFS node.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fedcommittee import ml
from fedcommittee.experiment import data_split
from fedcommittee.ml import compress
from fedcommittee.ml import dp as mldp
from fedcommittee.ml import state as st
from tests.privacy import (
    PROVIDERS,
    WINDOW,
    LeakChecker,
    memory_store,
    privacy_experiment,
    record_problems,
    run_federated,
    sample_forms,
    upload_scheme,
    upload_size,
)

MODEL = "mlp"


@pytest.fixture(scope="module")
def exp():
    return privacy_experiment()


@pytest.fixture(scope="module")
def split(exp):
    return data_split(exp)


@pytest.fixture(scope="module")
def checker(split):
    # Every training sample of every provider (a superset of any one provider's partition).
    return LeakChecker(sample_forms(split.train.x))


@pytest.fixture(scope="module")
def honest(exp):
    agent, provider, records = run_federated(exp, "honest1", memory_store(), rounds=1)
    return agent, provider, records


def _payload_size(model: str) -> int:
    return len(ml.dumps(st.zeros_like(ml.initial_state(model, 0))))


# ------------------------------------------------------------------------ the checker itself


def test_sample_forms_cover_every_dtype_the_pipeline_holds(split):
    forms = sample_forms(split.train.x[:3])
    assert set(forms) == {"float32", "float64", "float64 levels 0..16", "uint8 levels 0..16"}
    x = split.train.x[0].numpy().reshape(-1)
    assert forms["float32"][0].tobytes() == x.tobytes()
    assert forms["float64"][0].tobytes() == x.astype(np.float64).tobytes()
    # sklearn's digits: grey levels 0..16 held as float64 (load_digits divides them by 16)
    assert forms["float64 levels 0..16"][0].tobytes() == (x.astype(np.float64) * 16).tobytes()
    assert forms["uint8 levels 0..16"][0].tobytes() == (x * 16).astype(np.uint8).tobytes()
    fm = sample_forms(torch.tensor(np.arange(256, dtype=np.float64).reshape(1, 1, 16, 16) / 255.0))
    assert "uint8 levels 0..255" in fm  # Fashion-MNIST's IDX form
    assert fm["uint8 levels 0..255"][0].tobytes() == bytes(range(256))


def test_every_sample_is_covered_by_informative_windows(checker, split):
    assert checker.n_samples == len(split.train)
    assert checker.uncovered == []
    assert checker.windows_indexed > 100_000


def test_negative_controls_the_checker_finds_planted_samples(checker, honest, split):
    agent, _, _ = honest
    payload = agent.uploads[0][1]
    assert checker.scan(payload, "clean") == []
    forms = checker.forms
    i = 17
    cases = {
        "float32 sample appended": payload + forms["float32"][i].tobytes(),
        "float64 sample prepended": forms["float64"][i].tobytes() + payload,
        "uint8 levels in the middle": payload[:5001]
        + forms["uint8 levels 0..16"][i].tobytes()
        + payload[5001:],
        "float32 sample at an odd offset": payload + b"\x01" + forms["float32"][i].tobytes(),
    }
    for label, leaky in cases.items():
        found = checker.scan(leaky, label)
        assert any(f.sample == i and f.how == "whole sample" for f in found), label

    # Only one informative 32-byte window of the float64 levels form, spliced into the delta.
    rows = forms["float64 levels 0..16"][i]
    window = next(
        rows[o : o + WINDOW].tobytes()
        for o in range(len(rows) - WINDOW + 1)
        if len(set(rows[o : o + WINDOW].tolist()) - {0}) >= 4 and (rows[o : o + WINDOW] != 0).sum() >= 8
    )
    found = checker.scan(payload[:777] + window + payload[777:], "one window")
    assert found and all(f.how == f"{WINDOW}-byte window" for f in found)
    assert (("float64 levels 0..16", i) in LeakChecker.leaked_samples(found)) and found[0].offset == 777

    # A provider that smuggles a sample as an extra tensor through the real serializer.
    delta = ml.loads(payload, MODEL)
    leaky_state = dict(delta, **{"zz.leak": split.train.x[i].reshape(-1).clone()})
    found = checker.scan(ml.dumps(leaky_state), "extra tensor")
    assert ("float32", i) in LeakChecker.leaked_samples(found)


def test_blank_runs_are_not_mistaken_for_samples(checker):
    size = _payload_size(MODEL)
    assert checker.scan(bytes(size), "all zero (a free rider's delta)") == []
    # zeros with one grey pixel's bytes: what an emptier window of a sample looks like
    one_level = bytes(1000) + np.float64(3.0).tobytes() + bytes(1000) + np.float32(0.25).tobytes() + bytes(99)
    assert checker.scan(one_level, "one grey level") == []


# ------------------------------------------------------------------------ what a provider uploads


@pytest.mark.parametrize("name", [p["name"] for p in PROVIDERS])
def test_federated_uploads_and_records_carry_no_sample(exp, split, checker, name):
    agent, provider, records = run_federated(exp, name, memory_store(), rounds=2)
    own = split.train.subset(split.partition[exp.provider_index(name)])
    assert len(provider.data) == len(own) and torch.equal(provider.data.x, own.x)
    assert len(agent.uploads) == 2 and len(agent.submitted) == 2  # one object, one transaction a round
    for (obj, payload), text in zip(agent.uploads, records, strict=True):
        doc = json.loads(text)
        assert (doc["cid"], doc["sha256"]) == (obj.cid, obj.sha256_hex) == (obj.cid, ml.sha256_hex(payload))
        # The upload is a model-shaped delta and nothing else: it decodes strictly in the provider's
        # encoding and has exactly the size of the architecture's tensors in it (no room for more).
        compress.decompress(payload, MODEL, scheme=upload_scheme(provider))
        assert len(payload) == upload_size(exp, provider)
        assert checker.scan(payload, f"{name} upload") == []
        assert record_problems(text) == [], text
        assert checker.scan(text.encode(), f"{name} record") == []
        assert doc["numSamples"] == len(own)


def test_gossip_uploads_carry_no_sample(checker):
    from fedcommittee.roles.provider import Provider
    from tests.privacy import provider_agent

    plain = [p for p in PROVIDERS if "compression" not in p]  # gossip sends full weights, uncompressed
    exp = privacy_experiment(
        mode="gossip", gossip={"updates_per_provider": 2, "max_parents": 1}, providers=plain
    )
    store = memory_store()
    agent = provider_agent(exp, "honest1", store)
    agent.accept_updates = agent.client.accept = True  # so the second update has a parent
    provider = Provider(agent, "honest1")
    init = store.put(ml.dumps(ml.initial_state(MODEL, exp.seed)))
    model = {"id": exp.model_id, "mode": "gossip", "status": "active",
             "initialWeights": {"cid": init.cid, "sha256": init.sha256_hex}}  # fmt: skip
    assert provider.gossip_step(model) and provider.gossip_step(model) and not provider.gossip_step(model)
    assert len(agent.uploads) == 2 and len(agent.submitted) == 2
    docs = [json.loads(args[1]) for _, args in agent.submitted]
    assert docs[0]["parents"] == [] and len(docs[1]["parents"]) == 1
    for (_, payload), (_, args) in zip(agent.uploads, agent.submitted, strict=True):
        assert len(payload) == _payload_size(MODEL)  # full weights, model-shaped
        assert checker.scan(payload, "gossip upload") == []
        assert record_problems(args[1]) == [], args[1]


@pytest.mark.parametrize("scheme", compress.list_schemes())
def test_compressed_encodings_carry_no_sample(checker, honest, scheme):
    # Every scheme a provider may be configured to send (``compression``), on a real delta.
    agent, _, _ = honest
    delta = ml.loads(agent.uploads[0][1], MODEL)
    blob = compress.compress(delta, scheme)
    assert checker.scan(blob, f"compressed {scheme}") == []


def test_negative_controls_records_with_extra_content_are_refused(honest, split):
    _, _, records = honest
    good = json.loads(records[0])
    assert record_problems(json.dumps(good)) == []
    pixels = split.train.x[0].reshape(-1).tolist()
    bad = {
        "extra field": dict(good, debug="x"),
        "pixels as a metric": dict(good, metrics=dict(good["metrics"], first=pixels)),
        "unknown metric": dict(good, metrics=dict(good["metrics"], pixel0=pixels[0])),
        "text metric": dict(good, metrics=dict(good["metrics"], train_loss="0.5")),
        "not a CID": dict(good, cid="data:" + "A" * 40),
        "not a sha256": dict(good, sha256=good["sha256"].upper()),
        "samples as a list": dict(good, numSamples=[1, 2]),
    }
    for label, doc in bad.items():
        assert record_problems(json.dumps(doc)), label
    assert record_problems(json.dumps(good) + " " * 3000)  # oversize
    assert record_problems(json.dumps(dict(good, metrics={"epsilon": math.inf})))  # "Infinity"


@pytest.mark.parametrize("share", [False, True])
def test_data_registration_holds_counts_only(split, checker, share):
    """RegisterData (metadata a provider puts on chain): sample count and data kind; the label
    histogram only with the config's consent (data.share_histogram)."""
    from fedcommittee.roles.provider import Provider
    from tests.privacy import provider_agent

    if not hasattr(Provider, "register"):
        pytest.skip("providers register no data metadata (no Provider.register)")
    exp = privacy_experiment(data={"source": "digits", "val_fraction": 0.25, "share_histogram": share})
    agent = provider_agent(exp, "honest1", memory_store())
    provider = Provider(agent, "honest1")
    provider.register()
    provider.register()  # once per model
    assert [fn for fn, _ in agent.submitted] == ["RegisterData"] and agent.uploads == []
    text = agent.submitted[0][1][1]
    doc = json.loads(text)
    base = {"numSamples", "dataType", "format", "shareHistogram"}
    assert set(doc) == (base | {"labelHistogram"} if share else base), doc
    assert doc["numSamples"] == len(provider.data) and doc["shareHistogram"] is share
    assert isinstance(doc["dataType"], str) and isinstance(doc["format"], str) and len(text) < 512
    if share:
        counts = np.bincount(provider.data.y.numpy(), minlength=10)
        assert doc["labelHistogram"] == {str(i): int(c) for i, c in enumerate(counts) if c}
    assert checker.scan(text.encode(), "RegisterData") == []


# ------------------------------------------------------------------------------ DP reports epsilon


def _epsilons(records: list[str]) -> list[float]:
    return [json.loads(t)["metrics"]["epsilon"] for t in records]


def test_dp_epsilon_is_the_accountants_and_grows_with_releases(exp):
    cfg = exp.provider("dp-mid").dp
    _, provider, records = run_federated(exp, "dp-mid", memory_store(), rounds=3)
    eps = _epsilons(records)
    expected = [mldp.epsilon(cfg.noise_multiplier, r, 1.0, cfg.target_delta) for r in (1, 2, 3)]
    assert eps == expected  # the Opacus RDP accountant's value, one step per released update
    assert all(math.isfinite(e) and e > 0 for e in eps)
    assert eps[0] < eps[1] < eps[2]
    assert provider.dp.releases == 3
    # A provider restarted with updates already on the ledger counts those releases too.
    _, _, later = run_federated(exp, "dp-mid", memory_store(), rounds=1, prior_updates=9)
    assert _epsilons(later) == [mldp.epsilon(cfg.noise_multiplier, 10, 1.0, cfg.target_delta)] and later
    assert _epsilons(later)[0] > eps[2]


def test_dp_epsilon_falls_with_larger_noise(exp):
    eps = [
        _epsilons(run_federated(exp, n, memory_store(), rounds=1)[2])[0]
        for n in ("dp-low", "dp-mid", "dp-high")
    ]
    assert all(math.isfinite(e) and e > 0 for e in eps)
    assert eps[0] > eps[1] > eps[2], eps


def test_dp_accounting_counts_releases_not_local_steps(exp):
    # User-level DP on the released delta (ml/dp.py): local SGD steps do not enter the budget.
    more_steps = privacy_experiment(local={"steps": 60, "batch_size": 32, "lr": 0.1})
    a = _epsilons(run_federated(exp, "dp-mid", memory_store(), rounds=2)[2])
    b = _epsilons(run_federated(more_steps, "dp-mid", memory_store(), rounds=2)[2])
    assert a == b


def test_dp_noise_claimed_is_the_noise_applied(exp, split):
    """The uploaded delta is the clipped delta plus N(0, (noise_multiplier * clip)^2) per coordinate."""
    cfg = exp.provider("dp-high").dp
    agent, provider, _ = run_federated(exp, "dp-high", memory_store(), rounds=1)
    sent = ml.loads(agent.uploads[0][1], MODEL)
    # What the provider trained before privatizing: same seed, same behaviour, no DP.
    from fedcommittee.roles.provider import _seed

    raw = ml.run_behaviour(
        provider.behaviour,
        MODEL,
        ml.initial_state(MODEL, exp.seed),
        provider.data,
        exp.train_config(_seed(exp.seed, "dp-high", 1)),
    ).delta
    clipped, norm = mldp.clip_delta(raw, cfg.clip)
    residual = st.flatten(st.subtract(sent, clipped))
    std = float(residual.std())
    assert norm > 0 and abs(std - cfg.noise_multiplier * cfg.clip) < 0.05 * cfg.noise_multiplier * cfg.clip
    assert abs(float(residual.mean())) < 0.1


def test_no_epsilon_is_claimed_without_dp(exp):
    for name in ("honest1", "signflip", "freerider"):
        _, provider, records = run_federated(exp, name, memory_store(), rounds=2)
        assert provider.dp is None
        for text in records:
            assert "epsilon" not in json.loads(text)["metrics"], (name, text)


def test_dp_without_noise_is_refused_by_the_config():
    """Clipping alone has no finite epsilon: the config refuses it rather than letting the provider
    report epsilon=inf, which JSON cannot carry and the chaincode would refuse on every update."""
    from fedcommittee.experiment import ConfigError

    with pytest.raises(ConfigError) as info:
        privacy_experiment(
            providers=[
                {"name": "clip-only", "user": "org1-user3", "dp": {"enabled": True, "noise_multiplier": 0}},
                {"name": "honest", "user": "org2-user3"},
            ]
        )
    assert info.value.key == "providers[0].dp.noise_multiplier" and "epsilon = inf" in str(info.value)
