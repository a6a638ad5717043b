"""The publisher leaves for good mid-run: the committee finishes the model without it.

``configs/small.yaml`` with ``ROUNDS`` rounds, a 600-s deadline and a 5-s settle window. On the first
supervision turn that finds the model on the ledger, the publisher is stopped and not restarted
(removed from the supervisor). That turn can come late (on a busy machine, with round 3 open), so the
round open then counts as one without the publisher if it was still open once the publisher had
stopped. The publisher closed every round as soon as every update was final; now the members do,
``PUBLISHER_GRACE_SECONDS`` after the round's last update became final, then record their own
aggregate when no candidate appears within ``settle_seconds`` of the close, and confirm it.

What must hold: the model finishes with ``verify`` clean, every round the publisher cannot have
closed is closed and aggregated by members long before its deadline, and every honest update is
still accepted.
"""

from __future__ import annotations

import time

from tests.integration.test_agents import check_outcome, ledger, run_small, small_config

# Rounds of small.yaml take about half a second with the publisher, and the supervisor's turns come
# every 2 s (the first that found the model found round 3 open, twice): rounds enough to leave
# several without the publisher wherever the stop falls. Each takes some 15 s without it.
ROUNDS = 6
DEADLINE = 600  # seconds: the rounds without the publisher must not wait for it
CHANGES = (
    ("rounds: 2", f"rounds: {ROUNDS}"),
    ("deadline_seconds: 120", f"deadline_seconds: {DEADLINE}"),
    ("settle_seconds: 15", "settle_seconds: 5"),
)


class StopPublisher:
    """A supervision-turn hook: on the first turn that finds the model on the ledger, stop the
    publisher for good. ``first_without``: the first round the publisher cannot have closed (the
    round open at the stop if it still was once the publisher had stopped, else the next one)."""

    def __init__(self, round_open) -> None:
        self.round_open = round_open  # (model id, round number) -> whether the ledger has it open now
        self.first_without: int | None = None

    def __call__(self, sup, model: dict | None) -> None:
        if self.first_without is not None or model is None:
            return
        publisher = next(c for c in sup.children if c.name == "publisher")
        sup.children.remove(publisher)  # never restarted
        publisher.stop()
        time.sleep(2.0)  # a transaction it sent before it died may still commit: let it, then look
        current = int(model.get("currentRound") or 0)
        self.first_without = current if current and self.round_open(model["id"], current) else current + 1
        sup.say(f"drill: stopped the publisher for good (model {model['status']}, round {current})")


def test_members_finish_the_model_when_the_publisher_is_gone(local_network, fabric, tmp_path, monkeypatch):
    net = local_network["network"]
    config = small_config(tmp_path / "small.yaml", *CHANGES)

    def round_open(model_id: str, r: int) -> bool:
        gw, client = ledger(net)
        with gw:
            return client.get_round(model_id, r)["status"] == "open"

    drill = StopPublisher(round_open)
    started = time.monotonic()
    model_id, code = run_small(net, monkeypatch, config, "small-no-publisher", DEADLINE - 60, each_turn=drill)
    wall = time.monotonic() - started
    assert code == 0  # the model finished and its audit found 0 discrepancies
    assert drill.first_without is not None and drill.first_without <= ROUNDS, drill.first_without

    check_outcome(net, model_id)  # honest updates accepted every round, attackers rejected
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        members = {seat["member"] for seat in model["committee"]}
        for r in range(drill.first_without, ROUNDS + 1):
            rd = client.get_round(model_id, r)
            assert rd["status"] == "done" and rd["aggregateBy"] in members, rd
            assert int(rd["closedAt"]) < int(rd["deadline"]) - DEADLINE // 2, rd  # not the deadline's close
    print(f"publisher gone from round {drill.first_without} of {ROUNDS}: model finished in {wall:.0f} s")
