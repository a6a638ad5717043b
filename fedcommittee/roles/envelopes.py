"""Identities and sealing: the chaincode's identity key of a certificate, an identity's private key,
the envelope contexts of shards and updates, and who an update is sealed to (checked against the
ledger: a recipient key never comes from anybody's say-so).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from fedcommittee.ledger import Mode
from fedcommittee.ledger.records import Model
from fedcommittee.storage import envelope

if TYPE_CHECKING:
    from fedcommittee.roles.runtime import Agent

__all__ = [
    "UPDATE_HOLDERS",
    "identity_key",
    "load_private_key",
    "profile_certificate",
    "recipient_key_ids",
    "shard_context",
    "update_context",
    "update_recipients",
]

UPDATE_HOLDERS = "the model's committee members and its publisher; in gossip mode its providers too"


def identity_key(msp_id: str, cert) -> str:
    """The chaincode's identity key for a certificate: ``<MSP>/base64("x509::<subject>::<issuer>")``.

    Same as fabric-chaincode-go's ``cid.GetID`` (Go's pkix.Name.String() is RFC 4514 order)."""
    raw = f"x509::{cert.subject.rfc4514_string()}::{cert.issuer.rfc4514_string()}"
    return f"{msp_id}/{base64.b64encode(raw.encode()).decode()}"


def profile_certificate(profile, user: str) -> tuple[str, Any]:
    """(identity key, certificate) of a connection-profile user: to be checked against the ledger."""
    ident, _ = profile.identity(user).load()
    return identity_key(ident.msp_id, ident.certificate), ident.certificate


def load_private_key(id_cfg):
    """The private key of a profile identity: the key in its MSP keystore that matches its certificate.
    Members open their shards with it, and every update recipient its sealed updates."""
    from cryptography.hazmat.primitives import serialization

    ident, _ = id_cfg.load()
    for path in sorted((id_cfg.msp_dir / "keystore").glob("*")):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if key.public_key() == ident.certificate.public_key():
            return key
    raise RuntimeError(f"no private key for {id_cfg.name} in {id_cfg.msp_dir}/keystore")


def shard_context(model_id: str) -> str:
    return f"fedcommittee/shard/{model_id}"


def update_context(model_id: str) -> str:
    """The envelope context of a sealed update: binds it to its model (another model's context fails)."""
    return f"fedcommittee/update/{model_id}"


def update_recipients(agent: Agent, model: Model) -> list[tuple[str, Any]]:
    """Who an update of ``model`` is sealed to, as (identity key, certificate) sorted by identity key:
    every committee seat on the ledger and the model's publisher (it aggregates); in gossip mode also
    the providers registered for the model (each builds on the others' accepted updates).

    The certificates come from the connection profile (the config's publisher, committee and, in
    gossip mode, provider users) and each is accepted only if its identity key is one the ledger
    record names, as ``publisher.member_certificate`` does for shards: a recipient key never comes
    from anybody's say-so. A ledger recipient without a certificate there is an error (an update is
    never sealed to fewer than all of them)."""
    exp = agent.exp
    wanted = {s["member"] for s in model.get("committee") or []} | {model["publisher"]}
    users = [exp.publisher, *(m.user for m in exp.committee)]
    if model.get("mode") == Mode.GOSSIP:
        wanted |= {g["provider"] for g in agent.client.iter_data_registrations(model["id"])}
        users += [p.user for p in exp.providers]
    found: dict[str, Any] = {}
    for user in dict.fromkeys(users):
        key, cert = profile_certificate(agent.profile, user)
        if key in wanted:
            found[key] = cert
    missing = sorted(wanted - set(found))
    if missing:
        raise RuntimeError(
            f"no certificate in the connection profile for {len(missing)} update recipient(s) the ledger "
            f"names ({', '.join(k[:24] + '...' for k in missing)}); tried the config's users {users}"
        )
    return sorted(found.items())


def recipient_key_ids(agent: Agent, model: Model) -> set[str]:
    """Envelope key ids (sha256 of the raw public key) of :func:`update_recipients`."""
    return {envelope.key_id(cert.public_key()) for _, cert in update_recipients(agent, model)}
