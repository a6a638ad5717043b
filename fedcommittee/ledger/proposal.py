"""Pure builders and parsers for the Fabric Gateway messages (no network).

Follows the rules the peer enforces (fabric protoutil/proputils.go, core/endorser/msgvalidation.go):

* nonce: 24 random bytes; transaction id = lowercase hex of SHA-256(nonce || creator);
* ChannelHeader: type ENDORSER_TRANSACTION, epoch 0, timestamp now, extension =
  ChaincodeHeaderExtension{chaincode_id{name}};
* SignedProposal.signature = Sign(proposal_bytes) (ECDSA over its SHA-256, low-S);
* the prepared transaction returned by Endorse is signed over its ``payload`` bytes;
* CommitStatus and ChaincodeEvents requests are signed over their serialized request bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2, proposal_response_pb2, transaction_pb2
from google.protobuf import timestamp_pb2

from .identity import Identity, Signer

__all__ = [
    "NONCE_LENGTH",
    "Arg",
    "BuiltProposal",
    "build_proposal",
    "chaincode_events_request",
    "commit_status_request",
    "compute_txid",
    "encode_args",
    "new_nonce",
    "sign_envelope",
    "transaction_function_name",
    "transaction_result",
]

NONCE_LENGTH = 24
Arg = str | bytes


def new_nonce() -> bytes:
    return os.urandom(NONCE_LENGTH)


def compute_txid(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id rule: hex(SHA-256(nonce || creator))."""
    return hashlib.sha256(nonce + creator).hexdigest()


def transaction_function_name(fn: str, contract_name: str | None = None) -> str:
    """``"Contract:Func"`` when a contract name is given (contract-api-go), else the bare function name."""
    if not fn:
        raise ValueError("transaction function name must not be empty")
    if contract_name:
        return f"{contract_name}:{fn}"
    return fn


def encode_args(args: Sequence[Arg]) -> list[bytes]:
    out: list[bytes] = []
    for i, a in enumerate(args):
        if isinstance(a, bytes | bytearray | memoryview):
            out.append(bytes(a))
        elif isinstance(a, str):
            out.append(a.encode("utf-8"))
        else:
            raise TypeError(f"argument {i} must be str or bytes, not {type(a).__name__} (serialize it first)")
    return out


@dataclass(frozen=True)
class BuiltProposal:
    """A signed proposal ready for Evaluate or Endorse."""

    txid: str
    channel: str
    chaincode: str
    nonce: bytes
    proposal_bytes: bytes
    signed_proposal: proposal_pb2.SignedProposal


def _timestamp(now: float | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    t = time.time() if now is None else now
    ts.seconds = int(t)
    ts.nanos = int((t - int(t)) * 1e9)
    return ts


def build_proposal(
    identity: Identity,
    signer: Signer,
    channel: str,
    chaincode: str,
    fn: str,
    args: Sequence[Arg] = (),
    transient: Mapping[str, bytes] | None = None,
    *,
    nonce: bytes | None = None,
    now: float | None = None,
) -> BuiltProposal:
    """Build and sign a chaincode invocation proposal (``fn`` may already be ``"Contract:Func"``)."""
    if not channel:
        raise ValueError("channel name must not be empty")
    if not chaincode:
        raise ValueError("chaincode name must not be empty")
    creator = identity.creator_bytes()
    nonce = new_nonce() if nonce is None else nonce
    txid = compute_txid(nonce, creator)

    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)
    ext = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id)
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.ENDORSER_TRANSACTION,
        version=0,
        timestamp=_timestamp(now),
        channel_id=channel,
        tx_id=txid,
        epoch=0,
        extension=ext.SerializeToString(),
    )
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            type=chaincode_pb2.ChaincodeSpec.Type.GOLANG,
            chaincode_id=chaincode_id,
            input=chaincode_pb2.ChaincodeInput(args=encode_args([fn, *args])),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString())
    for key, value in (transient or {}).items():
        payload.TransientMap[key] = encode_args([value])[0]
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    proposal_bytes = proposal.SerializeToString()
    signed = proposal_pb2.SignedProposal(proposal_bytes=proposal_bytes, signature=signer.sign(proposal_bytes))
    return BuiltProposal(txid, channel, chaincode, nonce, proposal_bytes, signed)


def sign_envelope(envelope: common_pb2.Envelope, signer: Signer) -> common_pb2.Envelope:
    """Return a copy of the prepared transaction with ``signature = Sign(payload)``."""
    if not envelope.payload:
        raise ValueError("prepared transaction has no payload")
    signed = common_pb2.Envelope()
    signed.CopyFrom(envelope)
    signed.signature = signer.sign(envelope.payload)
    return signed


def commit_status_request(
    identity: Identity, signer: Signer, channel: str, txid: str
) -> gateway_pb2.SignedCommitStatusRequest:
    req = gateway_pb2.CommitStatusRequest(
        transaction_id=txid, channel_id=channel, identity=identity.creator_bytes()
    ).SerializeToString()
    return gateway_pb2.SignedCommitStatusRequest(request=req, signature=signer.sign(req))


def chaincode_events_request(
    identity: Identity,
    signer: Signer,
    channel: str,
    chaincode: str,
    *,
    start_block: int | None = None,
    after_txid: str | None = None,
) -> gateway_pb2.SignedChaincodeEventsRequest:
    """Events from ``start_block`` (skipping up to and including ``after_txid``), or from the next commit."""
    if start_block is None:
        position = ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
    else:
        if start_block < 0:
            raise ValueError(f"start_block must be >= 0, got {start_block}")
        position = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
    req = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel,
        chaincode_id=chaincode,
        identity=identity.creator_bytes(),
        start_position=position,
        after_transaction_id=after_txid or "",
    ).SerializeToString()
    return gateway_pb2.SignedChaincodeEventsRequest(request=req, signature=signer.sign(req))


def transaction_result(envelope: common_pb2.Envelope) -> bytes:
    """The chaincode response payload inside a prepared transaction (Envelope → … → ChaincodeAction).

    Envelope.payload → Payload.data → Transaction.actions[0].payload → ChaincodeActionPayload.action
    .proposal_response_payload → ProposalResponsePayload.extension → ChaincodeAction.response.payload.
    """
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    if not tx.actions:
        raise ValueError("prepared transaction contains no actions")
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(cap.action.proposal_response_payload)
    action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
    return action.response.payload
