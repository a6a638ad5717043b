from __future__ import annotations

import socket
import threading
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import transaction_pb2

from fedcommittee.ledger import (
    CommitError,
    CommitStatusError,
    ConnectionError,
    ContractError,
    EndorseError,
    EvaluateError,
    Gateway,
    GatewayError,
    Identity,
    Signer,
    SubmitError,
    Timeouts,
)
from fedcommittee.ledger.identity import CURVE_ORDERS

from .conftest import FAST_RETRY, FAST_TIMEOUTS
from .fake_gateway import FakeServer, Outcome

pytestmark = pytest.mark.timeout(30)


def test_evaluate_returns_chaincode_payload(gateway, fake):
    fake.state["model-1"] = b'{"id":"model-1"}'
    contract = gateway.network("fedchannel").contract("fedcommittee")
    assert contract.evaluate("Get", "model-1") == b'{"id":"model-1"}'
    assert contract.evaluate("WhoAmI") == b"Org1MSP"
    assert fake.calls["Evaluate"] == 2
    assert fake.tx_status == {}  # nothing was ordered


def test_contract_name_and_transient_reach_chaincode(gateway):
    contract = gateway.network("fedchannel").contract("fedcommittee", contract_name="Registry")
    out = contract.evaluate("Echo", "a", b"b", transient={"k": b"v"})
    assert out == b"Registry:Echo|a|b|k=v"


def test_submit_full_flow_commits_and_returns_result(gateway, fake):
    contract = gateway.network("fedchannel").contract("fedcommittee")
    res = contract.submit_transaction("Put", "model-1", b"weights-cid")
    assert res.result == b"weights-cid"
    assert fake.state["model-1"] == b"weights-cid"
    code, block = fake.tx_status[res.txid]
    assert code == transaction_pb2.TxValidationCode.VALID
    assert res.block_number == block == 1
    assert fake.calls == {"Evaluate": 0, "Endorse": 1, "Submit": 1, "CommitStatus": 1, "Events": 0}
    # the submitted envelope is signed by the client over the prepared payload
    env = common_pb2.Envelope.FromString(fake.submitted_envelopes[0])
    assert env.signature
    # and the value is readable afterwards
    assert contract.submit("Put", "model-2", "x") == b"x"
    assert contract.evaluate("Get", "model-2") == b"x"


def test_submit_waits_for_delayed_commit(gateway, fake):
    fake.commit_delay = 0.3
    contract = gateway.network("fedchannel").contract("fedcommittee")
    t0 = time.monotonic()
    res = contract.submit_transaction("Put", "k", "v")
    assert time.monotonic() - t0 >= 0.25
    assert fake.tx_status[res.txid][1] == res.block_number


def test_chaincode_error_on_evaluate_carries_message_and_txid(gateway):
    contract = gateway.network("fedchannel").contract("fedcommittee")
    with pytest.raises(ContractError) as info:
        contract.evaluate("Get", "missing-model")
    err = info.value
    assert err.chaincode_message == "the asset missing-model does not exist"
    assert err.status == 500
    assert err.stage == "evaluate"
    assert len(err.txid) == 64
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.details[0].msp_id == "Org1MSP"
    assert err.details[0].address == "peer0.org1.example.com:7051"
    assert "missing-model does not exist" in str(err)


def test_chaincode_error_on_endorse_found_in_error_details(gateway, fake):
    # The gateway's status message for endorse is generic; the chaincode message is only in the details.
    contract = gateway.network("fedchannel").contract("fedcommittee")
    with pytest.raises(ContractError) as info:
        contract.submit("Get", "nope")
    err = info.value
    assert isinstance(err, EndorseError)
    assert err.stage == "endorse"
    assert err.chaincode_message == "the asset nope does not exist"
    assert err.code == grpc.StatusCode.ABORTED
    assert fake.calls["Submit"] == 0
    assert err.txid and err.txid not in fake.tx_status


