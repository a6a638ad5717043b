from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest

from fedcommittee.ledger import ChaincodeEventsError, Checkpoint, Gateway, RetryPolicy, Signer

from .conftest import FAST_RETRY, FAST_TIMEOUTS
from .fake_gateway import FakeServer

pytestmark = pytest.mark.timeout(30)

QUICK = RetryPolicy(attempts=1, initial_backoff=0.02, max_backoff=0.1)
CC = "fedcommittee"


def _populate(fake, blocks: int = 6, per_block: int = 3) -> list[tuple[int, str, bytes]]:
    """Blocks of events (plus noise from another chaincode); returns the expected (block, name, payload)."""
    expected = []
    for b in range(blocks):
        events = []
        for i in range(per_block):
            events.append((CC, f"Ev{i}", f"{b}/{i}".encode()))
            if i == 1:
                events.append(("othercc", "Noise", b"x"))
        number = fake.add_block(events)
        expected += [(number, f"Ev{i}", f"{b}/{i}".encode()) for i in range(per_block)]
        if b == 2:
            fake.add_block([("othercc", "Noise", b"y")])  # a block with nothing for us
    return expected


def _take(stream, n: int) -> list:
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


def _key(ev):
    return (ev.block_number, ev.name, ev.payload)


def test_stream_delivers_every_event_in_order(gateway, fake):
    expected = _populate(fake)
    with gateway.network("fedchannel").chaincode_events(CC, start_block=0) as stream:
        got = _take(stream, len(expected))
    assert [_key(e) for e in got] == expected
    assert all(e.chaincode_id == CC and len(e.txid) == 64 for e in got)
    assert len({e.txid for e in got}) == len(got)


def test_live_events_from_submitted_transactions(gateway, fake):
    network = gateway.network("fedchannel")
    contract = network.contract(CC)
    stream = network.chaincode_events(CC, start_block=1)
    results = []
    for i in range(3):
        results.append(contract.submit_transaction("Put", f"k{i}", b"v"))
    got = _take(stream, 3)
    stream.close()
    assert [(e.txid, e.block_number, e.name, e.payload) for e in got] == [
        (r.txid, r.block_number, "Put", f"k{i}".encode()) for i, r in enumerate(results)
    ]


def test_next_commit_start_skips_history(gateway, fake):
    _populate(fake, blocks=2)
    network = gateway.network("fedchannel")
    stream = network.chaincode_events(CC)  # from the next block to commit
    q: queue.Queue = queue.Queue()
    t = threading.Thread(target=lambda: q.put(next(stream)), daemon=True)
    t.start()
    time.sleep(0.2)  # let the stream open before the new block commits
    res = network.contract(CC).submit_transaction("Put", "fresh", b"1")
    ev = q.get(timeout=5)
    stream.close()
    assert (ev.txid, ev.payload) == (res.txid, b"fresh")


def test_reconnects_after_disconnect_mid_stream_without_loss_or_duplicates(gateway, fake):
    expected = _populate(fake)
    fake.events_drop_plan.extend([2, 0, 1])  # break after 2 responses, then at once, then after 1
    stream = gateway.network("fedchannel").chaincode_events(CC, start_block=0, reconnect_policy=QUICK)
    got = _take(stream, len(expected))
    stream.close()
    assert [_key(e) for e in got] == expected
    assert stream.reconnects == 3
    # each reconnect resumed right after the last delivered block
    starts = [r.start_position.specified.number for r in fake.events_requests]
    assert starts[0] == 0
    assert starts[1] == got[2 * 3 - 1].block_number + 1
    assert starts[2] == starts[1]
    assert starts[3] == got[3 * 3 - 1].block_number + 1


def test_reconnect_after_injected_unavailable_on_open(gateway, fake):
    expected = _populate(fake, blocks=2)
    fake.fail_next["Events"].extend([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE])
    with gateway.network("fedchannel").chaincode_events(CC, start_block=0, reconnect_policy=QUICK) as stream:
        got = _take(stream, len(expected))
    assert [_key(e) for e in got] == expected
    assert stream.reconnects == 2


def test_agent_restart_resumes_from_file_checkpoint_mid_block(server, fake, org, tmp_path):
    expected = _populate(fake, blocks=3, per_block=3)
    path = tmp_path / "state" / "events.json"

    # first run: process 4 events (one block and one event of the next), then "crash"
    gw = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True, timeouts=FAST_TIMEOUTS)
    stream = gw.network("fedchannel").chaincode_events(CC, start_block=0, checkpoint=Checkpoint(path))
    first = _take(stream, 4)
    stream.ack()  # the 4th event is processed
    stream.close(ack_last=False)
    gw.close()
    cp = Checkpoint(path)
    assert cp.position() == (first[3].block_number, first[3].txid)

    # second run, new process: a new gateway and the checkpoint file
    gw = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True, timeouts=FAST_TIMEOUTS)
    with gw, gw.network("fedchannel").chaincode_events(CC, start_block=0, checkpoint=cp) as stream:
        rest = _take(stream, len(expected) - 4)
    req = fake.events_requests[-1]
    assert req.start_position.specified.number == first[3].block_number
    assert req.after_transaction_id == first[3].txid
    assert [_key(e) for e in first + rest] == expected
    # normal exit of the with-block acked the last event: the whole last block is done
    assert Checkpoint(path).position() == (rest[-1].block_number + 1, "")


