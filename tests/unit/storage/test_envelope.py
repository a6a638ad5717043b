import base64
import datetime
import hashlib
import json
import os
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcommittee.storage import envelope as env
from fedcommittee.storage.errors import (
    DecryptionError,
    EnvelopeError,
    EnvelopeFormatError,
    KeyFormatError,
    NotARecipient,
)

CTX = "fedcommittee/shard/model-7"


def keypairs(n, kind="x25519"):
    return [env.generate_keypair(kind) for _ in range(n)]


# ------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("kind", ["x25519", "p256"])
def test_round_trip_every_recipient_opens(n, kind):
    pairs = keypairs(n, kind)
    plaintext = os.urandom(10_000)
    blob = env.seal(plaintext, [pub for _, pub in pairs], CTX)
    for priv, _ in pairs:
        assert env.open(blob, priv, CTX) == plaintext
    assert env.envelope_recipients(blob) == [env.key_id(pub) for _, pub in pairs]


def test_mixed_key_types():
    pairs = keypairs(2) + keypairs(2, "p256")
    blob = env.seal(b"shard", [pub for _, pub in pairs], CTX)
    for priv, _ in pairs:
        assert env.open(blob, priv, CTX) == b"shard"


def test_empty_plaintext():
    priv, pub = env.generate_keypair()
    assert env.open(env.seal(b"", [pub], CTX), priv, CTX) == b""


def test_sealing_is_randomised():
    _, pub = env.generate_keypair()
    assert env.seal(b"same", [pub], CTX) != env.seal(b"same", [pub], CTX)


def test_format_prefix_and_no_plaintext_leak():
    _, pub = env.generate_keypair()
    secret = b"SECRET-VALIDATION-SHARD" * 10
    blob = env.seal(secret, [pub], CTX)
    assert blob.startswith(env.MAGIC + bytes([env.VERSION]))
    assert b"SECRET" not in blob
    assert CTX.encode() not in blob  # only its hash is stored
    hlen = struct.unpack(">I", blob[6:10])[0]
    header = json.loads(blob[10 : 10 + hlen])
    assert header["r"][0]["kid"] == env.key_id(pub)
    assert len(header["r"][0]["kid"]) == 64


# ----------------------------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def sealed():
    pairs = keypairs(2) + keypairs(1, "p256")
    blob = env.seal(b"validation shard bytes" * 4, [pub for _, pub in pairs], CTX)
    return pairs, blob


def test_non_recipient_fails_loudly(sealed):
    pairs, blob = sealed
    for kind in ("x25519", "p256"):
        outsider, outsider_pub = env.generate_keypair(kind)
        with pytest.raises(NotARecipient) as info:
            env.open(blob, outsider, CTX)
        assert env.short_key_id(outsider_pub) in str(info.value)
        assert "not a recipient" in str(info.value)


def test_wrong_context_fails(sealed):
    pairs, blob = sealed
    with pytest.raises(DecryptionError, match="different context"):
        env.open(blob, pairs[0][0], "fedcommittee/shard/model-8")


def test_wrong_context_fails_even_with_forged_context_hash(sealed):
    # An attacker who rewrites the stored context hash still cannot make the blob open elsewhere.
    pairs, blob = sealed
    other = "fedcommittee/update/model-7"
    hlen = struct.unpack(">I", blob[6:10])[0]
    header = json.loads(blob[10 : 10 + hlen])
    header["ctx"] = hashlib.sha256(other.encode()).hexdigest()
    new_header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    forged = blob[:6] + struct.pack(">I", len(new_header)) + new_header + blob[10 + hlen :]
    with pytest.raises(DecryptionError):
        env.open(forged, pairs[0][0], other)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_fails(sealed, data):
    pairs, blob = sealed
    pos = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="position")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="xor mask")
    who = data.draw(st.integers(min_value=0, max_value=len(pairs) - 1), label="recipient")
    tampered = bytearray(blob)
    tampered[pos] ^= mask
    with pytest.raises(EnvelopeError):
        env.open(bytes(tampered), pairs[who][0], CTX)


