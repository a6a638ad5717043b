"""The effect rule's probation, end to end: members read who is on probation from the ledger.

``configs/small.yaml`` scored with ``effect`` on probation (lenient bars in good standing, effect's
own floor for a provider whose update was rejected in the round before), 3 rounds. In every round
after the first, each member must have judged on probation exactly the scored updates whose provider
had an update rejected in the round before, as the ledger records it (its ``scored`` log event), and
the run must finish with a clean audit. The sign flipper is caught in round 1, so the check is not
vacuous (asserted). With ``probation_until_accepted`` a provider none of whose updates the ledger
shows accepted in an earlier round is on probation too (everyone in round 1).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.test_agents import ledger, run_small, small_config

SCORING = (
    "scoring: {rule: effect, metric: loss, reference_steps: 40, reference_lr: 0.1, sym_se: 10,"
    " cos_floor: -0.2, probation_rounds: 1, probation_cos_floor: 0.01, probation_sym_se: 10}"
)


@pytest.mark.parametrize("until_accepted", [False, True], ids=["after-rejection", "until-accepted"])
def test_members_judge_on_probation_exactly_the_providers_the_ledger_shows_rejected(
    local_network, fabric, tmp_path, monkeypatch, until_accepted
):
    net = local_network["network"]
    scoring = SCORING[:-1] + (", probation_until_accepted: true}" if until_accepted else "}")
    config = small_config(
        tmp_path / "small.yaml",
        ("rounds: 2", "rounds: 3"),
        ("scoring: {rule: trust, metric: loss, reference_steps: 40, reference_lr: 0.1}", scoring),
    )
    name = "small-probation" + ("-earned" if until_accepted else "")
    model_id, code = run_small(net, monkeypatch, config, name, timeout=400)
    assert code == 0  # the model finished and its audit found 0 discrepancies

    gw, client = ledger(net)
    with gw:
        rounds = {r: list(client.iter_round_updates(model_id, r)) for r in (1, 2, 3)}
    expected = {}
    for r in (1, 2, 3):
        caught = {u["provider"] for u in rounds.get(r - 1, []) if u["status"] == "rejected"}
        proven = {u["provider"] for q in range(1, r) for u in rounds[q] if u["status"] == "accepted"}
        on = [u["provider"] in caught or (until_accepted and u["provider"] not in proven)
              for u in rounds[r] if not u.get("refusal")]  # fmt: skip
        expected[r] = sum(on)
    assert any(expected[r] for r in (2, 3)), f"nobody was on probation after round 1: {rounds}"

    logs = net.home / "runs" / model_id / "logs"
    for member in ("member1", "member2", "member3"):
        records = [json.loads(ln) for ln in (logs / f"{member}.jsonl").read_text().splitlines()]
        scored = {rec["round"]: rec for rec in records if rec.get("event") == "scored"}
        assert scored, f"{member} scored nothing"
        for r, rec in scored.items():
            assert rec["on_probation"] == expected.get(r, 0), (member, r, rec, expected)
    print(f"probation ({name}): {expected} updates judged on probation in rounds 1 to 3")
