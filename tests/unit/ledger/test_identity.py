from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from fabric_protos.msp import identities_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcommittee.ledger import Identity, Signer, load_msp
from fedcommittee.ledger.identity import CURVE_ORDERS

N = CURVE_ORDERS["secp256r1"]


@settings(max_examples=300, deadline=None)
@given(message=st.binary(max_size=512))
def test_ecdsa_signature_verifies_against_cert_and_is_low_s(org, message):
    sig = org.signer.sign(message)
    pub = org.identity.certificate.public_key()
    pub.verify(sig, message, ec.ECDSA(hashes.SHA256()))  # raises if invalid
    # the same signature is a signature over the SHA-256 digest, which is what Fabric verifies
    pub.verify(sig, hashlib.sha256(message).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    _, s = decode_dss_signature(sig)
    assert 0 < s <= N // 2


def test_low_s_normalisation_actually_happens(org):
    # Raw ECDSA gives s > n/2 about half the time; count how often the library would have, to prove that the
    # signer rewrote those cases rather than getting lucky.
    key = org.user_key
    digest = hashlib.sha256(b"x").digest()
    raw_high = sum(
        decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))[1] > N // 2
        for _ in range(64)
    )
    assert raw_high > 0
    assert all(decode_dss_signature(org.signer.sign_digest(digest))[1] <= N // 2 for _ in range(64))


def test_signature_fails_for_other_message(org):
    sig = org.signer.sign(b"proposal")
    with pytest.raises(InvalidSignature):
        org.identity.certificate.public_key().verify(sig, b"proposal!", ec.ECDSA(hashes.SHA256()))


def test_p384_low_s():
    key = ec.generate_private_key(ec.SECP384R1())
    signer = Signer(key)
    for i in range(20):
        sig = signer.sign(b"m%d" % i)
        key.public_key().verify(sig, b"m%d" % i, ec.ECDSA(hashes.SHA256()))
        assert decode_dss_signature(sig)[1] <= CURVE_ORDERS["secp384r1"] // 2


def test_ed25519_signs_raw_message():
    key = ed25519.Ed25519PrivateKey.generate()
    signer = Signer(key)
    assert signer.algorithm == "ed25519"
    sig = signer.sign(b"payload")
    key.public_key().verify(sig, b"payload")
    with pytest.raises(TypeError):
        signer.sign_digest(b"\0" * 32)


def test_unsupported_curve_rejected():
    with pytest.raises(ValueError, match="unsupported ECDSA curve"):
        Signer(ec.generate_private_key(ec.SECP256K1()))


def test_creator_bytes_is_serialized_identity_with_pem(org):
    sid = identities_pb2.SerializedIdentity.FromString(org.identity.creator_bytes())
    assert sid.mspid == "Org1MSP"
    assert sid.id_bytes == org.user_cert_pem
    assert sid.id_bytes.startswith(b"-----BEGIN CERTIFICATE-----")


def test_identity_rejects_bad_pem():
    with pytest.raises(ValueError, match="Org1MSP"):
        Identity("Org1MSP", b"not a cert")
    with pytest.raises(ValueError):
        Identity("", b"x")


def test_load_msp_reads_cryptogen_layout(org):
    identity, signer = load_msp(org.msp_dir, "Org1MSP")
    assert identity == org.identity
    assert signer.matches(identity)
    sig = signer.sign(b"hello")
    org.identity.certificate.public_key().verify(sig, b"hello", ec.ECDSA(hashes.SHA256()))


def test_load_msp_picks_matching_key_among_several(org, tmp_path):
    msp = tmp_path / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "signcerts" / "cert.pem").write_bytes(org.user_cert_pem)
    other = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = serialization.PrivateFormat.PKCS8
    for name, key in (("a_sk", other), ("b_sk", org.user_key)):
        (msp / "keystore" / name).write_bytes(
            key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
        )
    (msp / "keystore" / "junk").write_bytes(b"garbage")
    _, signer = load_msp(msp, "Org1MSP")
    assert signer.matches(org.identity)

    (msp / "keystore" / "b_sk").unlink()
    with pytest.raises(ValueError, match="matches the certificate"):
        load_msp(msp, "Org1MSP")


def test_load_msp_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="signcerts"):
        load_msp(tmp_path / "nope", "Org1MSP")
