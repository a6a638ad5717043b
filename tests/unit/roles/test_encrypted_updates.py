"""Updates sealed to the committee (``encrypt_updates``), unit level: the real ``Provider`` seals its
encoded update to the ledger's committee seats and publisher, recipients open it through ``Reader``,
anyone else gets ``EncryptedObject``, members refuse sealed updates that leave out a recipient or
repeat an earlier update's content, and the auditor counts what it could not open.
tests/integration/test_privacy.py repeats the sealing through the real IPFS node.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fedcommittee import ml
from fedcommittee.experiment import ConfigError
from fedcommittee.ml import compress
from fedcommittee.roles.auditor import audit_model
from fedcommittee.roles.envelopes import update_context, update_recipients
from fedcommittee.roles.reader import Reader, gossip_base
from fedcommittee.storage import envelope
from fedcommittee.storage.errors import DecryptionError, EncryptedObject
from tests.privacy import (
    CapturingAgent,
    LeakChecker,
    enrolled_identity,
    memory_store,
    model_recipients,
    privacy_experiment,
    provider_agent,
    run_federated,
    upload_size,
)
from tests.unit.roles.test_logic import federated_history

MODEL = "mlp"


@pytest.fixture(scope="module")
def exp():
    return privacy_experiment(encrypt_updates=True)


@pytest.fixture(scope="module")
def recipients(exp):
    return model_recipients(exp, extra_users=(exp.providers[0].user,))


@pytest.fixture(scope="module")
def sealed_run(exp, recipients):
    store = memory_store()
    agent, provider, records = run_federated(exp, "half", store, rounds=2, recipients=recipients)
    return store, agent, provider, records


# ------------------------------------------------------------------------------------ config


def test_encrypt_updates_is_a_validated_top_level_flag():
    assert privacy_experiment().encrypt_updates is False
    assert privacy_experiment(encrypt_updates=True).encrypt_updates is True
    gossip = privacy_experiment(encrypt_updates=True, mode="gossip", providers=[
        {"name": "a", "user": "org1-user3"}, {"name": "b", "user": "org2-user3"}])  # fmt: skip
    assert gossip.encrypt_updates and gossip.mode == "gossip"
    for bad in ("yes", 1, "true"):
        with pytest.raises(ConfigError) as info:
            privacy_experiment(encrypt_updates=bad)
        assert info.value.key == "encrypt_updates" and "must be true or false" in str(info.value)


# ------------------------------------------------------------------------------- the provider


def test_provider_uploads_its_update_sealed_to_the_committee_and_publisher(exp, recipients, sealed_run):
    store, agent, provider, records = sealed_run
    assert len(agent.uploads) == 2
    for (obj, sent), text in zip(agent.uploads, records, strict=True):
        doc = json.loads(text)
        # The ledger records the sealed object, which is what IPFS holds: every hash check stays.
        assert (doc["cid"], doc["sha256"]) == (obj.cid, obj.sha256_hex) == (obj.cid, ml.sha256_hex(sent))
        assert envelope.is_envelope(sent)
        assert sorted(envelope.envelope_recipients(sent)) == recipients.key_ids()  # 3 members + publisher
        opened = {u: recipients.open(sent, u) for u in recipients.users}
        plain = opened[exp.publisher]
        assert all(p == plain for p in opened.values())  # key commitment: one plaintext for all
        assert len(plain) == upload_size(exp, provider)
        compress.decompress(plain, MODEL, scheme="float16")
        # No 32-byte window of the plaintext file (header included) survives in the sealed bytes.
        assert LeakChecker({"plain": np.frombuffer(plain, np.uint8)[None, :]}).scan(sent) == []
        assert len(sent) > len(plain)


def test_trained_log_says_encrypted_with_plain_and_sealed_sizes(exp, recipients):
    from fedcommittee.roles.provider import Provider
    from tests.privacy import open_round

    store = memory_store()
    agent = provider_agent(exp, "honest1", store)
    agent.profile = recipients.profile
    logged = []
    agent.log = lambda event, level="info", **f: logged.append((event, f))
    provider = Provider(agent, "honest1")
    model = open_round(agent, 1, store.put(ml.dumps(ml.initial_state(MODEL, 0))), recipients.model_fields())
    provider.federated_step(model)
    (rec,) = [f for e, f in logged if e == "trained"]
    obj, _ = agent.uploads[-1]
    assert rec["encrypted"] is True and rec["recipients"] == 4 and rec["bytes"] == obj.size
    assert rec["plain_bytes"] == upload_size(exp, provider) < rec["bytes"]
    assert rec["seal_seconds"] >= 0

    # Without the option: in the clear, and the log says so.
    agent2 = provider_agent(privacy_experiment(), "honest1", store)
    logged.clear()
    agent2.log = lambda event, level="info", **f: logged.append((event, f))
    init = store.put(ml.dumps(ml.initial_state(MODEL, 0)))
    Provider(agent2, "honest1").federated_step(open_round(agent2, 1, init))
    (rec2,) = [f for e, f in logged if e == "trained"]
    assert rec2["encrypted"] is False and "plain_bytes" not in rec2
    assert not envelope.is_envelope(agent2.uploads[-1][1])


def test_recipients_are_only_identities_the_ledger_names(exp, recipients):
    agent = provider_agent(exp, "honest1", memory_store())
    agent.profile = recipients.profile
    model = {"id": exp.model_id, "mode": "federated", **recipients.model_fields()}
    got = update_recipients(agent, model)
    assert [k for k, _ in got] == sorted(recipients.identity(u) for u in recipients.users)
    # A member taken off the committee on the ledger is no recipient, though the config lists it.
    fewer = dict(model, committee=model["committee"][1:])
    assert len(update_recipients(agent, fewer)) == 3
    assert recipients.identity(exp.committee[0].user) not in dict(update_recipients(agent, fewer))
    # A certificate in the profile that is not of the identity the ledger seated is never sealed to:
    # the seat has no certificate then, and sealing stops rather than leave it out.
    swapped = model_recipients(exp)
    swapped.keys[exp.committee[1].user] = enrolled_identity("org2-user9")
    agent.profile = swapped.profile
    with pytest.raises(RuntimeError, match="no certificate in the connection profile for 1 update recipient"):
        update_recipients(agent, dict(model, **{"publisher": swapped.identity(exp.publisher)}))


# --------------------------------------------------------------------------------- the readers


def _reader(store, key=None, model_id="privacy-drill"):
    return Reader(None, store, MODEL, private_key=key, model_id=model_id)


def test_each_recipient_opens_the_sealed_delta_and_nobody_else(exp, recipients, sealed_run):
    store, agent, provider, records = sealed_run
    doc = json.loads(records[0])
    want = compress.decompress(recipients.open(agent.uploads[0][1]), MODEL)
    for user in recipients.users:
        got = _reader(store, recipients.keys[user][0]).fetch_delta(doc["cid"], doc["sha256"])
        assert all(torch.equal(got[k], want[k]) for k in want), user
    # A reader without a key, or with a key the update is not sealed to, gets a clear error.
    with pytest.raises(EncryptedObject) as info:
        _reader(store).fetch_delta(doc["cid"], doc["sha256"])
    err = info.value
    assert err.key_id is None and sorted(err.recipients) == recipients.key_ids()
    assert err.context == update_context(exp.model_id)
    assert str(err).startswith(
        f"update object {doc['cid']} is sealed ('fedcommittee/update/privacy-drill') to 4"
    )
    assert "the model's committee members and its publisher" in str(err) and "has no private key" in str(err)
    outsider, _ = envelope.generate_keypair("p256")
    provider_key = recipients.keys[exp.providers[0].user][0]
    for key in (provider_key, outsider):
        with pytest.raises(EncryptedObject, match="is not one of them"):
            _reader(store, key).fetch_delta(doc["cid"], doc["sha256"])
    # The member's key under another model's context is refused: the context binds the model.
    with pytest.raises(DecryptionError, match="different context"):
        _reader(store, recipients.keys[exp.publisher][0], "another-model").fetch_delta(
            doc["cid"], doc["sha256"]
        )
    # Only update objects are opened: a sealed blob where weights are expected is malformed.
    with pytest.raises(ml.WeightsError):
        _reader(store, recipients.keys[exp.publisher][0]).fetch_weights(doc["cid"], doc["sha256"])


def _gossip_of_two(updates_per_provider: int):
    """A sealed gossip model of providers a (org1-user3) and b (org2-user3): (exp, its recipients,
    the store holding the initial weights, the model record)."""
    gossip = {"updates_per_provider": updates_per_provider, "max_parents": 1}
    exp = privacy_experiment(
        encrypt_updates=True, mode="gossip", gossip=gossip,
        providers=[{"name": "a", "user": "org1-user3"}, {"name": "b", "user": "org2-user3"}],
    )  # fmt: skip
    rec = model_recipients(exp, extra_users=("org1-user3", "org2-user3"))
    store = memory_store()
    init = store.put(ml.dumps(ml.initial_state(MODEL, exp.seed)))
    weights = {"cid": init.cid, "sha256": init.sha256_hex}
    model = {"id": exp.model_id, "mode": "gossip", "status": "active", "initialWeights": weights,
             **rec.model_fields()}  # fmt: skip
    return exp, rec, store, model


def _provider_a(exp, rec, store, registered: tuple[str, ...]):
    """Provider a's agent, the ledger holding the data registrations of ``registered`` users."""
    agent = provider_agent(exp, "a", store)
    agent.profile, agent.me = rec.profile, rec.identity("org1-user3")
    agent.client.me = agent.me
    agent.client.registrations = {rec.identity(u): {} for u in registered}
    return agent


