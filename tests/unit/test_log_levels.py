"""Which agent log records are warnings: expected protocol races go at info with a count per round,
what needs a person stays a warning (issue 18, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcommittee.logs import contract_refusals, expected_race, race_counts, read_logs, refusal_kind
from fedcommittee.roles.runtime import JsonLog

U = "117e03c12e14fbd4e532d9a0d3d4b3550617dbcf31bfa5cd391d4ea50b089028"
CLOSED = f"update {U} is accepted, not pending: verdicts are closed"
AGAIN = f"member Org1MSP/abc has already submitted a verdict on update {U}"
REPLAY = f"replay: sha256 {'d' * 64} was already submitted to model m as update {'e' * 64}"


@pytest.mark.parametrize(
    ("event", "fields", "kind"),
    [
        # the contract's words, as the agents log them
        ("verdict_refused", {"update": U, "reason": CLOSED}, "verdict_after_close"),
        ("verdict_refused", {"update": U, "reason": AGAIN}, "verdict_after_close"),
        ("conflict", {"tx": "SubmitVerdicts", "code": "MVCC_READ_CONFLICT", "attempt": 0}, "mvcc_retry"),
        ("conflict", {"tx": "RegisterData", "code": "PHANTOM_READ_CONFLICT", "attempt": 2}, "mvcc_retry"),
        ("update_refused", {"round": 2, "reason": REPLAY}, "replay_refused"),
        # needs a person
        ("conflict", {"tx": "SubmitUpdate", "code": "ENDORSEMENT_POLICY_FAILURE", "attempt": 0}, None),
        ("conflict", {"tx": "SubmitUpdate", "code": "BAD_PAYLOAD"}, None),
        ("verdict_refused", {"update": U, "reason": "score: must be finite"}, None),
        ("verdicts_refused", {"count": 3, "reason": CLOSED}, None),  # a whole batch refused
        ("update_refused", {"round": 2, "reason": "round 2 of model m is closed: updates are closed"}, None),
        ("update_refused", {"round": 2}, None),
        ("step_refused", {"reason": "access denied"}, None),
        ("ledger_unreachable", {"error": "UNAVAILABLE"}, None),
        ("submit_gave_up", {"tx": "SubmitVerdicts", "attempts": 8}, None),
        ("model_rejected_by_me", {"reason": CLOSED}, None),
    ],
)
def test_expected_race_classification(event, fields, kind):
    assert expected_race(event, fields) == kind


def test_refusal_kinds_name_the_contract_reason():
    assert refusal_kind(REPLAY) == "identical update resubmitted"
    second = "provider P already submitted an update to round 3 of model m"
    assert refusal_kind(second) == "second update in a round"
    assert refusal_kind("round: 4 is not the open round of model m (current round 5)") == "round not open"
    assert refusal_kind("round 4 of model m: deadline 100 has passed (now 130)") == "after the deadline"
    assert refusal_kind("numSamples: must be positive") == "numSamples"
    assert refusal_kind("") == "refused"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_log_writes_races_at_info_and_counts_them_per_round(tmp_path):
    log = JsonLog(tmp_path / "member1.jsonl", "member1", "committee", echo=False)
    log.set_round(1)
    log("conflict", level="warning", tx="SubmitVerdicts", code="MVCC_READ_CONFLICT", attempt=0)
    log("verdict_refused", level="warning", update=U, reason=CLOSED)
    log("verdict_refused", level="warning", update=U, reason=CLOSED)
    log("verdicts_refused", level="warning", count=2, reason="verdicts[1]: boom")  # a real problem
    log.set_round(1)  # the same round again: nothing flushed
    log.set_round(2)
    log("conflict", level="warning", tx="ConfirmAggregate", code="MVCC_READ_CONFLICT", attempt=0)
    log.close()
    recs = _lines(tmp_path / "member1.jsonl")
    warnings = [r for r in recs if r.get("level") == "warning"]
    assert [r["event"] for r in warnings] == ["verdicts_refused"]
    races = [r for r in recs if "race" in r]
    assert [(r["event"], r["race"], r["round"]) for r in races] == [
        ("conflict", "mvcc_retry", 1),
        ("verdict_refused", "verdict_after_close", 1),
        ("verdict_refused", "verdict_after_close", 1),
        ("conflict", "mvcc_retry", 2),
    ]
    assert all("level" not in r for r in races)  # info is the default and is not written
    summaries = [r for r in recs if r["event"] == "races"]
    assert summaries == [
        {**summaries[0], "round": 1, "total": 3, "mvcc_retry": 1, "verdict_after_close": 2},
        {**summaries[1], "round": 2, "total": 1, "mvcc_retry": 1},
    ]
    assert race_counts(recs) == {1: {"mvcc_retry": 1, "verdict_after_close": 2}, 2: {"mvcc_retry": 1}}


def test_a_refused_replay_keeps_its_own_round_and_is_counted_per_provider(tmp_path):
    logs = tmp_path / "logs"
    log = JsonLog(logs / "freerider.jsonl", "freerider", "provider", echo=False)
    log.set_round(3)
    log("update_refused", level="warning", round=2, reason=REPLAY)  # the round it tried, not 3
    log("update_refused", level="warning", round=3, reason="round 3 of model m is done: updates are closed")
    log.close()
    other = JsonLog(logs / "honest1.jsonl", "honest1", "provider", echo=False)
    other("trained", round=1, seconds=1.0)
    other.close()
    recs = read_logs(logs)
    refused = [r for r in recs if r["event"] == "update_refused"]
    assert [(r.get("race"), r["round"], r.get("level")) for r in refused] == [
        ("replay_refused", 2, None),
        (None, 3, "warning"),
    ]
    assert contract_refusals(recs) == {"freerider": {"identical update resubmitted": 1, "round not open": 1}}
    assert race_counts(recs) == {2: {"replay_refused": 1}}


def _agent_with_log(outcomes, path):
    from fedcommittee.experiment import load_experiment
    from fedcommittee.ledger import FedcommitteeClient
    from fedcommittee.roles.runtime import Agent

    class Contract:
        def submit_transaction(self, fn, *args):
            out = outcomes.pop(0)
            if isinstance(out, Exception):
                raise out
            return out

    exp = load_experiment(Path(__file__).resolve().parents[2] / "configs" / "small.yaml", model_id="m")
    log = JsonLog(path, "member1", "committee", echo=False)
    return Agent(exp, "member1", "committee", client=FedcommitteeClient(Contract()), store=None,
                 me="Org1MSP/member1", log=log, current_round=4)  # fmt: skip


def test_a_retry_that_succeeds_is_no_warning_but_giving_up_is(tmp_path, monkeypatch):
    from fedcommittee.ledger import CommitError
    from fedcommittee.roles import runtime

    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    conflict = CommitError("t1", "MVCC_READ_CONFLICT", code_value=11, block_number=4)
    ok = type("R", (), {"txid": "t2", "block_number": 5})()
    agent = _agent_with_log([conflict, ok], tmp_path / "ok.jsonl")
    assert (
        agent.submit(agent.client.confirm_aggregate, "m", 4, sha256="ab", score=1, done=lambda: False) is ok
    )
    agent.log.close()
    recs = _lines(tmp_path / "ok.jsonl")
    assert not [r for r in recs if r.get("level")]
    assert [r["event"] for r in recs] == ["conflict", "submitted", "races"]

    agent = _agent_with_log([conflict] * 3, tmp_path / "gave_up.jsonl")
    with pytest.raises(RuntimeError, match="gave up"):
        agent.submit(
            agent.client.confirm_aggregate, "m", 4, sha256="ab", score=1, done=lambda: False, attempts=3
        )
    agent.log.close()
    recs = _lines(tmp_path / "gave_up.jsonl")
    assert [r["event"] for r in recs if r.get("level") == "warning"] == ["submit_gave_up"]


def test_info_records_are_never_promoted(tmp_path):
    log = JsonLog(tmp_path / "a.jsonl", "a", "provider", echo=False)
    log("conflict", code="BAD_PAYLOAD")  # logged at info by its caller: stays info, not a race
    log.close()
    (rec,) = _lines(tmp_path / "a.jsonl")
    assert "level" not in rec and "race" not in rec


def test_the_logs_race_codes_are_the_ledgers_conflict_codes():
    from fedcommittee.ledger.errors import CONFLICT_CODES
    from fedcommittee.logs import RACE_CONFLICT_CODES
    from fedcommittee.roles.runtime import RETRY_CODES

    assert RACE_CONFLICT_CODES == CONFLICT_CODES < RETRY_CODES
