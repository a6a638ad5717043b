"""Shared helpers for the security drills (test_access_control.py, test_bad_input.py).

The drills run against the session's real network. Their cast uses profile identities that the
other integration modules leave alone (or, for NO_ROLE, also keep role-less), so the expected
outcomes do not depend on which modules ran first:

    publisher       org1-user5   publishes every drill model
    committee       org2-user6, org3-user1   seated on every drill model (two orgs)
    provider        org2-user5   the provider whose calls the matrix observes
    provider2       org1-user6   submits the updates that serve as targets
    other committee org2-user1   holds the committee role, seated on no drill model
    no role         org2-user4   never granted anything (test_chaincode_flow's outsider too)

plus the org admins and an identity issued by a CA that the channel does not know (``forged``).

Every state-changing helper waits until all three peers have the block, so the next caller,
whatever org's gateway it uses, never endorses against a state one block behind.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from fedcommittee.ledger import ContractError, FedcommitteeClient, Gateway, GatewayError, load_profile
from fedcommittee.ledger.identity import Identity, Signer
from fedcommittee.ledger.proposal import sign_envelope
from tests.certs import certificate

PUBLISHER = "org1-user5"
COMMITTEE = ["org2-user6", "org3-user1"]
PROVIDER = "org2-user5"
PROVIDER2 = "org1-user6"
OTHER_COMMITTEE = "org2-user1"
NO_ROLE = "org2-user4"
FORGED = "forged"  # pseudo user name: the identity from the unknown CA

ROLES = {
    PUBLISHER: "publisher",
    COMMITTEE[0]: "committee",
    COMMITTEE[1]: "committee",
    PROVIDER: "provider",
    PROVIDER2: "provider",
    OTHER_COMMITTEE: "committee",
}


def admin_of(user: str) -> str:
    return user.split("-")[0] + "-admin"


def msp_of(user: str) -> str:
    return "Org" + user.split("-")[0].removeprefix("org") + "MSP"


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wire(args) -> list:
    """Transaction arguments as sent: dicts and lists become compact JSON, str/bytes go as they are."""
    return [a if isinstance(a, str | bytes) else json.dumps(a, separators=(",", ":")) for a in args]


# ----------------------------------------------------------------------------- forged identity


def forged_identity(msp_id: str = "Org1MSP", ou: str = "client") -> tuple[Identity, Signer]:
    """A client certificate (OU=``ou``) claiming ``msp_id``, issued by a throwaway CA nobody trusts."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org1.example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ca.org1.example.com"),
        ]
    )
    ca_cert = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org1.example.com"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, "User1@org1.example.com"),
        ]
    )
    cert = certificate(subject, ca_cert.subject, key.public_key(), ca_key, ca=False)
    return Identity(msp_id, cert.public_bytes(serialization.Encoding.PEM)), Signer(key)


def is_peer_refusal(err: Exception) -> bool:
    """The peer refused the creator before any chaincode ran (an unknown CA, a bad signature)."""
    if isinstance(err, ContractError):
        return False
    text = str(err)
    return isinstance(err, GatewayError) and "access denied" in text and "creator" in text


# ----------------------------------------------------------------------------- the ledger


@dataclass
class Outcome:
    """What one call did: ``allowed`` (it ran), ``denied`` (an access rule), or ``error`` (anything else)."""

    kind: str
    message: str = ""
    txid: str = ""


