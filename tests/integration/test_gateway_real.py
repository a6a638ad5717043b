"""The Python Gateway client against real Fabric peers: events, checkpoints, errors, unreachable peers.

The transactions are role grants and revocations of one user no other test uses, so every one of them
is valid and emits exactly one chaincode event (RoleGranted / RoleRevoked).
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from fabric_protos.common import ledger_pb2

from fedcommittee.ledger import (
    Checkpoint,
    ContractError,
    EvaluateError,
    FedcommitteeClient,
    Gateway,
    GatewayConnectionError,
    RetryPolicy,
    Timeouts,
    decode_event,
    load_profile,
)
from tests.integration.network import free_port

ADMIN = "org3-admin"
# The only profile users no other integration module or experiment config uses (drills.py,
# configs/*.yaml, test_chaincode_flow.py): this module flips their publisher / committee roles.
SUBJECT = "org3-user5"  # publisher role
BATCH_SUBJECTS = ["org3-user5", "org3-user6"]  # committee role: transactions sent together, one block
N_EVENTS = 12


@pytest.fixture(scope="module")
def gateways(fabric):
    opened: dict[str, Gateway] = {}

    def get(user: str) -> Gateway:
        if user not in opened:
            opened[user] = Gateway.connect(fabric["connection_profile"], user=user)
        return opened[user]

    yield get
    for gw in opened.values():
        gw.close()


def height(gw: Gateway) -> int:
    qscc = gw.network().contract("qscc")
    return ledger_pb2.BlockchainInfo.FromString(qscc.evaluate("GetChainInfo", gw.default_channel)).height


def flip_roles(gateways, count: int) -> list[tuple[str, str]]:
    """Submit ``count`` alternating grants/revocations of one role; return (txid, event name) of each."""
    admin = FedcommitteeClient(gateways(ADMIN).network().contract())
    me = FedcommitteeClient(gateways(SUBJECT).network().contract()).who_am_i()
    held = "publisher" in me["account"]["roles"]
    sent = []
    for _ in range(count):
        if held:
            sent.append((admin.revoke_role(me["identity"], "publisher").txid, "RoleRevoked"))
        else:
            sent.append((admin.grant_role(me["identity"], "publisher").txid, "RoleGranted"))
        held = not held
    return sent


def take(stream, n: int, timeout: float = 60.0) -> list:
    """The next ``n`` events; fails (instead of hanging) if they do not all arrive within ``timeout``."""
    timer = threading.Timer(timeout, stream.close)  # close() may come from another thread
    timer.start()
    got: list = []
    try:
        for _ in range(n):
            try:
                got.append(next(stream))
            except StopIteration:
                pytest.fail(f"only {len(got)} of {n} chaincode events arrived within {timeout:g} s")
    finally:
        timer.cancel()
    return got


def test_event_stream_delivers_every_event_in_order(gateways):
    listener = gateways("org1-user1")  # another org's peer than the submitter's
    start = height(listener)
    with listener.network().chaincode_events(start_block=start) as stream:
        sent = flip_roles(gateways, N_EVENTS)
        got = take(stream, N_EVENTS)
    assert [(e.txid, e.name) for e in got] == sent
    blocks = [e.block_number for e in got]
    assert blocks == sorted(blocks) and blocks[0] >= start
    for ev in got:
        payload = decode_event(ev)
        assert payload["type"] == ev.name
        assert payload["txId"] == ev.txid
        assert payload["role"] == "publisher"
        assert ev.chaincode_id == "fedcommittee"


def test_event_stream_resumes_from_checkpoint_without_loss_or_duplicates(gateways, fabric, tmp_path):
    path = tmp_path / "events.json"
    listener = gateways("org2-user1")
    start = height(listener)
    sent = flip_roles(gateways, N_EVENTS)
    half = N_EVENTS // 2 - 1

    with listener.network().chaincode_events(start_block=start, checkpoint=Checkpoint(path)) as stream:
        first = take(stream, half)
    saved = json.loads(path.read_text())
    assert saved["block_number"] >= first[-1].block_number

    # A fresh process: a new connection, the checkpoint read back from its file, no start block.
    again = Gateway.connect(fabric["connection_profile"], user="org2-user1")
    with again, again.network().chaincode_events(checkpoint=Checkpoint(path)) as stream:
        rest = take(stream, N_EVENTS - half)
    got = [(e.txid, e.name) for e in first + rest]
    assert got == sent
    assert len({txid for txid, _ in got}) == N_EVENTS


def test_chaincode_error_surfaces_with_its_message_and_txid(gateways):
    admin = FedcommitteeClient(gateways(ADMIN).network().contract())
    key = FedcommitteeClient(gateways(SUBJECT).network().contract()).who_am_i()["identity"]

    with pytest.raises(ContractError) as excinfo:
        admin.grant_role(key, "overlord")
    err = excinfo.value
    assert err.chaincode_message == 'role: "overlord" is not one of publisher, provider, committee'
    assert err.stage == "endorse"
    assert re.fullmatch(r"[0-9a-f]{64}", err.txid)
    assert err.txid in str(err) and err.chaincode_message in str(err)

    with pytest.raises(ContractError) as excinfo:
        admin.get_model("no-such-model")
    assert excinfo.value.chaincode_message == "NOT_FOUND: model no-such-model not found"
    assert excinfo.value.stage == "evaluate"
    assert re.fullmatch(r"[0-9a-f]{64}", excinfo.value.txid)


def test_unreachable_peer_fails_clearly_within_the_timeout(fabric):
    profile = load_profile(fabric["connection_profile"])
    identity, signer = profile.identity("org1-user1").load()
    tls_ca = profile.peer(msp_id=identity.msp_id).tls_ca_pem()
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there

    started = time.monotonic()
    with pytest.raises(GatewayConnectionError) as excinfo:
        Gateway.connect(endpoint, identity, signer, tls_ca_pem=tls_ca, timeouts=Timeouts(connect=2.0))
    assert time.monotonic() - started < 2.0 + 3.0
    assert endpoint in str(excinfo.value) and "could not connect" in str(excinfo.value)
    assert isinstance(excinfo.value, ConnectionError)

    # Without waiting at connect, the first call fails with UNAVAILABLE after its bounded retries.
    gw = Gateway.connect(
        endpoint,
        identity,
        signer,
        tls_ca_pem=tls_ca,
        wait_ready=False,
        timeouts=Timeouts(evaluate=1.0),
        retry=RetryPolicy(attempts=2, initial_backoff=0.1),
    )
    started = time.monotonic()
    with gw, pytest.raises(EvaluateError) as excinfo:
        gw.network("fedchannel").contract("fedcommittee").evaluate("WhoAmI")
    assert time.monotonic() - started < 2 * 1.0 + 0.1 + 3.0
    assert excinfo.value.code is not None and excinfo.value.code.name in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert endpoint in str(excinfo.value)


def test_checkpoint_inside_a_block_resumes_after_the_last_processed_event(gateways, fabric, tmp_path):
    """Several events in one block; stop after the first: the rest of that block must still come."""
    admin = FedcommitteeClient(gateways(ADMIN).network().contract())
    subjects = [FedcommitteeClient(gateways(u).network().contract()).who_am_i() for u in BATCH_SUBJECTS]
    listener = gateways("org1-user2")
    start = height(listener)

    def flip(me: dict) -> None:
        if "committee" in me["account"]["roles"]:
            admin.revoke_role(me["identity"], "committee")
            me["account"]["roles"].remove("committee")
        else:
            admin.grant_role(me["identity"], "committee")
            me["account"]["roles"].append("committee")

    # Send the transactions at once so the orderer cuts them into one block (BatchTimeout 30 ms);
    # on a busy machine that may take a few tries.
    events = []
    for _ in range(5):
        threads = [threading.Thread(target=flip, args=(me,)) for me in subjects]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with listener.network().chaincode_events(start_block=start) as stream:
            events = take(stream, len(subjects))
        if len({e.block_number for e in events}) == 1:
            break
        start = events[-1].block_number + 1
    else:
        pytest.skip("the orderer never put the concurrent transactions into one block")

    path = tmp_path / "events.json"
    with listener.network().chaincode_events(start_block=start, checkpoint=Checkpoint(path)) as stream:
        first = take(stream, 1)
    saved = json.loads(path.read_text())
    assert saved == {"block_number": first[0].block_number, "txid": first[0].txid}  # mid-block position

    again = Gateway.connect(fabric["connection_profile"], user="org1-user2")
    with again, again.network().chaincode_events(checkpoint=Checkpoint(path)) as stream:
        rest = take(stream, len(subjects) - 1)
    assert [e.txid for e in first + rest] == [e.txid for e in events]