def test_invalid_commit_raises_commit_error_with_code_name(gateway, fake):
    fake.validation_codes["Put"] = transaction_pb2.TxValidationCode.MVCC_READ_CONFLICT
    contract = gateway.network("fedchannel").contract("fedcommittee")
    with pytest.raises(CommitError) as info:
        contract.submit("Put", "k", "v")
    err = info.value
    assert err.validation_code == "MVCC_READ_CONFLICT"
    assert err.code_value == 11
    assert fake.tx_status[err.txid] == (11, err.block_number)
    assert "MVCC_READ_CONFLICT" in str(err) and err.txid in str(err)
    assert "k" not in fake.state


def test_evaluate_retries_unavailable(gateway, fake):
    fake.fail_next["Evaluate"].extend([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
    fake.state["a"] = b"1"
    assert gateway.network("fedchannel").contract("fedcommittee").evaluate("Get", "a") == b"1"
    assert fake.calls["Evaluate"] == 3


def test_evaluate_retry_is_a_new_proposal(gateway, fake, monkeypatch):
    # A peer still running a timed-out query refuses its transaction id again ("channel exists").
    txids: list[str] = []
    evaluate = gateway._stub.Evaluate

    def recording(request, **kwargs):
        txids.append(request.transaction_id)
        return evaluate(request, **kwargs)

    monkeypatch.setattr(gateway._stub, "Evaluate", recording)
    fake.fail_next["Evaluate"].extend([grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE])
    fake.state["a"] = b"1"
    assert gateway.network("fedchannel").contract("fedcommittee").evaluate("Get", "a") == b"1"
    assert len(txids) == 3 and len(set(txids)) == 3


def test_evaluate_retry_waits_for_peer_restart(fake, org):
    srv = FakeServer(fake)
    port = srv.port
    gw = Gateway.connect(
        srv.endpoint,
        org.identity,
        org.signer,
        insecure=True,
        timeouts=Timeouts(evaluate=3.0),
        retry=FAST_RETRY,
    )
    srv.stop()
    restarted = []
    timer = threading.Timer(0.3, lambda: restarted.append(FakeServer(fake, port=port)))
    timer.start()
    try:
        # first attempt fails at once (peer down); the retry waits for the channel to come back
        assert gw.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI") == b"Org1MSP"
    finally:
        timer.join()
        gw.close()
        for r in restarted:
            r.stop()


def test_evaluate_gives_up_after_attempts(gateway, fake):
    fake.fail_next["Evaluate"].extend([grpc.StatusCode.UNAVAILABLE] * 3)
    with pytest.raises(EvaluateError) as info:
        gateway.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert fake.calls["Evaluate"] == 3


def test_evaluate_does_not_retry_other_errors(gateway, fake):
    fake.fail_next["Evaluate"].append(grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(EvaluateError):
        gateway.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")
    assert fake.calls["Evaluate"] == 1


def test_endorse_is_retried_when_the_gateway_is_unavailable(gateway, fake):
    # Nothing was ordered, so endorsing the same proposal again is safe: one transaction results.
    fake.fail_next["Endorse"].append(grpc.StatusCode.UNAVAILABLE)
    res = gateway.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert fake.calls["Endorse"] == 2
    assert fake.calls["Submit"] == 1
    assert fake.tx_status[res.txid][0] == transaction_pb2.TxValidationCode.VALID


def test_endorse_is_retried_when_only_another_orgs_peer_rejects(gateway, fake):
    # Another org's peer a block behind the gateway's: it rejects, the gateway's own org does not.
    fake.lagging_remote_rejections = 1
    res = gateway.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert fake.calls["Endorse"] == 2
    assert fake.tx_status[res.txid][0] == transaction_pb2.TxValidationCode.VALID


def test_a_chaincode_rejection_by_the_gateways_own_org_is_not_retried(gateway, fake):
    with pytest.raises(ContractError):
        gateway.network("fedchannel").contract("fedcommittee").submit("Get", "nope")
    assert fake.calls["Endorse"] == 1
    assert fake.calls["Submit"] == 0


def test_endorse_gives_up_after_the_retry_budget(gateway, fake):
    fake.fail_next["Endorse"].extend([grpc.StatusCode.UNAVAILABLE] * 5)
    with pytest.raises(EndorseError) as info:
        gateway.network("fedchannel").contract("fedcommittee").submit("Put", "k", "v")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert fake.calls["Endorse"] == gateway.retry.attempts
    assert fake.calls["Submit"] == 0


def test_submit_retry_resends_the_same_signed_envelope(gateway, fake):
    fake.fail_next["Submit"].append(grpc.StatusCode.UNAVAILABLE)
    res = gateway.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert fake.calls["Endorse"] == 1
    assert fake.calls["Submit"] == 2
    assert len(fake.submitted_envelopes) == 1  # the failed attempt never reached the "orderer"
    assert fake.tx_status[res.txid][0] == transaction_pb2.TxValidationCode.VALID


def test_submit_retry_after_lost_response_commits_once(gateway, fake):
    # The first Submit reaches the orderer but its reply is lost: the client resends the identical envelope,
    # which can only ever commit once (same txid).
    fake.lose_submit_replies = 1
    res = gateway.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert fake.calls["Endorse"] == 1
    assert fake.calls["Submit"] == 2
    assert len(fake.submitted_envelopes) == 2
    assert fake.submitted_envelopes[0] == fake.submitted_envelopes[1]
    assert fake.tx_status[res.txid] == (transaction_pb2.TxValidationCode.VALID, 1)
    assert len(fake.blocks) == 2  # genesis + exactly one block for the transaction
    assert fake.state["k"] == b"v"


def test_submit_not_retried_on_deadline(gateway, fake):
    fake.fail_next["Submit"].append(grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(SubmitError) as info:
        gateway.network("fedchannel").contract("fedcommittee").submit("Put", "k", "v")
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert fake.calls["Submit"] == 1


def test_commit_status_retried(gateway, fake):
    fake.fail_next["CommitStatus"].extend(
        [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED]
    )
    res = gateway.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert fake.calls["CommitStatus"] == 3
    assert res.block_number == 1


def test_commit_status_after_a_lost_connection_waits_briefly_then_hands_back(server, org, fake):
    # The peer dropped the connection while the client waited (it restarted) and the restarted node
    # never orders the transaction: the client asks once more, with the short deadline, and then
    # reports the deadline instead of waiting the full commit_status deadline again.
    timeouts = Timeouts(evaluate=5, endorse=5, submit=5, commit_status=20, commit_after_outage=0.5, connect=5)
    gw = Gateway.connect(
        server.endpoint, org.identity, org.signer, insecure=True, timeouts=timeouts, retry=FAST_RETRY
    )
    fake.lose_accepted = 1
    fake.fail_next["CommitStatus"].append(grpc.StatusCode.UNAVAILABLE)
    with gw, pytest.raises(CommitStatusError) as info:
        gw.network("fedchannel").contract("fedcommittee").submit_transaction("Put", "k", "v")
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert fake.calls["CommitStatus"] == 2  # not the third try a deadline without an outage gets
    first, second = fake.commit_status_deadlines
    assert 10 < first < 21 and second < 0.6  # (gRPC rounds deadlines up a little)
    assert "k" not in fake.state  # nothing committed: the caller re-checks and resubmits


def test_peer_rejects_signature_from_wrong_key(server, org, fake):
    # The certificate says one key, the signer holds another: the fake peer must refuse it.
    wrong = Signer(org.issue_user()[1])
    with pytest.raises(ValueError, match="does not belong to the certificate"):
        Gateway.connect(server.endpoint, org.identity, wrong, insecure=True)
    gw = Gateway.connect(
        server.endpoint, org.identity, wrong, insecure=True, retry=FAST_RETRY, check_key=False
    )
    with gw, pytest.raises(EvaluateError) as info:
        gw.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "signature" in info.value.message


class _HighSSigner(Signer):
    """Produces valid ECDSA signatures but deliberately with s > n/2."""

    def sign_digest(self, digest: bytes) -> bytes:
        r, s = decode_dss_signature(super().sign_digest(digest))
        return encode_dss_signature(r, CURVE_ORDERS["secp256r1"] - s)


def test_peer_rejects_high_s(server, org):
    gw = Gateway.connect(server.endpoint, org.identity, _HighSSigner(org.user_key), insecure=True)
    with gw, pytest.raises(EvaluateError, match="Invalid S"):
        gw.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")


def test_peer_rejects_non_client_identity(server, org):
    cert_pem, key = org.issue_user(ou="peer")
    gw = Gateway.connect(server.endpoint, Identity("Org1MSP", cert_pem), Signer(key), insecure=True)
    with gw, pytest.raises(EvaluateError, match="not a client"):
        gw.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")


def test_unknown_channel_and_chaincode(gateway):
    with pytest.raises(EvaluateError, match="channel mismatch"):
        gateway.network("otherchannel").contract("fedcommittee").evaluate("WhoAmI")
    with pytest.raises(EvaluateError, match="not found") as info:
        gateway.network("fedchannel").contract("nocc").evaluate("WhoAmI")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_fails_clearly_within_timeout(org):
    endpoint = f"127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        Gateway.connect(
            endpoint,
            org.identity,
            org.signer,
            tls_ca_pem=org.tls_ca_pem,
            timeouts=Timeouts(connect=1.0),
        )
    elapsed = time.monotonic() - t0
    assert elapsed < 3.0
    assert info.value.endpoint == endpoint
    assert endpoint in str(info.value) and "within 1 s" in str(info.value)
    assert isinstance(info.value, GatewayError)


def test_tls_requires_ca_or_explicit_insecure(org):
    with pytest.raises(ValueError, match="TLS CA"):
        Gateway.connect("127.0.0.1:7051", org.identity, org.signer)


def test_tls_connection_with_server_name_override(fake, org):
    srv = FakeServer(fake, tls=org.tls_server)
    try:
        with Gateway.connect(
            srv.endpoint,
            org.identity,
            org.signer,
            tls_ca_pem=org.tls_ca_pem,
            server_name_override="peer0.org1.example.com",
            timeouts=FAST_TIMEOUTS,
        ) as gw:
            assert gw.network("fedchannel").contract("fedcommittee").submit("Put", "k", "tls") == b"tls"
        # Without the override the certificate (no IP SAN) does not match 127.0.0.1: no connection.
        with pytest.raises(ConnectionError):
            Gateway.connect(
                srv.endpoint,
                org.identity,
                org.signer,
                tls_ca_pem=org.tls_ca_pem,
                timeouts=Timeouts(connect=1.0),
            )
    finally:
        srv.stop()


def test_closed_gateway_refuses_calls(server, org):
    gw = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True)
    contract = gw.network("fedchannel").contract("fedcommittee")
    gw.close()
    gw.close()  # idempotent
    with pytest.raises(GatewayError, match="closed"):
        contract.evaluate("WhoAmI")


def test_shared_channel_one_connection_per_endpoint_each_identity_signs(server, org, fake):
    # Agents hosted in one process share one channel to their peer; each call still carries (and
    # is signed by) its own gateway's identity, and the channel lives until the last one closes.
    fake.handlers["Creator"] = lambda inv, state: Outcome(payload=inv.creator.id_bytes)
    other_pem, other_key = org.issue_user()
    first = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True, share_channel=True)
    second = Gateway.connect(
        server.endpoint, Identity("Org1MSP", other_pem), Signer(other_key), insecure=True, share_channel=True
    )
    alone = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True)
    assert first._channel is second._channel
    assert alone._channel is not first._channel
    creators = {
        gw: gw.network("fedchannel").contract("fedcommittee").evaluate("Creator") for gw in (first, second)
    }
    assert creators[first] == org.identity.cert_pem
    assert creators[second] == other_pem
    first.close()
    assert second.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI") == b"Org1MSP"
    time.sleep(0.3)  # grpc's ready-future poller checks the channel once more within 0.2 s
    second.close()
    with pytest.raises(ValueError, match="closed"):  # the last one closed the shared channel
        gateway_pb2_grpc.GatewayStub(second._channel).Evaluate(gateway_pb2.EvaluateRequest(), timeout=1)
    third = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True, share_channel=True)
    with third, alone:
        assert third._channel is not second._channel
        assert third.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI") == b"Org1MSP"
