from __future__ import annotations

import hashlib
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from fedcommittee.ledger.proposal import (
    NONCE_LENGTH,
    build_proposal,
    chaincode_events_request,
    commit_status_request,
    compute_txid,
    encode_args,
    new_nonce,
    sign_envelope,
    transaction_function_name,
)


def _decode(built):
    prop = proposal_pb2.Proposal.FromString(built.signed_proposal.proposal_bytes)
    header = common_pb2.Header.FromString(prop.header)
    ch = common_pb2.ChannelHeader.FromString(header.channel_header)
    sh = common_pb2.SignatureHeader.FromString(header.signature_header)
    cpp = proposal_pb2.ChaincodeProposalPayload.FromString(prop.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input)
    return prop, ch, sh, cpp, spec


def test_nonce_and_txid_rule(org):
    nonce = new_nonce()
    assert len(nonce) == NONCE_LENGTH == 24
    assert new_nonce() != nonce
    creator = org.identity.creator_bytes()
    assert compute_txid(nonce, creator) == hashlib.sha256(nonce + creator).hexdigest()
    built = build_proposal(org.identity, org.signer, "fedchannel", "fedcommittee", "Put", ["k"], nonce=nonce)
    _, ch, sh, _, _ = _decode(built)
    # the peer's rule, recomputed from the decoded header
    assert ch.tx_id == built.txid == hashlib.sha256(sh.nonce + sh.creator).hexdigest()
    assert sh.nonce == nonce
    assert built.txid == built.txid.lower() and len(built.txid) == 64


def test_proposal_structure_round_trips(org):
    before = time.time()
    built = build_proposal(
        org.identity,
        org.signer,
        "fedchannel",
        "fedcommittee",
        transaction_function_name("RecordVerdict", "Committee"),
        ["upd-1", b"\x00\xffraw"],
        {"secret": b"shard-key"},
    )
    prop, ch, sh, cpp, spec = _decode(built)
    assert ch.type == common_pb2.HeaderType.ENDORSER_TRANSACTION == 3
    assert ch.epoch == 0
    assert ch.channel_id == "fedchannel"
    assert before - 1 <= ch.timestamp.seconds <= time.time() + 1
    assert proposal_pb2.ChaincodeHeaderExtension.FromString(ch.extension).chaincode_id.name == "fedcommittee"
    sid = identities_pb2.SerializedIdentity.FromString(sh.creator)
    assert (sid.mspid, sid.id_bytes) == ("Org1MSP", org.user_cert_pem)
    assert spec.chaincode_spec.chaincode_id.name == "fedcommittee"
    assert list(spec.chaincode_spec.input.args) == [b"Committee:RecordVerdict", b"upd-1", b"\x00\xffraw"]
    assert dict(cpp.TransientMap) == {"secret": b"shard-key"}
    # re-serializing the decoded proposal gives the signed bytes back
    assert prop.SerializeToString() == built.proposal_bytes
    org.identity.certificate.public_key().verify(
        built.signed_proposal.signature, built.proposal_bytes, ec.ECDSA(hashes.SHA256())
    )


def test_function_names_and_args():
    assert transaction_function_name("Get") == "Get"
    assert transaction_function_name("Get", "Models") == "Models:Get"
    with pytest.raises(ValueError):
        transaction_function_name("")
    assert encode_args(["é", b"b", bytearray(b"c")]) == ["é".encode(), b"b", b"c"]
    with pytest.raises(TypeError, match="argument 0"):
        encode_args([3])


def test_empty_names_rejected(org):
    with pytest.raises(ValueError, match="chaincode"):
        build_proposal(org.identity, org.signer, "ch", "", "f")
    with pytest.raises(ValueError, match="channel"):
        build_proposal(org.identity, org.signer, "", "cc", "f")


def test_sign_envelope_signs_payload(org):
    env = common_pb2.Envelope(payload=b"prepared-payload")
    signed = sign_envelope(env, org.signer)
    assert env.signature == b""  # original untouched
    org.identity.certificate.public_key().verify(
        signed.signature, b"prepared-payload", ec.ECDSA(hashes.SHA256())
    )
    with pytest.raises(ValueError):
        sign_envelope(common_pb2.Envelope(), org.signer)


def test_commit_status_and_events_requests_are_signed(org):
    pub = org.identity.certificate.public_key()
    csr = commit_status_request(org.identity, org.signer, "fedchannel", "ab" * 32)
    req = gateway_pb2.CommitStatusRequest.FromString(csr.request)
    assert (req.channel_id, req.transaction_id, req.identity) == (
        "fedchannel",
        "ab" * 32,
        org.identity.creator_bytes(),
    )
    pub.verify(csr.signature, csr.request, ec.ECDSA(hashes.SHA256()))

    ev = chaincode_events_request(org.identity, org.signer, "fedchannel", "fedcommittee")
    r = gateway_pb2.ChaincodeEventsRequest.FromString(ev.request)
    assert r.start_position.WhichOneof("Type") == "next_commit"
    assert r.after_transaction_id == ""
    pub.verify(ev.signature, ev.request, ec.ECDSA(hashes.SHA256()))

    ev = chaincode_events_request(
        org.identity, org.signer, "fedchannel", "cc", start_block=7, after_txid="t1"
    )
    r = gateway_pb2.ChaincodeEventsRequest.FromString(ev.request)
    assert r.start_position.specified.number == 7
    assert r.after_transaction_id == "t1"
    assert r.chaincode_id == "cc"
