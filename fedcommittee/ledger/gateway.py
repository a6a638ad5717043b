"""A Fabric Gateway client: Gateway -> Network -> Contract, with submit/evaluate and chaincode events.

Speaks the Fabric 3 ``gateway.Gateway`` gRPC service (fabric-protos gateway/gateway.proto) to one peer:

* ``Contract.evaluate``: build and sign a proposal, call ``Evaluate``, return the chaincode's payload.
* ``Contract.submit``: ``Endorse`` → sign the prepared transaction → ``Submit`` → ``CommitStatus``; returns
  the chaincode's payload once the transaction has committed VALID, else raises :class:`CommitError`.
* ``Network.chaincode_events``: a resumable iterator over a chaincode's events (see :class:`Checkpoint`).

Retries happen only where repeating a call cannot change the outcome: Evaluate (read-only) and
CommitStatus (a query) on UNAVAILABLE or DEADLINE_EXCEEDED (CommitStatus not on a deadline passed
after the connection was lost: the restarted peer may never see the transaction); Submit of the
*same signed envelope* (same transaction id, so at most one copy can commit) on UNAVAILABLE; Endorse
of the same proposal (nothing has been ordered yet) when the failure looks transient: the gateway
peer unavailable, no endorsement plan yet, or only another org's lagging peer rejecting. A chaincode
rejection by the gateway's own org is final, and after CommitError (the transaction was ordered) the
caller decides what to do.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import transaction_pb2

from . import _status
from .checkpoint import Checkpoint
from .errors import (
    ChaincodeEventsError,
    CommitError,
    CommitStatusError,
    EndorseError,
    EvaluateError,
    GatewayConnectionError,
    GatewayError,
    SubmitError,
    chaincode_message,
    contract_error,
)
from .identity import Identity, Signer
from .profile import ConnectionProfile, load_profile
from .proposal import (
    Arg,
    build_proposal,
    chaincode_events_request,
    commit_status_request,
    sign_envelope,
    transaction_function_name,
    transaction_result,
)

__all__ = [
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "Contract",
    "Gateway",
    "Network",
    "RetryPolicy",
    "SubmitResult",
    "Timeouts",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # the peer's own limit (core.yaml)
_VALID = transaction_pb2.TxValidationCode.VALID
_RETRY_IDEMPOTENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_RETRY_SUBMIT = frozenset({grpc.StatusCode.UNAVAILABLE})
_NO_RETRY: frozenset[grpc.StatusCode] = frozenset()
# Stream failures after which re-opening the event stream from the last position is worthwhile.
_EVENTS_RECONNECT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True)
class Timeouts:
    """Per-call deadlines in seconds (defaults as in the fabric-samples gateway applications)."""

    evaluate: float = 5.0
    endorse: float = 15.0
    submit: float = 5.0
    commit_status: float = 60.0
    # After the connection to the peer was lost while waiting for a commit: the peer (or the embedded
    # ledger) may have restarted without the transaction, and waiting 60 s more, twice, for a
    # transaction nobody holds any longer kept an agent idle for two minutes. Past this shorter wait
    # the caller re-checks the ledger and resubmits (agents' transactions are idempotent).
    commit_after_outage: float = 20.0
    connect: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, with exponential backoff between them."""

    attempts: int = 3
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")

    def backoff(self, retry_number: int) -> float:
        """Delay before retry number ``retry_number`` (0-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier**retry_number)


@dataclass(frozen=True)
class SubmitResult:
    result: bytes
    txid: str
    block_number: int


@dataclass(frozen=True)
class ChaincodeEvent:
    chaincode_id: str
    name: str
    payload: bytes
    txid: str
    block_number: int


def _open_channel(endpoint: str, tls_ca_pem: bytes | None, options: list) -> grpc.Channel:
    """A gRPC channel to ``endpoint``: TLS with ``tls_ca_pem`` as the root, plaintext without one."""
    if tls_ca_pem is None:
        return grpc.insecure_channel(endpoint, options=options)
    creds = grpc.ssl_channel_credentials(root_certificates=tls_ca_pem)
    return grpc.secure_channel(endpoint, creds, options=options)


class _SharedChannels:
    """gRPC channels shared by the gateways of one process, one per endpoint, TLS root and options.

    A channel is transport only (each call is signed by its gateway's own identity) and is
    thread-safe, so agents hosted in one process need not open one TLS connection, and one
    polling thread, each: 200 providers in a process would hold 200 connections to one peer.
    The last gateway to close a shared channel closes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple, grpc.Channel] = {}
        self._users: dict[int, int] = {}  # id(channel) -> gateways using it

    def acquire(self, endpoint: str, tls_ca_pem: bytes | None, options: list) -> grpc.Channel:
        key = (endpoint, tls_ca_pem, tuple(options))
        with self._lock:
            channel = self._open.get(key)
            if channel is None:
                channel = self._open[key] = _open_channel(endpoint, tls_ca_pem, options)
            self._users[id(channel)] = self._users.get(id(channel), 0) + 1
            return channel

    def release(self, channel: grpc.Channel) -> None:
        with self._lock:
            left = self._users.get(id(channel), 0) - 1
            if left > 0:
                self._users[id(channel)] = left
                return
            self._users.pop(id(channel), None)
            for key, open_channel in list(self._open.items()):
                if open_channel is channel:
                    del self._open[key]
        channel.close()


