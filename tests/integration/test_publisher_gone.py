"""The publisher leaves for good mid-run: the committee finishes the model without it.

``configs/small.yaml`` with ``ROUNDS`` rounds and a 600-s deadline. As soon as the model is on the
ledger (mostly while the committee is still approving it), the publisher is stopped and not
restarted (removed from the supervisor). It closed every round as soon as every
update was final; now the members do that, ``settle_seconds`` after the round's last update became
final, then record their own aggregate when no candidate appears within ``settle_seconds`` of the
close, and confirm it. What must hold: the model finishes with ``verify`` clean, the rounds after the
publisher left are closed and aggregated by members, each long before its deadline, and every honest
update is still accepted.
"""

from __future__ import annotations

import time

from tests.integration.test_agents import CONFIG, check_outcome, ledger

ROUNDS = 3
DEADLINE = 600  # seconds: the rounds without the publisher must not wait for it


class StopPublisher:
    """A supervision-turn hook: on the first turn that finds the model on the ledger, stop the
    publisher for good; ``stopped_in`` is the model's current round then (0 while proposed)."""

    def __init__(self) -> None:
        self.stopped_in: int | None = None

    def __call__(self, sup, model: dict | None) -> None:
        if self.stopped_in is not None or model is None:
            return
        publisher = next(c for c in sup.children if c.name == "publisher")
        sup.children.remove(publisher)  # never restarted
        publisher.stop()
        self.stopped_in = int(model.get("currentRound") or 0)
        sup.say(f"drill: stopped the publisher for good (model {model['status']}, round {self.stopped_in})")


def test_members_finish_the_model_when_the_publisher_is_gone(local_network, fabric, tmp_path, monkeypatch):
    from fedcommittee.experiment import load_experiment
    from fedcommittee.run import run_experiment

    net = local_network["network"]
    for k, v in net.env().items():
        monkeypatch.setenv(k, v)  # the agents run_experiment starts inherit the network's env
    text = CONFIG.read_text()
    for old, new in (
        ("\nrounds: 2\n", f"\nrounds: {ROUNDS}\n"),
        ("\ndeadline_seconds: 120\n", f"\ndeadline_seconds: {DEADLINE}\n"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "small.yaml"
    config.write_text(text)
    exp = load_experiment(config, model_id=f"small-no-publisher-{int(time.time())}")
    drill = StopPublisher()

    started = time.monotonic()
    code = run_experiment(exp, config, home=net.home, timeout=DEADLINE - 60, report=False, each_turn=drill)
    wall = time.monotonic() - started
    assert code == 0  # the model finished and its audit found 0 discrepancies
    assert drill.stopped_in is not None and drill.stopped_in < ROUNDS, drill.stopped_in

    check_outcome(net, exp.model_id)  # honest updates accepted every round, attackers rejected
    gw, client = ledger(net)
    with gw:
        model = client.get_model(exp.model_id)
        members = {seat["member"] for seat in model["committee"]}
        for r in range(drill.stopped_in + 1, ROUNDS + 1):  # opened after the publisher left
            rd = client.get_round(exp.model_id, r)
            assert rd["status"] == "done" and rd["aggregateBy"] in members, rd
            assert int(rd["closedAt"]) < int(rd["deadline"]) - DEADLINE // 2, rd  # not the deadline's close
    print(
        f"publisher gone in round {drill.stopped_in}: {ROUNDS} rounds finished by the members in {wall:.0f} s"
    )
