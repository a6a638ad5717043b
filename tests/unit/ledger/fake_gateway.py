"""An in-process fake of the Fabric peer's ``gateway.Gateway`` service, for unit tests only.

It checks what a real peer checks before it accepts a request (fabric core/endorser/msgvalidation.go,
protoutil/proputils.go, internal/pkg/gateway/*.go):

* header type ENDORSER_TRANSACTION, epoch 0, channel id, timestamp within 15 minutes;
* txid == hex(SHA-256(nonce || creator)) and equal to the request's transaction_id;
* creator is a SerializedIdentity whose id_bytes is a PEM certificate issued by the org CA, with OU=client;
* the ECDSA signature over SHA-256(proposal bytes / envelope payload / request bytes) verifies against the
  creator certificate and is low-S;
* a chaincode name is present in the header extension and matches the invocation spec;
* Submit carries a signed envelope that is exactly the prepared transaction returned by Endorse;
* duplicate transaction ids are refused at endorsement.

The "chaincode" is a dict of Python handlers; the "ledger" is a list of blocks of chaincode events with the
commit status of every ordered transaction. Chaincode events are streamed with Fabric's own resume rule
(start at the block of ``after_transaction_id`` and skip events up to and including it).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from fedcommittee.ledger._status import encode_status

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
PEER_ADDRESS = "peer0.org1.example.com:7051"


@dataclass
class Invocation:
    txid: str
    channel: str
    chaincode: str
    fn: str
    args: list[bytes]
    transient: dict[str, bytes]
    creator: identities_pb2.SerializedIdentity


@dataclass
class Outcome:
    status: int = 200
    message: str = ""
    payload: bytes = b""
    event: tuple[str, bytes] | None = None
    writes: dict[str, bytes] = field(default_factory=dict)


class Rejected(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, detail: str | None = None, detail_msp: str = "Org1MSP"
    ):
        super().__init__(message)
        self.code, self.message, self.detail, self.detail_msp = code, message, detail, detail_msp


def _abort(context, rej: Rejected):
    if rej.detail is not None:
        detail = gateway_pb2.ErrorDetail(address=PEER_ADDRESS, msp_id=rej.detail_msp, message=rej.detail)
        context.set_trailing_metadata(
            (("grpc-status-details-bin", encode_status(rej.code, rej.message, [detail])),)
        )
    context.abort(rej.code, rej.message)


class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, ca_cert: x509.Certificate, *, msp_id: str = "Org1MSP", channel: str = "fedchannel"):
        self.ca_cert = ca_cert
        self.msp_id = msp_id
        self.channel = channel
        self.chaincodes = {"fedcommittee"}
        self.state: dict[str, bytes] = {}
        self.handlers: dict[str, Callable[[Invocation, dict[str, bytes]], Outcome]] = {}
        self.validation_codes: dict[str, int] = {}  # fn -> TxValidationCode forced at commit
        # ledger: block 0 is the genesis (config) block, no chaincode events
        self.blocks: list[list[chaincode_event_pb2.ChaincodeEvent]] = [[]]
        self.tx_status: dict[str, tuple[int, int]] = {}
        # Endorsements that another org's peer, a block behind, rejects before this one succeeds.
        self.lagging_remote_rejections = 0
        self.cond = threading.Condition()
        self.endorsed: dict[str, tuple[bytes, Invocation, Outcome]] = {}
        self.submitted_envelopes: list[bytes] = []
        self.calls: dict[str, int] = {
            "Evaluate": 0,
            "Endorse": 0,
            "Submit": 0,
            "CommitStatus": 0,
            "Events": 0,
        }
        self.fail_next: dict[str, deque[grpc.StatusCode]] = {k: deque() for k in self.calls}
        self.commit_delay = 0.0
        self.lose_submit_replies = 0  # order the transaction, then fail the reply with UNAVAILABLE
        self.lose_accepted = 0  # accept the transaction, never order it (a node restarted without it)
        self.commit_status_deadlines: list[float | None] = []  # each CommitStatus call's time remaining
        self.events_requests: list[gateway_pb2.ChaincodeEventsRequest] = []
        self.events_drop_plan: deque[int | None] = deque()  # per stream: responses to send before UNAVAILABLE
        self.honour_after_txid = True
        self._install_default_handlers()

    # ----------------------------------------------------------- chaincode
    def _install_default_handlers(self) -> None:
        def put(inv: Invocation, state):
            key, value = inv.args[0].decode(), inv.args[1]
            return Outcome(payload=value, event=("Put", key.encode()), writes={key: value})

        def get(inv: Invocation, state):
            key = inv.args[0].decode()
            if key not in state:
                return Outcome(status=500, message=f"the asset {key} does not exist")
            return Outcome(payload=state[key])

        def echo(inv: Invocation, state):
            parts = [
                inv.fn.encode(),
                *inv.args,
                *(k.encode() + b"=" + v for k, v in sorted(inv.transient.items())),
            ]
            return Outcome(payload=b"|".join(parts))

        def whoami(inv: Invocation, state):
            return Outcome(payload=inv.creator.mspid.encode())

        self.handlers.update({"Put": put, "Get": get, "Echo": echo, "Registry:Echo": echo, "WhoAmI": whoami})

    def add_block(self, events: list[tuple[str, str, bytes]]) -> int:
        """Append a block with (chaincode, name, payload) events from fresh txids; returns its number."""
        with self.cond:
            number = len(self.blocks)
            block = []
            for i, (cc, name, payload) in enumerate(events):
                txid = hashlib.sha256(f"{number}/{i}".encode()).hexdigest()
                block.append(
                    chaincode_event_pb2.ChaincodeEvent(
                        chaincode_id=cc, tx_id=txid, event_name=name, payload=payload
                    )
                )
                self.tx_status[txid] = (transaction_pb2.TxValidationCode.VALID, number)
            self.blocks.append(block)
            self.cond.notify_all()
            return number

    # ----------------------------------------------------------- checks a peer makes
    def _check_creator(
        self, creator_bytes: bytes
    ) -> tuple[identities_pb2.SerializedIdentity, x509.Certificate]:
        sid = identities_pb2.SerializedIdentity.FromString(creator_bytes)
        if sid.mspid != self.msp_id:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, f"MSP {sid.mspid} is not defined on channel")
        try:
            cert = x509.load_pem_x509_certificate(sid.id_bytes)
        except ValueError as exc:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED, f"could not decode PEM identity: {exc}"
            ) from exc
        try:
            self.ca_cert.public_key().verify(
                cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
            )
        except InvalidSignature as exc:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED, "certificate not issued by the MSP's CA"
            ) from exc
        ous = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
        if "client" not in ous:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "identity is not a client (NodeOU)")
        return sid, cert

    @staticmethod
    def _check_signature(cert: x509.Certificate, message: bytes, signature: bytes) -> None:
        if not signature:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "signature is empty")
        try:
            cert.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED, "the creator's signature over the proposal is not valid"
            ) from exc
        _, s = decode_dss_signature(signature)
        if s > P256_N // 2:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED, "Invalid S. Must be smaller than half the order"
            )

    def _check_proposal(
        self, signed: proposal_pb2.SignedProposal, txid: str, channel: str
    ) -> tuple[Invocation, bytes, bytes]:
        bad = grpc.StatusCode.FAILED_PRECONDITION
        prop = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
        header = common_pb2.Header.FromString(prop.header)
        ch = common_pb2.ChannelHeader.FromString(header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(header.signature_header)
        if ch.type != common_pb2.HeaderType.ENDORSER_TRANSACTION:
            raise Rejected(bad, f"invalid header type {ch.type}")
        if ch.epoch != 0:
            raise Rejected(bad, f"epoch is non-zero: {ch.epoch}")
        if not ch.channel_id or ch.channel_id != channel or channel != self.channel:
            raise Rejected(bad, f"channel mismatch: header {ch.channel_id!r}, request {channel!r}")
        if abs(time.time() - ch.timestamp.seconds) > 15 * 60:
            raise Rejected(bad, "request timestamp outside the time window")
        if len(sh.nonce) == 0:
            raise Rejected(bad, "nonce is empty")
        expected = hashlib.sha256(sh.nonce + sh.creator).hexdigest()
        if ch.tx_id != expected:
            raise Rejected(bad, f"invalid txid. got [{ch.tx_id}], expected [{expected}]")
        if txid != ch.tx_id:
            raise Rejected(bad, "request transaction_id does not match the proposal's")
        sid, cert = self._check_creator(sh.creator)
        self._check_signature(cert, signed.proposal_bytes, signed.signature)
        ext = proposal_pb2.ChaincodeHeaderExtension.FromString(ch.extension)
        if not ext.chaincode_id.name:
            raise Rejected(bad, "ChaincodeHeaderExtension.ChaincodeId.Name is empty")
        cpp = proposal_pb2.ChaincodeProposalPayload.FromString(prop.payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input)
        name = spec.chaincode_spec.chaincode_id.name
        if name != ext.chaincode_id.name:
            raise Rejected(bad, "chaincode name in header and payload differ")
        if name not in self.chaincodes:
            raise Rejected(grpc.StatusCode.NOT_FOUND, f"chaincode {name} not found")
        with self.cond:
            if ch.tx_id in self.tx_status:
                raise Rejected(bad, f"duplicate transaction found [{ch.tx_id}]")
        args = list(spec.chaincode_spec.input.args)
        inv = Invocation(ch.tx_id, channel, name, args[0].decode(), args[1:], dict(cpp.TransientMap), sid)
        return inv, prop.header, prop.payload

    def _run(self, inv: Invocation) -> Outcome:
        handler = self.handlers.get(inv.fn)
        if handler is None:
            return Outcome(status=500, message=f"function {inv.fn} not found")
        return handler(inv, dict(self.state))

    def _injected(self, rpc: str):
        self.calls[rpc] += 1
        if self.fail_next[rpc]:
            code = self.fail_next[rpc].popleft()
            raise Rejected(code, f"injected {code.name} failure")

    # ----------------------------------------------------------- RPCs
    def Evaluate(self, request, context):
        try:
            self._injected("Evaluate")
            inv, _, _ = self._check_proposal(
                request.proposed_transaction, request.transaction_id, request.channel_id
            )
            if self.lagging_remote_rejections:
                self.lagging_remote_rejections -= 1
                raise Rejected(
                    grpc.StatusCode.ABORTED,
                    "failed to collect enough transaction endorsements, see attached details for more info",
                    "chaincode response 500, stale state",
                    detail_msp="Org2MSP",
                )
            out = self._run(inv)
            if out.status >= 400:
                msg = f"chaincode response {out.status}, {out.message}"
                raise Rejected(
                    grpc.StatusCode.UNKNOWN, "evaluate call to endorser returned error: " + msg, msg
                )
        except Rejected as rej:
            _abort(context, rej)
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(status=out.status, message=out.message, payload=out.payload)
        )

    def Endorse(self, request, context):
        try:
            self._injected("Endorse")
            inv, header_bytes, payload_bytes = self._check_proposal(
                request.proposed_transaction, request.transaction_id, request.channel_id
            )
            if self.lagging_remote_rejections:
                self.lagging_remote_rejections -= 1
                raise Rejected(
                    grpc.StatusCode.ABORTED,
                    "failed to collect enough transaction endorsements, see attached details for more info",
                    "chaincode response 500, stale state",
                    detail_msp="Org2MSP",
                )
            out = self._run(inv)
            if out.status >= 400:
                raise Rejected(
                    grpc.StatusCode.ABORTED,
                    "failed to endorse transaction, see attached details for more info",
                    f"chaincode response {out.status}, {out.message}",
                )
        except Rejected as rej:
            _abort(context, rej)
        events = b""
        if out.event is not None:
            events = chaincode_event_pb2.ChaincodeEvent(
                chaincode_id=inv.chaincode, tx_id=inv.txid, event_name=out.event[0], payload=out.event[1]
            ).SerializeToString()
        action = proposal_pb2.ChaincodeAction(
            results=b"rwset",
            events=events,
            response=proposal_response_pb2.Response(
                status=out.status, message=out.message, payload=out.payload
            ),
            chaincode_id=chaincode_pb2.ChaincodeID(name=inv.chaincode),
        )
        prp = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=hashlib.sha256(header_bytes + payload_bytes).digest(),
            extension=action.SerializeToString(),
        )
        # transient data never goes into the transaction
        cpp = proposal_pb2.ChaincodeProposalPayload.FromString(payload_bytes)
        cpp_no_transient = proposal_pb2.ChaincodeProposalPayload(input=cpp.input)
        cap = transaction_pb2.ChaincodeActionPayload(
            chaincode_proposal_payload=cpp_no_transient.SerializeToString(),
            action=transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=prp.SerializeToString()),
        )
        header = common_pb2.Header.FromString(header_bytes)
        tx = transaction_pb2.Transaction(
            actions=[
                transaction_pb2.TransactionAction(
                    header=header.signature_header, payload=cap.SerializeToString()
                )
            ]
        )
        payload = common_pb2.Payload(header=header, data=tx.SerializeToString()).SerializeToString()
        with self.cond:
            self.endorsed[inv.txid] = (payload, inv, out)
        return gateway_pb2.EndorseResponse(prepared_transaction=common_pb2.Envelope(payload=payload))

    def Submit(self, request, context):
        try:
            self._injected("Submit")
            env = request.prepared_transaction
            if not env.payload:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "a prepared transaction is required")
            if not env.signature:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed")
            payload = common_pb2.Payload.FromString(env.payload)
            ch = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            sh = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
            if ch.tx_id != request.transaction_id or ch.channel_id != request.channel_id:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "request does not match the transaction")
            _, cert = self._check_creator(sh.creator)
            self._check_signature(cert, env.payload, env.signature)
            with self.cond:
                endorsed = self.endorsed.get(ch.tx_id)
                if endorsed is None or endorsed[0] != env.payload:
                    raise Rejected(
                        grpc.StatusCode.ABORTED, "received unsuccessful response from orderer: BAD_REQUEST"
                    )
                self.submitted_envelopes.append(env.SerializeToString())
                if ch.tx_id in self.tx_status or any(
                    e == env.SerializeToString() for e in self.submitted_envelopes[:-1]
                ):
                    return gateway_pb2.SubmitResponse()  # a re-sent copy: the ledger keeps the first
            _, inv, out = endorsed
        except Rejected as rej:
            _abort(context, rej)
        if self.lose_accepted > 0:
            self.lose_accepted -= 1
        elif self.commit_delay:
            threading.Timer(self.commit_delay, self._commit, args=(inv, out)).start()
        else:
            self._commit(inv, out)
        if self.lose_submit_replies > 0:
            self.lose_submit_replies -= 1
            context.abort(
                grpc.StatusCode.UNAVAILABLE, "connection reset after the orderer accepted the transaction"
            )
        return gateway_pb2.SubmitResponse()

    def _commit(self, inv: Invocation, out: Outcome) -> None:
        code = self.validation_codes.get(inv.fn, transaction_pb2.TxValidationCode.VALID)
        with self.cond:
            number = len(self.blocks)
            block = []
            if code == transaction_pb2.TxValidationCode.VALID:
                self.state.update(out.writes)
                if out.event is not None:
                    block.append(
                        chaincode_event_pb2.ChaincodeEvent(
                            chaincode_id=inv.chaincode,
                            tx_id=inv.txid,
                            event_name=out.event[0],
                            payload=out.event[1],
                        )
                    )
            self.blocks.append(block)
            self.tx_status[inv.txid] = (code, number)
            self.cond.notify_all()

    def CommitStatus(self, request, context):
        try:
            self.commit_status_deadlines.append(context.time_remaining())
            self._injected("CommitStatus")
            req = gateway_pb2.CommitStatusRequest.FromString(request.request)
            _, cert = self._check_creator(req.identity)
            self._check_signature(cert, request.request, request.signature)
            if req.channel_id != self.channel:
                raise Rejected(grpc.StatusCode.FAILED_PRECONDITION, f"channel {req.channel_id} not found")
            with self.cond:
                while req.transaction_id not in self.tx_status:
                    remaining = context.time_remaining()
                    if not context.is_active() or (remaining is not None and remaining <= 0):
                        raise Rejected(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
                    self.cond.wait(timeout=0.05 if remaining is None else min(0.05, remaining))
                code, number = self.tx_status[req.transaction_id]
        except Rejected as rej:
            _abort(context, rej)
        return gateway_pb2.CommitStatusResponse(result=code, block_number=number)

    def ChaincodeEvents(self, request, context):
        try:
            self._injected("Events")
            req = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
            _, cert = self._check_creator(req.identity)
            self._check_signature(cert, request.request, request.signature)
            if req.channel_id != self.channel:
                raise Rejected(grpc.StatusCode.NOT_FOUND, f"channel {req.channel_id} not found")
        except Rejected as rej:
            _abort(context, rej)
        with self.cond:
            self.events_requests.append(req)
            drop_after = self.events_drop_plan.popleft() if self.events_drop_plan else None
            # Fabric: start at the block holding after_transaction_id if known, else at start_position.
            start = None
            if req.after_transaction_id and req.after_transaction_id in self.tx_status:
                start = self.tx_status[req.after_transaction_id][1]
            if start is None:
                which = req.start_position.WhichOneof("Type")
                start = req.start_position.specified.number if which == "specified" else len(self.blocks)
        skipping = bool(req.after_transaction_id) and self.honour_after_txid
        sent = 0
        number = start
        while context.is_active():
            with self.cond:
                if number >= len(self.blocks):
                    self.cond.wait(timeout=0.05)
                    continue
                block = list(self.blocks[number])
            matching = []
            for ev in block:
                if skipping:
                    if ev.tx_id == req.after_transaction_id:
                        skipping = False
                    continue
                if ev.chaincode_id == req.chaincode_id:
                    matching.append(ev)
            if matching:
                if drop_after is not None and sent >= drop_after:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset by peer (simulated)")
                yield gateway_pb2.ChaincodeEventsResponse(events=matching, block_number=number)
                sent += 1
            number += 1


class FakeServer:
    """Runs a FakeGateway on 127.0.0.1 (plaintext, or TLS with the given key/cert)."""

    def __init__(self, servicer: FakeGateway, *, tls: tuple[bytes, bytes] | None = None, port: int = 0):
        self.servicer = servicer
        self.tls = tls
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, self.server)
        addr = f"127.0.0.1:{port}"
        if tls is None:
            self.port = self.server.add_insecure_port(addr)
        else:
            creds = grpc.ssl_server_credentials([(tls[0], tls[1])])
            self.port = self.server.add_secure_port(addr, creds)
        if self.port == 0:
            raise RuntimeError(f"could not bind {addr}")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=0).wait(5)