_SHARED = _SharedChannels()


def _wait_ready(channel: grpc.Channel, endpoint: str, timeout: float, *, tls: bool) -> None:
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        hint = " With TLS, also check the TLS CA certificate and the server name." if tls else ""
        raise GatewayConnectionError(
            f"could not connect to the Fabric gateway at {endpoint} within {timeout:g} s: "
            f"is the peer running and listening there?{hint}",
            endpoint=endpoint,
        ) from None


def _channel_options(max_message_bytes: int, server_name_override: str | None, extra) -> list[tuple]:
    opts: list[tuple] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # The peer's keepalive policy (peer.keepalive.minInterval, 60 s) closes connections that ping faster.
        ("grpc.keepalive_time_ms", 120_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 0),
        # Come back quickly after a peer restart (gRPC's default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 10_000),
    ]
    if server_name_override:
        opts.append(("grpc.ssl_target_name_override", server_name_override))
    opts.extend(extra)
    return opts


class Gateway:
    """A connection to one Fabric peer's gateway service, on behalf of one client identity.

    Create with :meth:`connect`; use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        identity: Identity,
        signer: Signer,
        *,
        endpoint: str,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        default_channel: str | None = None,
        default_chaincode: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self.identity = identity
        self.signer = signer
        self.endpoint = endpoint
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.default_channel = default_channel
        self.default_chaincode = default_chaincode
        self._sleep = sleep
        self._closed = False
        self._streams: set[ChaincodeEventStream] = set()
        self._lock = threading.Lock()
        self._close_channel: Callable[[], None] = channel.close  # a shared channel is released instead

    # ---------------------------------------------------------------- connecting
    @classmethod
    def connect(
        cls,
        target: str | ConnectionProfile | Path,
        identity: Identity | None = None,
        signer: Signer | None = None,
        *,
        tls_ca_pem: bytes | None = None,
        server_name_override: str | None = None,
        insecure: bool = False,
        peer: str | None = None,
        user: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        wait_ready: bool = True,
        grpc_options: Sequence[tuple] = (),
        check_key: bool = True,
        share_channel: bool = False,
    ) -> Gateway:
        """Open a gateway connection.

        ``target`` is ``"host:port"`` (then give ``identity``, ``signer`` and ``tls_ca_pem``, or
        ``insecure=True`` for plaintext, which a TLS-enabled peer refuses), or a :class:`ConnectionProfile`
        / a path to one: then ``user`` names the profile identity (default: the first), ``peer`` the peer
        (default: the first peer of the identity's MSP), and TLS settings come from the profile.

        With ``wait_ready`` (default) the connection is established now, and
        :class:`~fedcommittee.ledger.errors.ConnectionError` is raised if that does not happen within
        ``timeouts.connect`` seconds. ``check_key`` refuses a signer whose key is not the certificate's.
        ``share_channel``: use this process's one gRPC channel to the endpoint (same TLS root and
        options) instead of opening one; for many identities in one process (hosted agents).
        """
        timeouts = timeouts or Timeouts()
        default_channel = default_chaincode = None
        if isinstance(target, str | Path) and (
            isinstance(target, Path) or target.endswith((".yaml", ".yml"))
        ):
            target = load_profile(target)
        if isinstance(target, ConnectionProfile):
            profile = target
            if identity is None or signer is None:
                identity, signer = profile.identity(user).load()
            peer_cfg = profile.peer(peer, msp_id=identity.msp_id)
            endpoint = peer_cfg.endpoint
            if tls_ca_pem is None and not insecure:
                tls_ca_pem = peer_cfg.tls_ca_pem()
            server_name_override = server_name_override or peer_cfg.server_name_override
            default_channel, default_chaincode = profile.channel, profile.chaincode
        else:
            endpoint = target
        if identity is None or signer is None:
            raise ValueError("identity and signer are required")
        if check_key and not signer.matches(identity):
            raise ValueError(
                f"the signer's private key does not belong to the certificate of {identity.msp_id} "
                f"({identity.certificate.subject.rfc4514_string()})"
            )
        if tls_ca_pem is None and not insecure:
            raise ValueError(
                f"no TLS CA certificate for {endpoint}: pass tls_ca_pem (the org's TLS CA PEM) "
                "or insecure=True"
            )
        options = _channel_options(max_message_bytes, server_name_override, grpc_options)
        root = None if insecure else tls_ca_pem
        if share_channel:
            channel = _SHARED.acquire(endpoint, root, options)
            close_channel = functools.partial(_SHARED.release, channel)
        else:
            channel = _open_channel(endpoint, root, options)
            close_channel = channel.close
        if wait_ready:
            try:
                _wait_ready(channel, endpoint, timeouts.connect, tls=not insecure)
            except GatewayConnectionError:
                close_channel()
                raise
        gateway = cls(
            channel,
            identity,
            signer,
            endpoint=endpoint,
            timeouts=timeouts,
            retry=retry,
            default_channel=default_channel,
            default_chaincode=default_chaincode,
        )
        gateway._close_channel = close_channel
        return gateway

    def network(self, channel: str | None = None) -> Network:
        channel = channel or self.default_channel
        if not channel:
            raise ValueError("channel name required (no default channel in the profile)")
        return Network(self, channel)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            streams = list(self._streams)
        for s in streams:
            s.close()
        self._close_channel()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- calls
    def _call(
        self,
        rpc: str,
        request,
        *,
        timeout: float,
        retry_on: frozenset[grpc.StatusCode],
        on_error: Callable[[grpc.RpcError], GatewayError],
        after_outage: float | None = None,
    ):
        """``request``: the message, or a function making a fresh one for every try.

        ``after_outage``: once a try failed UNAVAILABLE (the connection to the peer was lost), the
        later tries get this deadline instead of ``timeout``, and their DEADLINE_EXCEEDED is final."""
        if self._closed:
            raise GatewayError("gateway is closed")
        method = getattr(self._stub, rpc)
        retry_number = 0
        outage = False
        while True:
            try:
                # A retry waits (within its deadline) for the channel to reconnect instead of failing fast.
                message = request() if callable(request) else request
                deadline = after_outage if outage and after_outage is not None else timeout
                return method(message, timeout=deadline, wait_for_ready=retry_number > 0 or None)
            except grpc.RpcError as err:
                code = _status.status_code(err)
                gave_up_after_outage = (
                    outage and after_outage is not None and code == grpc.StatusCode.DEADLINE_EXCEEDED
                )
                outage = outage or code == grpc.StatusCode.UNAVAILABLE
                retryable = code in retry_on and not gave_up_after_outage
                if retryable and retry_number + 1 < self.retry.attempts and not self._closed:
                    delay = self.retry.backoff(retry_number)
                    log.warning(
                        "%s to %s failed with %s (%s); retry %d in %.2fs",
                        rpc,
                        self.endpoint,
                        code.name,
                        _status.status_message(err),
                        retry_number + 1,
                        delay,
                    )
                    self._sleep(delay)
                    retry_number += 1
                    continue
                raise on_error(err) from err

    def _error(
        self, cls: type[GatewayError], stage: str, err: grpc.RpcError, txid: str | None
    ) -> GatewayError:
        code = _status.status_code(err)
        message = _status.status_message(err)
        details = _status.error_details(err)
        if stage in ("evaluate", "endorse"):
            found = chaincode_message([message, *(d.message for d in details)])
            if found is not None:
                status, cc_message = found
                return contract_error(
                    f"chaincode rejected the transaction at {stage}: {cc_message}",
                    chaincode_message=cc_message,
                    stage=stage,
                    status=status,
                    txid=txid,
                    code=code,
                    details=details,
                )
        return cls(f"{stage} failed at {self.endpoint}: {message}", txid=txid, code=code, details=details)


class Network:
    """A channel, reached through a :class:`Gateway`."""

    def __init__(self, gateway: Gateway, channel: str) -> None:
        self.gateway = gateway
        self.name = channel

    def contract(self, chaincode: str | None = None, contract_name: str | None = None) -> Contract:
        """The chaincode (default: the profile's); ``contract_name`` prefixes functions as ``Name:fn``."""
        chaincode = chaincode or self.gateway.default_chaincode
        if not chaincode:
            raise ValueError("chaincode name required (no default chaincode in the profile)")
        return Contract(self, chaincode, contract_name)

    def chaincode_events(
        self,
        chaincode: str | None = None,
        *,
        start_block: int | None = None,
        after_txid: str | None = None,
        checkpoint: Checkpoint | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        reconnect_policy: RetryPolicy | None = None,
    ) -> ChaincodeEventStream:
        """Iterate over the chaincode's events, in ledger order.

        Starts at the checkpoint's position if it has one, else at ``start_block`` (skipping events up to and
        including ``after_txid``), else at the next block to commit. An event is marked processed in
        ``checkpoint`` when the next one is requested (and its block as finished if it was the block's last),
        so a restarted listener resumes after the last event it finished with. When the stream breaks, it is
        re-opened from the last delivered event (``reconnect``), so nothing is lost or repeated.

        For a gap-free history give ``start_block`` (e.g. 0) or a checkpoint: "next commit" has no fixed
        position to come back to if the first connection breaks before any event arrived.
        """
        chaincode = chaincode or self.gateway.default_chaincode
        if not chaincode:
            raise ValueError("chaincode name required")
        if checkpoint is not None and checkpoint.block_number is not None:
            start_block, after_txid = checkpoint.position()
        return ChaincodeEventStream(
            self.gateway,
            self.name,
            chaincode,
            start_block=start_block,
            after_txid=after_txid or "",
            checkpoint=checkpoint,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
            reconnect_policy=reconnect_policy
            or RetryPolicy(attempts=1, initial_backoff=0.5, max_backoff=10.0),
        )


class Contract:
    """A chaincode on a channel: :meth:`submit` transactions and :meth:`evaluate` queries."""

    def __init__(self, network: Network, chaincode: str, contract_name: str | None = None) -> None:
        self.network = network
        self.chaincode = chaincode
        self.contract_name = contract_name

    @property
    def _gw(self) -> Gateway:
        return self.network.gateway

    def _proposal(self, fn: str, args: Sequence[Arg], transient: Mapping[str, bytes] | None):
        gw = self._gw
        return build_proposal(
            gw.identity,
            gw.signer,
            self.network.name,
            self.chaincode,
            transaction_function_name(fn, self.contract_name),
            args,
            transient,
        )

    def evaluate(
        self,
        fn: str,
        *args: Arg,
        transient: Mapping[str, bytes] | None = None,
        target_orgs: Sequence[str] | None = None,
    ) -> bytes:
        """Run a transaction function on a peer without ordering it; return its result payload."""
        gw = self._gw
        txids: list[str] = []

        def request() -> gateway_pb2.EvaluateRequest:
            # Every try is a new proposal: after a timeout the peer may still be running the earlier
            # one, and it refuses a transaction id it is running, which would end the query for good.
            prop = self._proposal(fn, args, transient)
            txids.append(prop.txid)
            return gateway_pb2.EvaluateRequest(
                transaction_id=prop.txid,
                channel_id=prop.channel,
                proposed_transaction=prop.signed_proposal,
                target_organizations=list(target_orgs or []),
            )

        response = gw._call(
            "Evaluate",
            request,
            timeout=gw.timeouts.evaluate,
            retry_on=_RETRY_IDEMPOTENT,
            on_error=lambda e: gw._error(EvaluateError, "evaluate", e, txids[-1]),
        )
        result = response.result
        if result.status >= 400:  # the gateway normally reports this as a gRPC error
            raise contract_error(
                f"chaincode rejected the transaction at evaluate: {result.message}",
                chaincode_message=result.message,
                stage="evaluate",
                status=result.status,
                txid=txids[-1],
            )
        return result.payload

    def submit(
        self,
        fn: str,
        *args: Arg,
        transient: Mapping[str, bytes] | None = None,
        endorsing_orgs: Sequence[str] | None = None,
    ) -> bytes:
        """Endorse, order and commit a transaction; return its result once committed VALID."""
        return self.submit_transaction(fn, *args, transient=transient, endorsing_orgs=endorsing_orgs).result

    def submit_transaction(
        self,
        fn: str,
        *args: Arg,
        transient: Mapping[str, bytes] | None = None,
        endorsing_orgs: Sequence[str] | None = None,
    ) -> SubmitResult:
        """Like :meth:`submit`, also returning the transaction id and the block it committed in."""
        gw = self._gw
        prop = self._proposal(fn, args, transient)
        txid, channel = prop.txid, prop.channel

        request = gateway_pb2.EndorseRequest(
            transaction_id=txid,
            channel_id=channel,
            proposed_transaction=prop.signed_proposal,
            endorsing_organizations=list(endorsing_orgs or []),
        )
        for retry_number in range(gw.retry.attempts):
            try:
                endorse_response = gw._call(
                    "Endorse",
                    request,
                    timeout=gw.timeouts.endorse,
                    retry_on=_NO_RETRY,
                    on_error=lambda e: gw._error(EndorseError, "endorse", e, txid),
                )
                break
            except EndorseError as err:
                # Nothing was ordered, so endorsing the same proposal again cannot commit it twice.
                if retry_number + 1 >= gw.retry.attempts or not _endorse_may_succeed_later(err, gw.identity):
                    raise
                time.sleep(gw.retry.backoff(retry_number))
        prepared = endorse_response.prepared_transaction
        try:
            payload = common_pb2.Payload.FromString(prepared.payload)
            header_txid = common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id
            result = transaction_result(prepared)
        except Exception as exc:
            raise EndorseError(
                f"gateway returned a malformed prepared transaction: {exc}", txid=txid
            ) from exc
        if header_txid != txid:
            raise EndorseError(
                f"gateway returned a prepared transaction for txid {header_txid!r}, not the proposal's",
                txid=txid,
            )

        envelope = sign_envelope(prepared, gw.signer)
        gw._call(
            "Submit",
            gateway_pb2.SubmitRequest(transaction_id=txid, channel_id=channel, prepared_transaction=envelope),
            timeout=gw.timeouts.submit,
            retry_on=_RETRY_SUBMIT,
            on_error=lambda e: gw._error(SubmitError, "submit", e, txid),
        )

        block_number = self.commit_status(txid)
        return SubmitResult(result=result, txid=txid, block_number=block_number)

    def commit_status(self, txid: str) -> int:
        """Wait for ``txid`` to commit; return its block number, or raise CommitError if it is not VALID."""
        gw = self._gw
        status = gw._call(
            "CommitStatus",
            commit_status_request(gw.identity, gw.signer, self.network.name, txid),
            timeout=gw.timeouts.commit_status,
            retry_on=_RETRY_IDEMPOTENT,
            on_error=lambda e: gw._error(CommitStatusError, "commit status", e, txid),
            after_outage=gw.timeouts.commit_after_outage,
        )
        if status.result != _VALID:
            try:
                name = transaction_pb2.TxValidationCode.Name(status.result)
            except ValueError:
                name = f"UNKNOWN_CODE_{status.result}"
            raise CommitError(txid, name, code_value=status.result, block_number=status.block_number)
        return status.block_number


def _endorse_may_succeed_later(err: EndorseError, identity: Identity) -> bool:
    """Whether an endorsement failure looks transient rather than a verdict of the chaincode.

    - The gateway returns once its own peer has committed, but another org's peer can be a block
      behind and reject a proposal that reads the new state. Then only other orgs' peers report
      errors: the gateway's own org endorsed. A real chaincode rejection fails on every peer,
      the gateway's own first.
    - Right after start-up (or while a peer restarts) the gateway cannot plan an endorsement yet.
    - The gateway peer itself was briefly unreachable.
    """
    if err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION):
        return True
    if err.code == grpc.StatusCode.ABORTED and err.details:
        return all(detail.msp_id != identity.msp_id for detail in err.details)
    return False


