"""A round that cannot reach ``min_accepted`` closes as soon as every provider's update is final.

``configs/small.yaml`` with ``min_accepted: 3`` and a 600-s deadline: only its two honest providers
can be accepted (the sign-flipper and the free rider are rejected), so no round ever reaches the bar.
Nothing can change a round's accepted set once all four updates are final, and the contract knows
the four (they registered their data): each round must close then, with the two honest updates,
instead of idling out its deadline. The run finishes, ``verify`` finds nothing, and every round's
close is recorded long before its deadline.
"""

from __future__ import annotations

import time

from tests.integration.test_agents import ledger, run_small, small_config

DEADLINE = 600  # seconds: far more than the whole run may take


def test_rounds_short_of_min_accepted_close_once_every_update_is_final(
    local_network, fabric, tmp_path, monkeypatch
):
    net = local_network["network"]
    config = small_config(
        tmp_path / "small.yaml",
        ("min_accepted: 2", "min_accepted: 3"),
        ("deadline_seconds: 120", f"deadline_seconds: {DEADLINE}"),
    )
    started = time.monotonic()
    model_id, code = run_small(net, monkeypatch, config, "small-short", timeout=DEADLINE - 60)
    wall = time.monotonic() - started
    assert code == 0  # the model finished and its audit found 0 discrepancies

    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        assert model["status"] == "finished" and model["roundRules"]["minAccepted"] == 3, model
        for r in range(1, int(model["currentRound"]) + 1):
            rd = client.get_round(model_id, r)
            statuses = sorted(u["status"] for u in client.iter_round_updates(model_id, r))
            assert statuses == ["accepted", "accepted", "rejected", "rejected"], (r, statuses)
            assert rd["status"] == "done" and rd["acceptedCount"] == 2, rd
            assert int(rd["closedAt"]) < int(rd["deadline"]) - DEADLINE // 2, rd  # closed, not timed out
    print(f"short rounds: {model['currentRound']} rounds of 2 accepted (min_accepted 3) in {wall:.0f} s")
