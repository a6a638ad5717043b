"""Fixtures: a throwaway org CA with a client user (as cryptogen writes it), a TLS CA, and a fake gateway."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedcommittee.ledger import Identity, RetryPolicy, Signer, Timeouts
from tests.certs import certificate as _cert

from .fake_gateway import FakeGateway, FakeServer


def _name(cn: str, ou: str | None = None, org: str = "org1.example.com") -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Org:
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    user_cert_pem: bytes
    user_key: ec.EllipticCurvePrivateKey
    msp_dir: Path
    tls_ca_pem: bytes
    tls_server: tuple[bytes, bytes]  # (key PEM, cert PEM) for peer0.org1.example.com / 127.0.0.1

    @property
    def identity(self) -> Identity:
        return Identity("Org1MSP", self.user_cert_pem)

    @property
    def signer(self) -> Signer:
        return Signer(self.user_key)

    def issue_user(self, ou: str = "client") -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(
            _name("User2@org1.example.com", ou), self.ca_cert.subject, key.public_key(), self.ca_key, ca=False
        )
        return _pem(cert), key


@pytest.fixture(scope="session")
def org(tmp_path_factory) -> Org:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ca.org1.example.com")
    ca_cert = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    user_key = ec.generate_private_key(ec.SECP256R1())
    user_cert = _cert(
        _name("User1@org1.example.com", "client"), ca_name, user_key.public_key(), ca_key, ca=False
    )

    # MSP folder laid out as cryptogen writes it
    msp = tmp_path_factory.mktemp("crypto") / "users" / "User1@org1.example.com" / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "cacerts").mkdir()
    (msp / "signcerts" / "User1@org1.example.com-cert.pem").write_bytes(_pem(user_cert))
    (msp / "keystore" / "priv_sk").write_bytes(_key_pem(user_key))
    (msp / "cacerts" / "ca.org1.example.com-cert.pem").write_bytes(_pem(ca_cert))

    tls_ca_key = ec.generate_private_key(ec.SECP256R1())
    tls_ca_name = _name("tlsca.org1.example.com")
    tls_ca = _cert(tls_ca_name, tls_ca_name, tls_ca_key.public_key(), tls_ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = _cert(
        _name("peer0.org1.example.com", "peer"),
        tls_ca_name,
        srv_key.public_key(),
        tls_ca_key,
        ca=False,
        sans=[x509.DNSName("peer0.org1.example.com")],  # no IP SAN: dialing 127.0.0.1 needs the override
    )
    return Org(
        ca_cert, ca_key, _pem(user_cert), user_key, msp, _pem(tls_ca), (_key_pem(srv_key), _pem(srv_cert))
    )


FAST_RETRY = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05)
FAST_TIMEOUTS = Timeouts(evaluate=5, endorse=5, submit=5, commit_status=5, connect=5)


@pytest.fixture
def fake(org) -> FakeGateway:
    return FakeGateway(org.ca_cert)


@pytest.fixture
def server(fake):
    srv = FakeServer(fake)
    yield srv
    srv.stop()


@pytest.fixture
def gateway(server, org):
    from fedcommittee.ledger import Gateway

    gw = Gateway.connect(
        server.endpoint, org.identity, org.signer, insecure=True, timeouts=FAST_TIMEOUTS, retry=FAST_RETRY
    )
    yield gw
    gw.close()
