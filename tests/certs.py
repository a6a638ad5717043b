"""X.509 certificates for tests: throwaway CAs, users and TLS servers (the ledger unit tests' fake
MSP, the integration drills' identity from a CA the channel does not know)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes


def certificate(subject, issuer, pub, signing_key, *, ca: bool, sans: list[x509.GeneralName] | None = None):
    """A certificate valid from five minutes ago for a day (clock skew), signed by ``signing_key``."""
    now = dt.datetime.now(dt.timezone.utc)  # noqa: UP017 (3.10-compatible)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(signing_key, hashes.SHA256())