def test_gossip_updates_are_sealed_to_the_providers_too(recipients):
    from fedcommittee.roles.provider import Provider

    exp, rec, store, model = _gossip_of_two(updates_per_provider=1)
    agent = _provider_a(exp, rec, store, registered=("org1-user3", "org2-user3"))
    agent.accept_updates = agent.client.accept = True
    assert Provider(agent, "a").gossip_step(model)
    (_, sealed) = agent.uploads[-1]
    kids = {envelope.key_id(rec.keys[u][1].certificate.public_key()) for u in ("org1-user3", "org2-user3")}
    assert set(envelope.envelope_recipients(sealed)) == set(rec.key_ids()) | kids
    # The other provider builds on it: its reader opens the parent with its own key.
    (uid,) = agent.client.updates
    other = Reader(agent.client, store, MODEL, private_key=rec.keys["org2-user3"][0], model_id=exp.model_id)
    base = gossip_base(other, model, [uid])
    assert ml.dumps(base) == rec.open(sealed)


def test_a_sealed_gossip_update_waits_for_the_other_providers_to_register(recipients, monkeypatch):
    """Sealed to the providers registered when it is sent, a first update waits for the others (one
    that registered later could never open it), up to settle_seconds (a provider may be gone)."""
    from fedcommittee.roles import provider as provider_mod
    from fedcommittee.roles.provider import Provider

    exp, rec, store, model = _gossip_of_two(updates_per_provider=2)
    agent = _provider_a(exp, rec, store, registered=("org1-user3",))
    clock = [1000.0]
    monkeypatch.setattr(provider_mod.time, "time", lambda: clock[0])
    p = Provider(agent, "a")
    assert p.gossip_step(model) and agent.uploads == []  # b has not registered: nothing sealed yet
    agent.client.registrations[rec.identity("org2-user3")] = {}
    assert p.gossip_step(model) and len(agent.uploads) == 1
    kid_b = envelope.key_id(rec.keys["org2-user3"][1].certificate.public_key())
    assert kid_b in envelope.envelope_recipients(agent.uploads[0][1])
    # Alone after settle_seconds: a provider that never registers does not hold the others up.
    agent2 = _provider_a(exp, rec, store, registered=("org1-user3",))
    p2 = Provider(agent2, "a")
    assert p2.gossip_step(model) and agent2.uploads == []
    clock[0] += exp.settle_seconds
    assert p2.gossip_step(model) and len(agent2.uploads) == 1
    assert kid_b not in envelope.envelope_recipients(agent2.uploads[0][1])


