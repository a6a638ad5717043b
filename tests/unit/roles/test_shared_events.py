"""Hosted agents share one event pump per peer and model (``roles.shared_events``)."""

from __future__ import annotations

import queue

import pytest

from fedcommittee.roles.shared_events import feed_for

pytestmark = pytest.mark.timeout(30)


class FakePump:
    """What SharedEvents uses of an EventPump: start, wait (the model's payloads), close."""

    def __init__(self) -> None:
        self.started = self.closed = 0
        self.batches: queue.Queue[list[dict]] = queue.Queue()

    def start(self) -> None:
        self.started += 1

    def wait(self, timeout: float, model_id: str) -> list[dict]:
        try:
            return self.batches.get(timeout=min(timeout, 0.05))
        except queue.Empty:
            return []

    def close(self) -> None:
        self.closed += 1


def test_agents_of_one_process_share_one_pump_per_peer_and_model():
    pumps: list[FakePump] = []

    def make() -> FakePump:
        pumps.append(FakePump())
        return pumps[-1]

    a, b = feed_for("peer1:7051", "m", make), feed_for("peer1:7051", "m", make)
    other_peer = feed_for("peer2:8051", "m", make)
    assert len(pumps) == 2  # one for peer1 (a and b), one for peer2
    for feed in (a, b, other_peer):
        feed.start()
    assert [p.started for p in pumps] == [1, 1]
    pumps[0].batches.put([{"type": "RoundOpened", "round": 1}])
    pumps[0].batches.put([{"type": "RoundClosed", "round": 1}])
    for feed in (a, b):  # each agent gets every payload, once, in order
        got: list[dict] = []
        while len(got) < 2:
            got += feed.wait(5.0, "m")
        assert [p["type"] for p in got] == ["RoundOpened", "RoundClosed"]
    assert other_peer.wait(0.1, "m") == []  # peer2's pump brought nothing
    a.close()
    assert pumps[0].closed == 0  # b still listens
    b.close()
    assert pumps[0].closed == 1
    again = feed_for("peer1:7051", "m", make)  # the closed pump is forgotten: a new one
    assert len(pumps) == 3
    again.start()
    again.close()
    other_peer.close()
    assert [p.closed for p in pumps] == [1, 1, 1]


class FakeGateway:
    """What an EventPump uses of a Gateway: a network whose event stream ends at once, and close."""

    def __init__(self) -> None:
        self.closed = 0
        self.opened: list[dict] = []

    def network(self):
        return self

    def chaincode_events(self, start_block=None, checkpoint=None):
        self.opened.append({"start_block": start_block, "checkpoint": checkpoint})
        return FakeStream()

    def close(self) -> None:
        self.closed += 1


class FakeStream:
    def __iter__(self):
        return iter(())

    def close(self) -> None:
        pass


def test_an_event_pump_closes_its_own_gateway(tmp_path):
    """The hosted agents' pump runs on a gateway of its own (``driver.shared_pump``), closed with
    the pump: the first agent stopping closes that agent's gateway, not the others' stream."""
    from fedcommittee.roles.runtime import EventPump

    gateway = FakeGateway()
    pump = EventPump(gateway, tmp_path / "events.json", "provider-1", lambda *a, **k: None)
    pump.start()
    assert gateway.closed == 0
    pump.close()
    assert gateway.closed == 1


def test_an_event_pump_starts_at_the_next_commit_and_writes_its_position_sparingly(tmp_path):
    """Events only wake agents up: a first start does not replay the channel from block 0, and the
    position is written at most once a second (a restart resumes from it)."""
    from fedcommittee.roles.runtime import CHECKPOINT_EVERY_SECONDS, EventPump

    gateway = FakeGateway()
    pump = EventPump(gateway, tmp_path / "events.json", "provider-1", lambda *a, **k: None)
    pump.start()
    (opened,) = gateway.opened
    assert opened["start_block"] is None
    assert opened["checkpoint"].path == tmp_path / "events.json"
    assert opened["checkpoint"].every == CHECKPOINT_EVERY_SECONDS > 0
    pump.close()