def test_resume_is_exact_even_if_peer_ignores_after_txid(server, fake, org, tmp_path):
    expected = _populate(fake, blocks=2, per_block=3)
    fake.honour_after_txid = False
    cp = Checkpoint(tmp_path / "cp.json")
    gw = Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True)
    with gw:
        stream = gw.network("fedchannel").chaincode_events(CC, start_block=0, checkpoint=cp)
        first = _take(stream, 2)
        stream.ack()
        stream.close()
        with gw.network("fedchannel").chaincode_events(CC, checkpoint=cp) as again:
            rest = _take(again, len(expected) - 2)
    assert [_key(e) for e in first + rest] == expected


def test_unacked_event_is_redelivered_after_crash(server, fake, org, tmp_path):
    _populate(fake, blocks=1, per_block=3)
    cp = Checkpoint(tmp_path / "cp.json")
    with Gateway.connect(server.endpoint, org.identity, org.signer, insecure=True) as gw:
        stream = gw.network("fedchannel").chaincode_events(CC, start_block=0, checkpoint=cp)
        a, b = _take(stream, 2)  # b delivered but its processing "crashed"
        stream.close()  # ack_last=False by default
        with gw.network("fedchannel").chaincode_events(CC, checkpoint=cp) as again:
            (c,) = _take(again, 1)
    assert c.txid == b.txid  # at-least-once: never lost
    assert cp.position() == (a.block_number, b.txid)  # the re-delivered event was acked on exit


def test_exception_in_with_block_does_not_ack(gateway, fake, tmp_path):
    _populate(fake, blocks=1, per_block=2)
    cp = Checkpoint(tmp_path / "cp.json")
    with (
        pytest.raises(RuntimeError),
        gateway.network("fedchannel").chaincode_events(CC, start_block=0, checkpoint=cp) as stream,
    ):
        for _ev in stream:
            raise RuntimeError("handler failed")
    assert cp.position() == (None, "")


def test_survives_server_restart_on_same_port(fake, org):
    srv = FakeServer(fake)
    port = srv.port
    gw = Gateway.connect(srv.endpoint, org.identity, org.signer, insecure=True, timeouts=FAST_TIMEOUTS)
    stream = gw.network("fedchannel").chaincode_events(CC, start_block=0, reconnect_policy=QUICK)
    q: queue.Queue = queue.Queue()

    def consume():
        try:
            for ev in stream:
                q.put(ev)
        except Exception as exc:  # pragma: no cover - reported through the queue
            q.put(exc)

    threading.Thread(target=consume, daemon=True).start()
    fake.add_block([(CC, "A", b"1")])
    assert q.get(timeout=5).name == "A"
    srv.stop()
    fake.add_block([(CC, "B", b"2")])  # commits while the peer is "down" for this client
    srv2 = FakeServer(fake, port=port)
    try:
        assert q.get(timeout=10).name == "B"
        fake.add_block([(CC, "C", b"3")])
        assert q.get(timeout=5).name == "C"
        assert q.empty()
        assert stream.reconnects >= 1
    finally:
        gw.close()  # also stops the stream
        srv2.stop()


def test_close_from_another_thread_ends_iteration(gateway, fake):
    stream = gateway.network("fedchannel").chaincode_events(CC, start_block=0)
    done = threading.Event()

    def consume():
        for _ in stream:
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.2)
    stream.close()
    assert done.wait(5)


def test_permission_error_is_not_retried(server, org):
    other = Signer(org.issue_user()[1])  # a key that does not match the identity's certificate
    gw = Gateway.connect(
        server.endpoint, org.identity, other, insecure=True, retry=FAST_RETRY, check_key=False
    )
    with gw, pytest.raises(ChaincodeEventsError) as info:
        next(gw.network("fedchannel").chaincode_events(CC, start_block=0))
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_max_reconnects(gateway, fake):
    fake.fail_next["Events"].extend([grpc.StatusCode.UNAVAILABLE] * 5)
    stream = gateway.network("fedchannel").chaincode_events(
        CC, start_block=0, max_reconnects=2, reconnect_policy=QUICK
    )
    with pytest.raises(ChaincodeEventsError):
        next(stream)
    assert stream.reconnects == 2
    assert fake.calls["Events"] == 3