class DrillLedger:
    """One gateway per user, opened on first use; the forged identity included."""

    def __init__(self, fabric: dict) -> None:
        self.profile = load_profile(fabric["connection_profile"])
        self.channel = fabric["channel"]
        self._gateways: dict[str, Gateway] = {}
        self._keys: dict[str, str] = {}
        self.forged_identity = forged_identity()

    def gateway(self, user: str) -> Gateway:
        if user not in self._gateways:
            if user == FORGED:
                identity, signer = self.forged_identity
                peer = self.profile.peer(msp_id=identity.msp_id)
                self._gateways[user] = Gateway.connect(
                    peer.endpoint,
                    identity,
                    signer,
                    tls_ca_pem=peer.tls_ca_pem(),
                    server_name_override=peer.server_name_override,
                )
                self._gateways[user].default_channel = self.profile.channel
                self._gateways[user].default_chaincode = self.profile.chaincode
            else:
                self._gateways[user] = Gateway.connect(self.profile, user=user)
        return self._gateways[user]

    def contract(self, user: str, chaincode: str | None = None):
        return self.gateway(user).network().contract(chaincode)

    def client(self, user: str) -> FedcommitteeClient:
        return FedcommitteeClient(self.contract(user))

    def key(self, user: str) -> str:
        if user not in self._keys:
            self._keys[user] = self.client(user).who_am_i()["identity"]
        return self._keys[user]

    def height(self, org: int) -> int:
        qscc = self.contract(f"org{org}-admin", "qscc")
        return ledger_pb2.BlockchainInfo.FromString(qscc.evaluate("GetChainInfo", self.channel)).height

    def heights(self) -> tuple[int, int, int]:
        return tuple(self.height(org) for org in (1, 2, 3))

    def sync(self, block_number: int, timeout: float = 30.0) -> None:
        """Wait until every org's peer has committed ``block_number``."""
        deadline = time.monotonic() + timeout
        for org in (1, 2, 3):
            while self.height(org) <= block_number:
                assert time.monotonic() < deadline, f"peer of org{org} did not reach block {block_number}"
                time.sleep(0.02)

    def submit(self, user: str, fn: str, *args) -> str:
        """Submit as ``user``; return the result once every peer has the block."""
        res = self.contract(user).submit_transaction(fn, *wire(args))
        self.sync(res.block_number)
        return res.result.decode()

    def query(self, fn: str, *args, user: str = "org1-admin"):
        raw = self.contract(user).evaluate(fn, *wire(args))
        return json.loads(raw) if raw else None

    def ensure_role(self, user: str, role: str) -> None:
        if role not in self.client(user).who_am_i()["account"]["roles"]:
            self.submit(admin_of(user), "GrantRole", self.key(user), role)

    # ------------------------------------------------------------------ observing a call
    def evaluate_outcome(self, user: str, fn: str, *args) -> Outcome:
        """Run the transaction without ordering it (nothing is written) and classify the answer."""
        try:
            self.contract(user).evaluate(fn, *wire(args))
        except ContractError as err:
            kind = "denied" if err.chaincode_message.startswith("access denied") else "error"
            return Outcome(kind, err.chaincode_message, err.txid or "")
        except GatewayError as err:
            return Outcome("denied" if is_peer_refusal(err) else "error", str(err), err.txid or "")
        return Outcome("allowed")

    def submit_outcome(self, user: str, fn: str, *args) -> Outcome:
        """Submit for real and classify; a call that commits is ``allowed`` (and the block is synced)."""
        try:
            res = self.contract(user).submit_transaction(fn, *wire(args))
        except ContractError as err:
            kind = "denied" if err.chaincode_message.startswith("access denied") else "error"
            return Outcome(kind, err.chaincode_message, err.txid or "")
        except GatewayError as err:
            return Outcome("denied" if is_peer_refusal(err) else "error", str(err), err.txid or "")
        self.sync(res.block_number)
        return Outcome("allowed", res.result.decode(), res.txid)

    # ------------------------------------------------------------------ state read-back
    def snapshot(self, queries: list[tuple]) -> dict:
        """Read every query back (as org1-admin); errors are part of the state too."""
        out = {}
        for q in queries:
            try:
                out[repr(q)] = self.query(*q)
            except ContractError as err:
                out[repr(q)] = f"error: {err.chaincode_message}"
        return out

    # ------------------------------------------------------------------ replay
    def submit_keeping_envelope(self, user: str, fn: str, *args) -> tuple[str, common_pb2.Envelope, int]:
        """Endorse, sign, submit and wait for commit like Contract.submit, but keep the signed envelope."""
        gw = self.gateway(user)
        contract = gw.network().contract()
        prop = contract._proposal(fn, wire(args), None)
        endorsed = gw._stub.Endorse(
            gateway_pb2.EndorseRequest(
                transaction_id=prop.txid, channel_id=prop.channel, proposed_transaction=prop.signed_proposal
            ),
            timeout=gw.timeouts.endorse,
        )
        envelope = sign_envelope(endorsed.prepared_transaction, gw.signer)
        self.resubmit(user, prop.txid, envelope)
        block = contract.commit_status(prop.txid)
        self.sync(block)
        return prop.txid, envelope, block

    def resubmit(self, user: str, txid: str, envelope: common_pb2.Envelope) -> None:
        gw = self.gateway(user)
        gw._stub.Submit(
            gateway_pb2.SubmitRequest(
                transaction_id=txid, channel_id=self.channel, prepared_transaction=envelope
            ),
            timeout=gw.timeouts.submit,
        )

    def block(self, number: int) -> common_pb2.Block:
        qscc = self.contract("org1-admin", "qscc")
        return common_pb2.Block.FromString(qscc.evaluate("GetBlockByNumber", self.channel, str(number)))

    def occurrences(self, txid: str, first_block: int) -> list[tuple[int, str]]:
        """(block, validation code name) of every transaction with ``txid`` from ``first_block`` on."""
        found = []
        for number in range(first_block, self.height(1)):
            blk = self.block(number)
            flags = blk.metadata.metadata[common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER]
            for i, raw in enumerate(blk.data.data):
                payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(raw).payload)
                header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
                if header.tx_id == txid:
                    found.append((number, transaction_pb2.TxValidationCode.Name(flags[i])))
        return found

    def close(self) -> None:
        for gw in self._gateways.values():
            gw.close()


@contextmanager
def drill_ledger(fabric: dict, roles: dict[str, str]) -> Iterator[DrillLedger]:
    """A DrillLedger on which every (user, role) of ``roles`` is held; closed on exit. The drill
    modules' ``ledger`` fixtures are this, each with its own cast."""
    led = DrillLedger(fabric)
    try:
        for user, role in roles.items():
            led.ensure_role(user, role)
        yield led
    finally:
        led.close()


