"""Client identity and signing for Fabric.

* :class:`Identity` is the MSP id plus the X.509 certificate (PEM). Its :meth:`Identity.creator_bytes` is the
  serialized ``msp.SerializedIdentity`` that Fabric calls the *creator*; ``id_bytes`` holds the PEM (not DER),
  because the chaincode ``cid`` library PEM-decodes it.
* :class:`Signer` signs a message the way Fabric verifies it: ECDSA over SHA-256 of the message, DER-encoded,
  with a canonical low-S value (the peer rejects s > n/2), or Ed25519 over the raw message.
* :func:`load_msp` reads a cryptogen/fabric-ca MSP folder (``signcerts/*.pem``, ``keystore/*``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2

__all__ = ["Identity", "Signer", "load_msp", "sha256", "CURVE_ORDERS"]

# Group orders of the curves Fabric accepts for ECDSA identities.
CURVE_ORDERS: dict[str, int] = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Identity:
    """An MSP identity: ``msp_id`` and the PEM-encoded X.509 certificate."""

    msp_id: str
    cert_pem: bytes

    def __post_init__(self) -> None:
        if not self.msp_id:
            raise ValueError("msp_id must not be empty")
        if isinstance(self.cert_pem, str):
            object.__setattr__(self, "cert_pem", self.cert_pem.encode())
        try:
            x509.load_pem_x509_certificate(self.cert_pem)
        except ValueError as exc:
            raise ValueError(
                f"identity for {self.msp_id}: certificate is not a valid PEM X.509: {exc}"
            ) from exc

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def creator_bytes(self) -> bytes:
        """Serialized ``msp.SerializedIdentity{mspid, id_bytes=PEM}``: the creator in every Fabric header."""
        return identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.cert_pem
        ).SerializeToString()


class Signer:
    """Signs messages with an ECDSA (P-256/P-384) or Ed25519 private key, as Fabric expects.

    ``sign(message)`` hashes the message with SHA-256 and signs the digest (ECDSA), or signs the message
    itself (Ed25519). ``sign_digest(digest)`` signs an already computed SHA-256 digest (ECDSA only).
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            name = private_key.curve.name
            if name not in CURVE_ORDERS:
                raise ValueError(f"unsupported ECDSA curve {name}; Fabric accepts P-256 and P-384")
            self._order = CURVE_ORDERS[name]
        elif not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise TypeError(f"unsupported private key type {type(private_key).__name__}")
        self._key = private_key

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> Signer:
        return cls(serialization.load_pem_private_key(pem, password=password))

    @property
    def algorithm(self) -> str:
        return "ed25519" if isinstance(self._key, ed25519.Ed25519PrivateKey) else "ecdsa"

    def public_key(self):
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        return self.sign_digest(sha256(message))

    def sign_digest(self, digest: bytes) -> bytes:
        if not isinstance(self._key, ec.EllipticCurvePrivateKey):
            raise TypeError("Ed25519 signs the message, not a digest; use sign()")
        if len(digest) != 32:
            raise ValueError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")
        der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        if s > self._order // 2:
            s = self._order - s
        return encode_dss_signature(r, s)

    def matches(self, identity: Identity) -> bool:
        """True when this key is the private half of the identity's certificate."""
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        return self._key.public_key().public_bytes(
            enc, fmt
        ) == identity.certificate.public_key().public_bytes(enc, fmt)


def load_msp(msp_dir: str | Path, msp_id: str) -> tuple[Identity, Signer]:
    """Load the identity and signer of an MSP folder as written by cryptogen or fabric-ca-client.

    Takes the single certificate in ``signcerts/`` and the private key in ``keystore/`` that matches it.
    """
    msp = Path(msp_dir)
    signcerts = sorted(p for p in (msp / "signcerts").glob("*") if p.is_file()) if msp.is_dir() else []
    if not signcerts:
        raise FileNotFoundError(f"no certificate in {msp / 'signcerts'} (is {msp} an MSP folder?)")
    if len(signcerts) > 1:
        raise ValueError(f"more than one certificate in {msp / 'signcerts'}: {[p.name for p in signcerts]}")
    identity = Identity(msp_id, signcerts[0].read_bytes())
    keys = (
        sorted(p for p in (msp / "keystore").glob("*") if p.is_file()) if (msp / "keystore").is_dir() else []
    )
    if not keys:
        raise FileNotFoundError(f"no private key in {msp / 'keystore'}")
    for path in keys:
        try:
            signer = Signer.from_pem(path.read_bytes())
        except (ValueError, TypeError):
            continue
        if signer.matches(identity):
            return identity, signer
    raise ValueError(f"no private key in {msp / 'keystore'} matches the certificate {signcerts[0]}")