@dataclass
class _Position:
    block: int | None
    txid: str = ""


@dataclass(eq=False)
class ChaincodeEventStream:
    """Iterator over chaincode events; re-opens the stream after failures. Close it (or the gateway).

    Meant for one consumer thread; :meth:`close` may be called from any thread.
    """

    gateway: Gateway
    channel: str
    chaincode: str
    start_block: int | None = None
    after_txid: str = ""
    checkpoint: Checkpoint | None = None
    reconnect: bool = True
    max_reconnects: int | None = None
    reconnect_policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self._pos = _Position(self.start_block, self.after_txid)
        self._pending: deque[ChaincodeEvent] = deque()
        self._delivered: ChaincodeEvent | None = None
        self._call = None
        self._closed = False
        self._failures = 0
        self.reconnects = 0
        with self.gateway._lock:
            if self.gateway._closed:
                raise GatewayError("gateway is closed")
            self.gateway._streams.add(self)

    @property
    def position(self) -> tuple[int | None, str]:
        """(block to resume from, last delivered txid in it) — what a reconnect would ask for."""
        return self._pos.block, self._pos.txid

    def __iter__(self) -> Iterator[ChaincodeEvent]:
        return self

    def ack(self) -> None:
        """Mark the last delivered event processed now (otherwise done when the next one is requested)."""
        ev = self._delivered
        if ev is None:
            return
        self._delivered = None
        if self._pending:
            self._pos = _Position(ev.block_number, ev.txid)
        else:  # the block's last matching event: the whole block is done
            self._pos = _Position(ev.block_number + 1, "")
        if self.checkpoint is not None:
            self.checkpoint.save(self._pos.block, self._pos.txid)

    def _open(self) -> None:
        gw = self.gateway
        request = chaincode_events_request(
            gw.identity,
            gw.signer,
            self.channel,
            self.chaincode,
            start_block=self._pos.block,
            after_txid=self._pos.txid or None,
        )
        self._requested = _Position(self._pos.block, self._pos.txid)
        self._call = gw._stub.ChaincodeEvents(request)
        if self._closed:  # close() ran while the call was being opened
            self._call.cancel()

    def _accept(self, response: gateway_pb2.ChaincodeEventsResponse) -> list[ChaincodeEvent]:
        block = response.block_number
        req = self._requested
        if req.block is not None and block < req.block:
            return []  # older than asked for: never re-deliver
        events = [
            ChaincodeEvent(e.chaincode_id, e.event_name, e.payload, e.tx_id, block)
            for e in response.events
            if e.chaincode_id == self.chaincode
        ]
        if req.txid and block == req.block:
            ids = [e.txid for e in events]
            if req.txid in ids:  # the peer did not skip up to after_transaction_id: do it here
                events = events[ids.index(req.txid) + 1 :]
        return events

    def __next__(self) -> ChaincodeEvent:
        self.ack()
        while not self._pending:
            if self._closed:
                raise StopIteration
            if self._call is None:
                self._open()
            try:
                response = next(self._call)
            except StopIteration:
                err: grpc.RpcError | None = None
            except grpc.RpcError as e:
                err = e
            else:
                self._failures = 0
                events = self._accept(response)
                if events:
                    self._pending.extend(events)
                    # A later reconnect must not re-ask for older blocks even before anything is acked.
                    if self._pos.block is None:
                        self._pos = _Position(response.block_number, "")
                continue
            self._handle_break(err)
        ev = self._pending.popleft()
        self._delivered = ev
        return ev

    def _handle_break(self, err: grpc.RpcError | None) -> None:
        self._call = None
        if self._closed or self.gateway.closed:
            self._closed = True
            raise StopIteration
        code = _status.status_code(err) if err is not None else grpc.StatusCode.UNAVAILABLE
        message = _status.status_message(err) if err is not None else "stream ended by the server"
        retryable = code in _EVENTS_RECONNECT
        if not (self.reconnect and retryable) or (
            self.max_reconnects is not None and self.reconnects >= self.max_reconnects
        ):
            self._closed = True
            raise ChaincodeEventsError(
                f"chaincode event stream from {self.gateway.endpoint} failed: {message}",
                code=code,
                details=_status.error_details(err) if err is not None else (),
            )
        delay = self.reconnect_policy.backoff(self._failures)
        self._failures += 1
        self.reconnects += 1
        log.warning(
            "chaincode event stream from %s broke (%s: %s); reconnecting from block %s after %r in %.2fs",
            self.gateway.endpoint,
            code.name,
            message,
            self._pos.block,
            self._pos.txid,
            delay,
        )
        self.gateway._sleep(delay)

    def close(self, *, ack_last: bool = False) -> None:
        """Stop the stream. With ``ack_last`` the last delivered event is first marked processed.

        Leaving a ``with`` block normally acks it; leaving it by an exception does not (the event is
        delivered again after a restart: at-least-once, never lost).
        """
        if ack_last and not self._closed:
            self.ack()
        self._closed = True
        call = self._call
        if call is not None:
            call.cancel()
        with self.gateway._lock:
            self.gateway._streams.discard(self)

    def __enter__(self) -> ChaincodeEventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close(ack_last=exc[0] is None)