# ---------------------------------------------------------------------------------- the member


def _member(exp, rec, store):
    from fedcommittee.roles.committee import Member

    user = exp.committee[0].user
    agent = CapturingAgent(exp=exp, user=user, role="committee", name="member1", home=Path("."),
                           backing_store=store, profile=rec.profile)  # fmt: skip
    agent.private_key = rec.keys[user][0]
    return Member(agent, "member1"), agent


def _sealed_update(agent, rec, uid, r, plain, users=None, at=0):
    keys = [rec.keys[u][1].certificate.public_key() for u in (users or rec.users)]
    obj = agent.store.inner.put(envelope.seal(plain, keys, update_context(agent.exp.model_id)))
    agent.client.updates[uid] = {"id": uid, "modelId": agent.model_id, "provider": "Org1MSP/p", "round": r,
                                 "status": "pending", "cid": obj.cid, "sha256": obj.sha256_hex,
                                 "submittedAt": at, "baseSha256": "b", "numSamples": 10}  # fmt: skip
    return agent.client.updates[uid]


def test_member_opens_sealed_updates_and_refuses_replays_and_missing_recipients(exp, recipients):
    member, agent = _member(exp, recipients, memory_store())
    model = {"id": exp.model_id, "mode": "federated", **recipients.model_fields()}
    delta = ml.initial_state(MODEL, 5)
    plain = compress.compress(delta, "float16")
    u1 = _sealed_update(agent, recipients, "u1", 1, plain, at=10)
    got = member._load_update(model, u1, "b")
    assert isinstance(got, dict) and member.replay_of(model, u1) is None
    # The same delta sealed again next round: new bytes (the contract cannot tell), same content.
    u2 = _sealed_update(agent, recipients, "u2", 2, plain, at=20)
    assert u2["sha256"] != u1["sha256"]
    assert isinstance(member._load_update(model, u2, "b"), dict)
    assert member.replay_of(model, u2) == "u1" and member.replay_of(model, u1) is None
    # A fast round: next round's replay in the same whole second, under an id that sorts first.
    early = _sealed_update(agent, recipients, "a0", 2, plain, at=10)
    assert isinstance(member._load_update(model, early, "b"), dict)
    assert member.replay_of(model, early) == "u1" and member.replay_of(model, u1) is None
    del agent.client.updates["a0"]
    # Sealed to the committee only: the publisher (the aggregator) could not open it.
    members_only = [m.user for m in exp.committee]
    u3 = _sealed_update(agent, recipients, "u3", 2, compress.compress(ml.initial_state(MODEL, 6), "float16"),
                        users=members_only, at=21)  # fmt: skip
    reason = member._load_update(model, u3, "b")
    assert isinstance(reason, str) and "is not sealed to 1 of the model's update recipients" in reason
    # Sealed without us: rejected with the reason, not a crash.
    u4 = _sealed_update(agent, recipients, "u4", 2, plain[:-1] + b"\x00", users=[exp.publisher], at=22)
    reason = member._load_update(model, u4, "b")
    assert isinstance(reason, str) and "EnvelopeError" in reason


