"""Privacy drills against the real local Kubo node (needs IPFS only; no Fabric).

1. What providers upload carries no raw sample: the real ``Provider`` (honest, poisoning, DP and,
   where the config has ``compression``, compressing providers) trains on its partition and uploads
   through the real ``ContentStore``; every object is fetched back *raw* by CID (``IpfsClient.cat``:
   what anybody who can read the node gets) and searched for every training sample in every form the
   pipeline holds it (float32, float64, the source's grey levels as float64 and uint8), whole and by
   every informative 32-byte window. The update record each provider submits holds only ids, hashes,
   counts and scalar metrics. A planted sample, stored and fetched the same way, is found (the
   negative control).
2. Validation shards on IPFS are unreadable without a member's key: the real ``publisher.build_spec``
   seals one shard per member to the member's (Fabric-like, P-256) certificate key and stores it; the
   raw bytes hold no validation sample and share no window with the plaintext; other members', the
   publisher's, a provider's and an outsider's keys are refused with ``NotARecipient``, a wrong context
   and a forged recipient entry with ``DecryptionError``; the member's own key opens it to exactly
   the shard.
3. Encrypted updates (``encrypt_updates: true``): the real ``Provider`` seals each update to the
   committee and the publisher named on the ledger; fetched raw from the node it is an envelope with
   exactly those recipients, holding no training sample and no 32-byte window of the plaintext delta;
   providers' and outsiders' keys, a reader without a key and another model's context are refused;
   each member and the publisher opens it to exactly the delta the provider encoded.

The module prints a summary at the end and writes it to reports/privacy-summary.txt.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fedcommittee import ml
from fedcommittee.experiment import data_split
from fedcommittee.ml import compress
from fedcommittee.roles.data import decode_dataset, encode_dataset
from fedcommittee.roles.envelopes import identity_key, shard_context
from fedcommittee.storage import envelope
from fedcommittee.storage.errors import DecryptionError, IntegrityError, NotARecipient
from tests.integration.network import ROOT
from tests.privacy import (
    PROVIDERS,
    LeakChecker,
    PrivacyTally,
    privacy_experiment,
    record_problems,
    run_federated,
    sample_forms,
    upload_scheme,
    upload_size,
)

pytestmark = pytest.mark.integration

DRILL_PROVIDERS = ["honest1", "flipper", "signflip", "freerider", "dp-low", "dp-high"]
DRILL_PROVIDERS += [p["name"] for p in PROVIDERS if "compression" in p]  # where providers may compress
ROUNDS = 2


@pytest.fixture(scope="module")
def tally(request):
    t = PrivacyTally()
    yield t
    path = t.write(ROOT)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n\n{t.summary()}\n(details in {path.relative_to(ROOT)})\n")


@pytest.fixture(scope="module")
def exp():
    return privacy_experiment()


@pytest.fixture(scope="module")
def split(exp):
    return data_split(exp)


def test_provider_uploads_on_ipfs_carry_no_sample(exp, split, store, tally):
    checker = LeakChecker(sample_forms(split.train.x))
    assert checker.uncovered == []
    tally.add_samples("train", checker.n_samples)
    for name in DRILL_PROVIDERS:
        agent, provider, records = run_federated(exp, name, store, rounds=ROUNDS)
        size = upload_size(exp, provider)
        assert len(agent.uploads) == ROUNDS  # one object per round, nothing else
        for r, ((obj, sent), text) in enumerate(zip(agent.uploads, records, strict=True), start=1):
            doc = json.loads(text)
            assert doc["cid"] == obj.cid and doc["sha256"] == obj.sha256_hex
            raw = store.ipfs.cat(doc["cid"], obj.size + 1)  # unverified: what the node serves anyone
            assert raw == sent and ml.sha256_hex(raw) == doc["sha256"]
            assert len(raw) == size  # a model-shaped tensor file, no room for anything else
            findings = checker.scan(raw, f"{name} round {r} upload")
            tally.scanned(f"{name} round {r} upload ({upload_scheme(provider)}) {doc['cid']}", raw, findings)
            assert findings == [], findings[:3]
            problems = record_problems(text)
            tally.records += 1
            tally.lines.append(f"  {name} round {r} record: {len(text)} bytes, fields {sorted(doc)}")
            assert problems == [], (problems, text)
            assert checker.scan(text.encode(), f"{name} record") == []
            if "epsilon" in doc["metrics"]:
                tally.epsilons.append(f"{name} r{r} {doc['metrics']['epsilon']:.1f}")

    # Negative control: the same path with a sample planted in the upload is caught.
    obj, sent = agent.uploads[-1]
    for i in (0, checker.n_samples // 2, checker.n_samples - 1):
        leaky = sent + checker.forms["float32"][i].tobytes()
        planted = store.put(leaky)
        findings = checker.scan(store.ipfs.cat(planted.cid, planted.size), "planted")
        tally.planted += 1
        tally.planted_caught += int(("float32", i) in LeakChecker.leaked_samples(findings))
    assert tally.planted_caught == tally.planted


def _forge_recipient(blob: bytes, kid: str) -> bytes:
    """The blob with its (only) recipient entry relabelled to ``kid``: header bytes edited in place."""
    header_len = int.from_bytes(blob[6:10], "big")
    header = json.loads(blob[10 : 10 + header_len])
    header["r"][0]["kid"] = kid
    new = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert len(new) == header_len
    return blob[:10] + new + blob[10 + header_len :]


def test_validation_shards_on_ipfs_are_unreadable_without_the_members_key(exp, split, store, tally):
    from tests.privacy import publish_spec

    spec, agent, keys = publish_spec(exp, store)
    shards = ml.split_shards(split.val, len(exp.committee), exp.seed + 3)  # what build_spec seals
    val_checker = LeakChecker(sample_forms(split.val.x))
    assert val_checker.uncovered == []
    tally.add_samples("validation", val_checker.n_samples)

    # The spec (the PublishModel argument) names each shard by CID and hash only, and nothing else the
    # publisher uploads (the initial weights) holds a validation sample either.
    spec_text = json.dumps(spec).encode()
    assert val_checker.scan(spec_text, "spec") == []
    shard_cids = {s["shardCid"] for s in spec["committee"]}
    for obj, data in agent.uploads:
        if obj.cid not in shard_cids:
            raw = store.ipfs.cat(obj.cid, obj.size)
            findings = val_checker.scan(raw, "publisher upload")
            tally.scanned(f"publisher upload (not a shard) {obj.cid}", raw, findings)
            assert raw == data and findings == [], findings[:3]
    assert [sorted(s) for s in spec["committee"]] == [["member", "shardCid", "shardSha256"]] * 3

    outsider_x25519, _ = envelope.generate_keypair("x25519")
    outsider_p256, _ = envelope.generate_keypair("p256")
    ctx = shard_context(exp.model_id)
    for member, shard, seat in zip(exp.committee, shards, spec["committee"], strict=True):
        my_key, my_ident = keys[member.user]
        assert seat["member"] == identity_key(my_ident.msp_id, my_ident.certificate)
        raw = store.ipfs.cat(seat["shardCid"], 1 << 22)  # unverified: what the node serves anyone
        assert ml.sha256_hex(raw) == seat["shardSha256"]

        # 1. No validation sample, and no window of the plaintext file, in the stored bytes.
        findings = val_checker.scan(raw, f"{member.name} shard")
        tally.scanned(f"{member.name} sealed shard {seat['shardCid']}", raw, findings)
        assert findings == [], findings[:3]
        plain = encode_dataset(shard)
        plain_checker = LeakChecker({"npz plaintext": np.frombuffer(plain, np.uint8)[None, :]})
        assert plain_checker.scan(raw, "sealed shard vs its plaintext") == []
        # ...while the plaintext itself holds every sample of the shard whole (the checker's control).
        shard_checker = LeakChecker(sample_forms(shard.x))
        whole = {f.sample for f in shard_checker.scan(plain, "plaintext") if f.how == "whole sample"}
        tally.planted += 1
        tally.planted_caught += int(whole == set(range(len(shard))))
        assert whole == set(range(len(shard)))

        # 2. Every key but the member's is refused, with the envelope module's own error.
        member_kid = envelope.key_id(my_ident.certificate.public_key())
        assert envelope.envelope_recipients(raw) == [member_kid]
        others = {f"{m.name}'s key": keys[m.user][0] for m in exp.committee if m.user != member.user}
        others["the publisher's key"] = keys[exp.publisher][0]
        others["a provider's key"] = keys[exp.providers[0].user][0]
        others["an outsider's P-256 key"] = outsider_p256
        others["an outsider's X25519 key"] = outsider_x25519
        for who, key in others.items():
            kid = envelope.key_id(key.public_key())
            tally.keys_tried += 1
            with pytest.raises(NotARecipient) as info:
                envelope.open_envelope(raw, key, ctx)
            assert str(info.value) == (
                f"key {kid[:16]} is not a recipient of this envelope (recipients: {member_kid[:16]})"
            ), who
            assert info.value.key_id == kid and info.value.recipients == [member_kid]
            tally.opens_refused += 1
            tally.lines.append(f"  {member.name} shard, {who}: refused ({type(info.value).__name__})")

        # A non-member relabelling the recipient entry as its own still cannot unwrap the key (and
        # the forged blob no longer matches the recorded sha256).
        forged = _forge_recipient(raw, envelope.key_id(outsider_p256.public_key()))
        tally.keys_tried += 1
        with pytest.raises(DecryptionError, match=r"^cannot unwrap the content key: envelope modified"):
            envelope.open_envelope(forged, outsider_p256, ctx)
        tally.opens_refused += 1
        forged_obj = store.put(forged)
        with pytest.raises(IntegrityError):
            store.get(forged_obj.cid, seat["shardSha256"], len(forged))
        # The member's key under another model's context is refused too.
        tally.keys_tried += 1
        with pytest.raises(DecryptionError) as info:
            envelope.open_envelope(raw, my_key, shard_context("another-model"))
        assert str(info.value) == (
            "envelope was sealed for a different context than 'fedcommittee/shard/another-model'"
        )
        tally.opens_refused += 1

        # 3. The member's own key opens the verified object to exactly its shard.
        verified = store.get(seat["shardCid"], seat["shardSha256"], exp.max_update_bytes)
        tally.keys_tried += 1
        opened = envelope.open_envelope(verified, my_key, ctx)
        tally.opens_ok += 1
        assert opened == plain
        got = decode_dataset(opened, ml.get_spec(exp.model).n_classes)
        assert torch.equal(got.x, shard.x) and torch.equal(got.y, shard.y)
        tally.lines.append(f"  {member.name} shard: opened by its member, {len(got)} samples, equal")
    assert tally.planted_caught == tally.planted


def test_encrypted_updates_to_the_committee(split, store, tally):
    """``encrypt_updates``: what the node serves is an envelope sealed to the committee and the
    publisher on the ledger; it holds no training sample and no window of the plaintext delta; every
    other key is refused; each member and the publisher opens it to the delta the provider encoded."""
    import time

    from fedcommittee.roles.envelopes import update_context
    from fedcommittee.roles.reader import Reader
    from fedcommittee.storage.errors import EncryptedObject
    from tests.privacy import model_recipients

    sealed_exp = privacy_experiment(encrypt_updates=True)
    assert sealed_exp.encrypt_updates
    names = ["honest1", "flipper", "dp-low"] + [p["name"] for p in PROVIDERS if "compression" in p]
    recipients = model_recipients(sealed_exp, extra_users=tuple(sealed_exp.provider(n).user for n in names))
    checker = LeakChecker(sample_forms(split.train.x))
    ctx = update_context(sealed_exp.model_id)
    outsider_x25519, _ = envelope.generate_keypair("x25519")
    outsider_p256, _ = envelope.generate_keypair("p256")
    seal_s, open_s = [], []

    def fetch_delta(doc: dict, key=None):
        reader = Reader(None, store, sealed_exp.model, private_key=key, model_id=sealed_exp.model_id)
        return reader.fetch_delta(doc["cid"], doc["sha256"])

    for name in names:
        agent, provider, records = run_federated(
            sealed_exp, name, store, rounds=ROUNDS, recipients=recipients
        )
        assert len(agent.uploads) == ROUNDS
        for r, ((obj, sent), text) in enumerate(zip(agent.uploads, records, strict=True), start=1):
            doc = json.loads(text)
            assert (doc["cid"], doc["sha256"]) == (obj.cid, obj.sha256_hex)
            raw = store.ipfs.cat(doc["cid"], obj.size + 1)  # unverified: what the node serves anyone
            assert raw == sent and ml.sha256_hex(raw) == doc["sha256"] and envelope.is_envelope(raw)
            assert sorted(envelope.envelope_recipients(raw)) == recipients.key_ids()
            tally.sealed_updates += 1

            # Each recipient opens it, to the same bytes: the provider's encoded delta.
            opened = {}
            for user in recipients.users:
                started = time.perf_counter()
                opened[user] = envelope.open_envelope(raw, recipients.keys[user][0], ctx)
                open_s.append(time.perf_counter() - started)
                tally.update_keys_tried += 1
                tally.update_opens_ok += 1
            plain = opened[sealed_exp.publisher]
            assert all(p == plain for p in opened.values())
            assert len(plain) == upload_size(sealed_exp, provider)
            delta = compress.decompress(plain, sealed_exp.model, scheme=upload_scheme(provider))
            verified = fetch_delta(doc, recipients.keys[sealed_exp.committee[0].user][0])
            assert all(torch.equal(verified[k], delta[k]) for k in delta)
            tally.sealed_sizes.append((len(plain), len(raw)))

            # No training sample, and no 32-byte window of the plaintext delta, in the stored bytes.
            findings = checker.scan(raw, f"{name} round {r} sealed upload")
            tally.scanned(f"{name} round {r} sealed upload ({len(plain)} -> {len(raw)} bytes) {doc['cid']}",
                          raw, findings)  # fmt: skip
            assert findings == [], findings[:3]
            plain_checker = LeakChecker({"plaintext delta": np.frombuffer(plain, np.uint8)[None, :]})
            assert plain_checker.windows_indexed > 0
            assert plain_checker.scan(raw, "sealed update vs its plaintext") == []
            assert record_problems(text) == [], text
            tally.records += 1

            # Every other key is refused: the providers' (this one's included), outsiders'.
            others = {f"provider {n}": recipients.keys[sealed_exp.provider(n).user][0] for n in names}
            others.update(
                {"an outsider's P-256 key": outsider_p256, "an outsider's X25519 key": outsider_x25519}
            )
            tally.lines.append(f"  {name} round {r} sealed update: refused to {', '.join(others)}")
            for key in others.values():
                tally.update_keys_tried += 1
                with pytest.raises(NotARecipient):
                    envelope.open_envelope(raw, key, ctx)
                with pytest.raises(EncryptedObject, match="is not one of them"):
                    fetch_delta(doc, key)
                tally.update_opens_refused += 1
            with pytest.raises(EncryptedObject, match="has no private key"):
                fetch_delta(doc)
            tally.update_keys_tried += 2  # no key at all, then a recipient's key under another context
            tally.update_opens_refused += 1
            with pytest.raises(DecryptionError, match="different context"):
                envelope.open_envelope(
                    raw, recipients.keys[sealed_exp.publisher][0], update_context("another-model")
                )
            tally.update_opens_refused += 1
        started = time.perf_counter()
        envelope.seal(plain, [recipients.keys[u][1].certificate.public_key() for u in recipients.users], ctx)
        seal_s.append(time.perf_counter() - started)
    tally.lines.append(
        f"  sealed updates: seal {1000 * sum(seal_s) / len(seal_s):.2f} ms (4 P-256 recipients), open "
        f"{1000 * sum(open_s) / len(open_s):.2f} ms per recipient (mean)"
    )