# ----------------------------------------------------------------------------- models


def ref(obj) -> dict:
    return {"cid": obj.cid, "sha256": obj.sha256_hex}


GOSSIP_RULES = {"minAccepted": 0, "deadlineSeconds": 0, "maxRounds": 0, "maxParents": 2}


def model_spec(
    ledger: DrillLedger,
    store,
    model_id: str,
    *,
    mode: str = "federated",
    quorum: int = 2,
    governance: list[str] | None = None,
    committee_users: list[str] = COMMITTEE,
    threshold: float = 0.5,
    federated_rules: dict | None = None,
) -> dict:
    """A PublishModel spec whose weights and shards are real (small) objects in IPFS."""
    arch = {"name": "mnist_cnn", "version": "1.0.0"}
    init = store.put(f"{model_id}: initial weights".encode())
    committee = []
    for i, user in enumerate(committee_users):
        shard = store.put(f"{model_id}: validation shard {i}".encode())
        committee.append({"member": ledger.key(user), "shardCid": shard.cid, "shardSha256": shard.sha256_hex})
    if mode == "federated":
        rules = federated_rules or {
            "minAccepted": 1,
            "deadlineSeconds": 3600,
            "maxRounds": 5,
            "maxParents": 0,
        }
    else:
        rules = GOSSIP_RULES
    spec = {
        "modelId": model_id,
        "architecture": arch,
        "specSha256": hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest(),
        "initialWeights": ref(init),
        "metric": {"name": "accuracy", "higherIsBetter": True},
        "acceptance": {"rule": "threshold", "threshold": threshold, "scoreMin": 0, "scoreMax": 1},
        "quorum": quorum,
        "committee": committee,
        "mode": mode,
        "roundRules": rules,
        "rewardRules": {"acceptReward": 10, "rejectPenalty": 2, "verdictReward": 1},
    }
    if governance:
        spec["governance"] = {"policy": "majority", "orgs": governance}
    return spec


def activate(ledger: DrillLedger, model_id: str) -> dict:
    for i, member in enumerate(COMMITTEE):
        ledger.submit(member, "ApproveModel", model_id, str(0.4 + 0.05 * i))
    model = ledger.query("GetModel", model_id)
    assert model["status"] == "active", model
    return model


def federated_update(store, model: dict, tag: str, round_: int = 1) -> dict:
    obj = store.put(f"{model['id']}: {tag}".encode())
    g = model["global"]
    return {
        "round": round_,
        "baseCid": g["cid"],
        "baseSha256": g["sha256"],
        **ref(obj),
        "numSamples": 100,
        "metrics": {"loss": 0.3},
    }


def gossip_update(store, model_id: str, tag: str, parents: list[str] | None = None) -> dict:
    obj = store.put(f"{model_id}: {tag}".encode())
    return {"parents": parents or [], **ref(obj), "numSamples": 50, "metrics": {}}


def accept(ledger: DrillLedger, update_id: str, members: list[str] | None = None) -> None:
    for member in members or COMMITTEE:
        ledger.submit(member, "SubmitVerdict", update_id, {"score": 0.9, "accept": True})


def model_queries(model_id: str, rounds: int = 2) -> list[tuple]:
    """Everything a drill could have changed about one model."""
    qs: list[tuple] = [
        ("GetModel", model_id),
        ("GetModelVotes", model_id),
        ("GetLeaderboard", model_id),
        ("ListDataRegistrations", model_id, "200", ""),
        ("ListRuleChanges", model_id, "200", ""),
    ]
    for r in range(1, rounds + 1):
        qs += [
            ("GetRound", model_id, str(r)),
            ("GetAggregates", model_id, str(r)),
            ("ListRoundUpdates", model_id, str(r), "200", ""),
        ]
    return qs


def update_queries(update_id: str) -> list[tuple]:
    return [("GetUpdate", update_id), ("GetVerdicts", update_id), ("GetChildren", update_id, "200", "")]


def account_queries(ledger: DrillLedger, users: list[str]) -> list[tuple]:
    qs: list[tuple] = [
        ("ListRoleHolders", role, "200", "") for role in ("publisher", "provider", "committee")
    ]
    return qs + [("GetAccount", ledger.key(u)) for u in users]


ALL_USERS = [PUBLISHER, *COMMITTEE, PROVIDER, PROVIDER2, OTHER_COMMITTEE, NO_ROLE]


@dataclass
class Tally:
    """Counts for the bad-input summary."""

    tried: int = 0
    rejected: int = 0
    state_changes: int = 0
    lines: list[str] = field(default_factory=list)

    def add(self, label: str, rejected: bool, message: str) -> None:
        self.tried += 1
        self.rejected += int(rejected)
        self.lines.append(f"  {'rejected' if rejected else 'ACCEPTED'}  {label}: {message[:150]}")

    def summary(self) -> str:
        return (
            f"bad-input drills: {self.tried} inputs tried, {self.rejected} rejected, "
            f"{self.state_changes} state changes observed"
        )