# --------------------------------------------------------------------------------- the auditor


def _sealed_history(recipients, exp, rounds=2):
    """A finished federated model whose updates are sealed to the recipients; aggregates honest."""
    mid = exp.model_id
    keys = [recipients.keys[u][1].certificate.public_key() for u in recipients.users]
    publisher = Reader(None, None, MODEL, private_key=recipients.keys[exp.publisher][0], model_id=mid)
    store, ledger, _ = federated_history(
        rounds, mid, seal=lambda b: envelope.seal(b, keys, update_context(mid)), reader=publisher
    )
    return store, ledger


def test_auditor_without_a_recipient_key_counts_what_it_could_not_open(exp, recipients):
    store, ledger = _sealed_history(recipients, exp)
    rep = audit_model(Reader(ledger, store, ""), exp.model_id)
    assert rep.ok, rep.findings  # not opened is no discrepancy
    assert (rep.sealed, rep.not_opened, rep.not_recomputed) == (6, 6, 2)
    assert (
        rep.sealed_note()
        == ", 6 sealed updates: 6 not opened, 2 aggregates not recomputed (no recipient key)"
    )
    # A provider's key is no recipient key either.
    rep = audit_model(
        Reader(ledger, store, "", private_key=recipients.keys[exp.providers[0].user][0]), exp.model_id
    )
    assert rep.ok and (rep.not_opened, rep.not_recomputed) == (6, 2)
    # As a member (or the publisher) everything is checked as for clear updates.
    for user in (exp.committee[1].user, exp.publisher):
        rep = audit_model(Reader(ledger, store, "", private_key=recipients.keys[user][0]), exp.model_id)
        assert rep.ok, rep.findings
        assert (rep.sealed, rep.not_opened, rep.not_recomputed) == (6, 0, 0)
        assert rep.sealed_note() == ", 6 sealed updates: 0 not opened, 0 aggregates not recomputed"
    # The hash of a sealed update is still checked without a key; a wrong aggregate is still found with one.
    u = ledger.updates["u21"]
    store.objects[u["cid"]] = store.objects[u["cid"]][:-1] + b"\x00"
    ledger.rounds[(exp.model_id, 1)]["aggregate"] = dict(ledger.rounds[(exp.model_id, 2)]["aggregate"])
    rep = audit_model(Reader(ledger, store, ""), exp.model_id)
    found = {f.where: f.problem for f in rep.findings}
    assert "IntegrityError" in found["round 2 update u21"] and "round 2.global" in found
    rep = audit_model(Reader(ledger, store, "", private_key=recipients.keys[exp.publisher][0]), exp.model_id)
    assert any(f.where == "round 1.aggregate" and "differs" in f.problem for f in rep.findings)


def test_clear_updates_are_audited_as_before():
    _, ledger, reader = federated_history()
    rep = audit_model(reader, "m")
    assert rep.ok and rep.sealed == 0 and rep.sealed_note() == ""