def test_every_truncation_fails(sealed):
    pairs, blob = sealed
    for cut in range(len(blob)):
        with pytest.raises(EnvelopeError):
            env.open(blob[:cut], pairs[0][0], CTX)


def test_truncated_prefix_is_a_format_error(sealed):
    pairs, blob = sealed
    with pytest.raises(EnvelopeFormatError, match="truncated"):
        env.open(blob[:5], pairs[0][0], CTX)


def test_appended_bytes_fail(sealed):
    pairs, blob = sealed
    with pytest.raises(DecryptionError):
        env.open(blob + b"\x00", pairs[0][0], CTX)


def test_bad_magic_and_version(sealed):
    pairs, blob = sealed
    with pytest.raises(EnvelopeFormatError, match="not a fedcommittee envelope"):
        env.open(b"XXXXX" + blob[5:], pairs[0][0], CTX)
    with pytest.raises(EnvelopeFormatError, match="version"):
        env.open(blob[:5] + b"\x02" + blob[6:], pairs[0][0], CTX)


def test_huge_declared_header_is_refused(sealed):
    pairs, blob = sealed
    with pytest.raises(EnvelopeFormatError, match="header length"):
        env.open(blob[:6] + struct.pack(">I", 2**31) + blob[10:], pairs[0][0], CTX)


def test_key_commitment_detects_inconsistent_wrapping():
    """A sender who wraps a different content key for one recipient is caught by the commitment."""
    (a, a_pub), (b, b_pub) = keypairs(2)
    blob = env.seal(b"payload", [a_pub, b_pub], CTX)
    hlen = struct.unpack(">I", blob[6:10])[0]
    header = json.loads(blob[10 : 10 + hlen])
    entry = header["r"][1]
    # Re-wrap a different content key for B, with B's own key derivation, as a malicious sender could.
    eph = x25519.X25519PrivateKey.generate()
    epk_raw = env.public_key_to_raw(eph.public_key())
    kid = env.key_id(b_pub)
    wkey = env._wrap_key(
        eph.exchange(b_pub), env.KEM_X25519, kid, epk_raw, env.public_key_to_raw(b_pub), CTX.encode()
    )
    wn = os.urandom(12)
    wk = AESGCM(wkey).encrypt(wn, os.urandom(32), env._wrap_aad(env.KEM_X25519, kid, epk_raw))
    entry.update(
        epk=base64.b64encode(epk_raw).decode(),
        wn=base64.b64encode(wn).decode(),
        wk=base64.b64encode(wk).decode(),
    )
    new_header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    forged = blob[:6] + struct.pack(">I", len(new_header)) + new_header + blob[10 + hlen :]
    with pytest.raises(DecryptionError, match="key commitment"):
        env.open(forged, b, CTX)


# ------------------------------------------------------------------------------- argument checks


def test_seal_argument_checks():
    _, pub = env.generate_keypair()
    with pytest.raises(ValueError, match="at least one recipient"):
        env.seal(b"x", [], CTX)
    with pytest.raises(ValueError, match="listed twice"):
        env.seal(b"x", [pub, pub], CTX)
    with pytest.raises(ValueError, match="context"):
        env.seal(b"x", [pub], "")
    with pytest.raises(TypeError):
        env.seal("text", [pub], CTX)


def test_unsupported_key_types_are_refused():
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeyFormatError, match="P-256"):
        env.seal(b"x", [p384.public_key()], CTX)
    ed = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(KeyFormatError, match="unsupported public key type"):
        env.seal(b"x", [ed.public_key()], CTX)
    _, pub = env.generate_keypair()
    blob = env.seal(b"x", [pub], CTX)
    with pytest.raises(KeyFormatError):
        env.open(blob, p384, CTX)


# -------------------------------------------------------------------------------- keys & ledger


@pytest.mark.parametrize("kind", ["x25519", "p256"])
def test_key_serialization_round_trips(kind):
    priv, pub = env.generate_keypair(kind)
    raw_pub = env.public_key_to_raw(pub)
    assert len(raw_pub) == (32 if kind == "x25519" else 65)
    assert env.key_id(pub) == hashlib.sha256(raw_pub).hexdigest()
    assert env.short_key_id(pub) == env.key_id(pub)[:16]
    assert env.key_id(env.public_key_from_raw(raw_pub)) == env.key_id(pub)
    assert env.key_id(env.public_key_from_pem(env.public_key_to_pem(pub))) == env.key_id(pub)
    assert env.key_id(env.load_public_key(raw_pub.hex())) == env.key_id(pub)
    for password in (None, b"correct horse"):
        pem = env.private_key_to_pem(priv, password)
        again = env.private_key_from_pem(pem, password)
        assert env.key_id(again.public_key()) == env.key_id(pub)
    again = env.private_key_from_raw(env.private_key_to_raw(priv), kind)
    assert env.key_id(again.public_key()) == env.key_id(pub)
    blob = env.seal(b"k", [pub], CTX)
    assert env.open(blob, again, CTX) == b"k"


def test_bad_keys_are_refused():
    with pytest.raises(KeyFormatError):
        env.public_key_from_raw(b"\x04" + b"\x00" * 64)  # not a point on P-256
    with pytest.raises(KeyFormatError):
        env.public_key_from_raw(b"123")
    with pytest.raises(KeyFormatError):
        env.public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFormatError):
        env.load_public_key("not a key")
    with pytest.raises(KeyFormatError):
        env.private_key_from_pem(env.private_key_to_pem(env.generate_keypair()[0], b"pw"), b"wrong")


def _fabric_style_cert(priv):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer0.org1.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(priv, hashes.SHA256())
    )


def test_seal_for_registered_keys_from_the_ledger():
    # What the ledger might return: PEM public keys, a Fabric enrollment certificate, and hex raw keys.
    x_pairs = keypairs(2)
    fabric_priv = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _fabric_style_cert(fabric_priv).public_bytes(encoding=serialization.Encoding.PEM)
    registered = [
        env.public_key_to_pem(x_pairs[0][1]).decode(),
        env.public_key_to_raw(x_pairs[1][1]).hex(),
        cert_pem,
    ]
    blob = env.seal_for_registered(b"committee only", registered, CTX)
    for priv in (x_pairs[0][0], x_pairs[1][0], fabric_priv):
        assert env.open(blob, priv, CTX) == b"committee only"
    env.check_recipients(blob, registered)
    with pytest.raises(EnvelopeError, match="differ"):
        env.check_recipients(blob, registered[:2])
    with pytest.raises(ValueError, match="listed twice"):
        env.load_public_keys([registered[0], registered[0]])


def test_no_pickle_in_format():
    import inspect

    assert "pickle" not in inspect.getsource(env).replace("Nothing is ever pickled", "")


# ------------------------------------------------------------------------- sealed objects in storage


def test_is_envelope_tells_sealed_blobs_from_weights_files():
    from fedcommittee import ml
    from fedcommittee.ml.compress import compress

    (_, pub) = env.generate_keypair("p256")
    state = ml.initial_state("mlp", 0)
    for plain in (ml.dumps(state), compress(state, "int8+topk:0.1"), b"", b"FCENV"):
        assert not env.is_envelope(plain)
        sealed = env.seal(plain, [pub], CTX)
        assert env.is_envelope(sealed) and env.is_envelope(memoryview(sealed))
    assert not env.is_envelope(b"FCENV\x02" + bytes(20))  # another version is not this format
    assert not env.is_envelope("FCENV\x01")  # not bytes


def test_encrypted_object_says_what_is_sealed_and_who_can_open_it():
    from fedcommittee.storage import EncryptedObject, StorageError

    kids = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]
    err = EncryptedObject("update object bafkx", kids, "fedcommittee/update/m", holders="the committee")
    assert isinstance(err, StorageError) and isinstance(err, EnvelopeError)
    assert str(err) == (
        f"update object bafkx is sealed ('fedcommittee/update/m') to 3 recipient key(s) "
        f"[{kids[0][:16]}, {kids[1][:16]}, {kids[2][:16]}] (the committee); this reader has no private key: "
        "only the private key of one of those identities opens it"
    )
    mine = "ab" * 32
    err = EncryptedObject("x", kids, "c", key_id=mine)
    assert err.key_id == mine and f"this reader's key {mine[:16]} is not one of them" in str(err)
