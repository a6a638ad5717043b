from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedcommittee.ledger import ContractError, NotFound
from fedcommittee.ledger.contract import FedcommitteeClient, decode_event, submit_json, transaction_of
from fedcommittee.ledger.gateway import ChaincodeEvent
from fedcommittee.ledger.records import Tx

from .fake_gateway import Outcome

CHAINCODE_DIR = Path(__file__).resolve().parents[3] / "chaincode" / "fedcommittee"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(gateway, fake):
    calls = []

    def record(inv, state):
        calls.append((inv.fn, [a.decode() for a in inv.args]))
        if inv.fn in ("PublishModel", "SubmitUpdate", "RegisterData"):
            # As the chaincode does: the stored record, whose id for an update is the txid.
            return Outcome(payload=json.dumps({"id": inv.txid, "fn": inv.fn}).encode())
        if inv.fn.startswith(("Get", "List", "WhoAmI")):
            return Outcome(payload=json.dumps({"fn": inv.fn}).encode())
        return Outcome()

    for fn in _wrapped_functions():
        fake.handlers[fn] = record
    return FedcommitteeClient(gateway.network("fedchannel").contract("fedcommittee")), calls, fake


def _wrapped_functions() -> set[str]:
    """Every transaction (``Tx``) and every query the client sends."""
    src = Path(__file__).resolve().parents[3] / "fedcommittee" / "ledger" / "contract.py"
    return {str(t) for t in Tx} | set(re.findall(r'_query\("([A-Za-z]+)"', src.read_text()))


def test_transactions_are_submitted_with_string_args(client):
    c, calls, fake = client
    model = submit_json(c.publish_model({"modelId": "m1", "committee": []}))
    assert model["fn"] == "PublishModel"
    update = c.submit_update("m1", {"round": 1})
    assert submit_json(update)["id"] == update.txid  # an update's id is its txid
    res = c.submit_verdict("u1", {"score": 0.9, "accept": True})
    assert fake.tx_status[res.txid][0] == 0  # committed VALID
    c.close_round("m1", 3)
    c.close_round_with_aggregate("m1", 3, cid="x", sha256="ab", accepted=["u2", "u1"])
    c.record_aggregate("m1", 3, cid="x", sha256="ab")
    c.confirm_aggregate("m1", 3, sha256="ab", score=1)
    c.submit_verdicts([{"updateId": "u1", "score": -1.0, "accept": False, "reason": "bad"}])
    c.approve_model("m1", 0.25)
    c.reject_model("m1", "no profile")
    c.finish_model("m1", "u1")
    c.propose_final("m1", ["u1", "u2"], ["u2"], cid="x", sha256="ab")
    c.judge_final("m1", [0.5, 1])
    assert calls == [
        ("PublishModel", ['{"modelId":"m1","committee":[]}']),
        ("SubmitUpdate", ["m1", '{"round":1}']),
        ("SubmitVerdict", ["u1", '{"score":0.9,"accept":true}']),
        ("CloseRound", ["m1", "3"]),
        # The set named as the contract names it (chaincode: TestAcceptedDigestKnownAnswer pins it too).
        (
            "CloseRoundWithAggregate",
            [
                "m1",
                "3",
                '{"cid":"x","sha256":"ab","acceptedSha256":"'
                '9817499bfd92d44502b30a383f35ffa91dd38283d3f4dcc2354bb2a945152878"}',
            ],
        ),
        ("RecordAggregate", ["m1", "3", '{"cid":"x","sha256":"ab"}']),
        ("ConfirmAggregate", ["m1", "3", '{"sha256":"ab","score":1.0}']),
        ("SubmitVerdicts", ['{"verdicts":[{"updateId":"u1","score":-1.0,"accept":false,"reason":"bad"}]}']),
        ("ApproveModel", ["m1", "0.25"]),
        ("RejectModel", ["m1", "no profile"]),
        ("FinishModel", ["m1", "u1"]),
        ("ProposeFinal", ["m1", '{"mix":["u1","u2"],"cid":"x","sha256":"ab","candidates":["u2"]}']),
        ("JudgeFinal", ["m1", '{"qualities":[0.5,1.0]}']),
    ]


def test_each_transaction_method_names_its_transaction(client):
    c, _, _ = client
    assert transaction_of(c.close_round) == "CloseRound" == Tx.CLOSE_ROUND
    assert transaction_of(c.submit_verdicts) == "SubmitVerdicts"
    sends = {name for name in dir(c) if hasattr(getattr(c, name), "transaction")}
    assert {transaction_of(getattr(c, n)) for n in sends} == {str(t) for t in Tx}


def test_protocol_rule_transactions(client):
    c, calls, fake = client
    assert submit_json(c.register_data("m1", {"numSamples": 5, "dataType": "image"}))["fn"] == "RegisterData"
    pid = c.propose_rule_change("m1", {"quorum": 2}).txid
    assert pid in fake.tx_status, "a proposal's id is its txid"
    c.vote_rule_change(pid, True)
    c.vote_rule_change(pid, False)
    assert c.get_allocation("m1", 4) == {"fn": "GetAllocation"}
    assert calls == [
        ("RegisterData", ["m1", '{"numSamples":5,"dataType":"image"}']),
        ("ProposeRuleChange", ["m1", '{"quorum":2}']),
        ("VoteRuleChange", [pid, "true"]),
        ("VoteRuleChange", [pid, "false"]),
        ("GetAllocation", ["m1", "4"]),
    ]


def test_queries_are_evaluated_and_decoded(client):
    c, calls, fake = client
    assert c.get_model("m1") == {"fn": "GetModel"}
    assert c.list_models() == {"fn": "ListModels"}
    assert c.list_round_updates("m1", 2, page_size=10, bookmark="b") == {"fn": "ListRoundUpdates"}
    assert calls == [
        ("GetModel", ["m1"]),
        ("ListModels", ["", ""]),
        ("ListRoundUpdates", ["m1", "2", "10", "b"]),
    ]
    assert fake.tx_status == {}  # queries are never ordered
    assert c.reads == 3  # counted (the agents log it: ledger reads per round in the benchmarks)
    c.get_model("m2")
    assert c.reads_by_query == {"GetModel": 2, "ListModels": 1, "ListRoundUpdates": 1}
    c.close_round("m1", 3)
    assert c.reads == 4  # a transaction is no read
    assert "CloseRound" not in c.reads_by_query


def test_iter_follows_bookmarks_until_an_empty_one(gateway, fake):
    pages = {"": (["a", "b"], "p2"), "p2": (["c"], "p3"), "p3": ([], "")}
    seen = []

    def page(inv, state):
        model_id, round_no, size, bookmark = (a.decode() for a in inv.args)
        seen.append((model_id, round_no, size, bookmark))
        items, nxt = pages[bookmark]
        return Outcome(payload=json.dumps({"items": items, "bookmark": nxt}).encode())

    fake.handlers["ListRoundUpdates"] = page
    c = FedcommitteeClient(gateway.network("fedchannel").contract("fedcommittee"))
    assert list(c.iter_round_updates("m1", 2)) == ["a", "b", "c"]
    assert seen == [("m1", "2", "200", ""), ("m1", "2", "200", "p2"), ("m1", "2", "200", "p3")]


def test_the_leaderboard_is_read_page_by_page_and_ranked_as_the_contract_ranks(gateway, fake):
    """GetLeaderboard stops at 1000 entries; ``leaderboard`` reads ListRewards (identity order) and
    sorts best net first, ties by identity."""
    pages = {
        "": ([{"identity": "a", "net": 5}, {"identity": "b", "net": 20}], "p2"),
        "p2": ([{"identity": "c", "net": 5}, {"identity": "d", "net": -5}], ""),
    }

    def page(inv, state):
        model_id, size, bookmark = (a.decode() for a in inv.args)
        assert (model_id, size) == ("m1", "200")
        items, nxt = pages[bookmark]
        return Outcome(payload=json.dumps({"items": items, "bookmark": nxt}).encode())

    fake.handlers["ListRewards"] = page
    c = FedcommitteeClient(gateway.network("fedchannel").contract("fedcommittee"))
    assert [e["identity"] for e in c.leaderboard("m1")] == ["b", "a", "c", "d"]


@pytest.mark.parametrize(
    "message, not_found, code",
    [
        ("NOT_FOUND: model m1", True, "NOT_FOUND"),
        ("model m1 not found", True, None),  # the contract before the code (fallback, goes later)
        ("BAD_INPUT: score is NaN", False, "BAD_INPUT"),
        ("round 2 is closed", False, None),
    ],
)
def test_a_not_found_refusal_is_a_typed_error(gateway, fake, message, not_found, code):
    fake.handlers["GetModel"] = lambda inv, state: Outcome(status=500, message=message)
    fake.handlers["CloseRound"] = lambda inv, state: Outcome(status=500, message=message)
    c = FedcommitteeClient(gateway.network("fedchannel").contract("fedcommittee"))
    for call in (lambda: c.get_model("m1"), lambda: c.close_round("m1", 2)):
        with pytest.raises(ContractError) as info:
            call()
        assert isinstance(info.value, NotFound) is not_found
        assert info.value.error_code == code and info.value.chaincode_message == message


def test_decode_event():
    ev = ChaincodeEvent("fedcommittee", "RoundOpened", b'{"type":"RoundOpened","round":2}', "t", 5)
    assert decode_event(ev) == {"type": "RoundOpened", "round": 2}


@pytest.mark.skipif(not CHAINCODE_DIR.is_dir(), reason="chaincode source not present")
def test_every_wrapped_function_exists_in_the_chaincode():
    exported = set()
    for go in CHAINCODE_DIR.glob("*.go"):
        if go.name.endswith("_test.go"):
            continue
        exported |= set(re.findall(r"^func \(c \*Contract\) ([A-Z]\w*)\(", go.read_text(), re.MULTILINE))
    wrapped = _wrapped_functions()
    assert len(wrapped) > 20  # the pattern really found the wrapper's calls
    missing = wrapped - exported
    assert not missing, f"wrapper calls functions the chaincode does not define: {sorted(missing)}"


def test_model_state_is_one_query_decoded_into_the_model_its_round_and_a_closed_rounds_aggregates(
    gateway, fake
):
    cands = [{"sha256": "ab", "recordedBy": "Org1MSP/p"}]
    answers = iter([
        {"model": {"id": "m1"}, "round": {"number": 1, "status": "open"}},
        {"model": {"id": "m1"}, "round": {"number": 1, "status": "closed"}, "aggregates": cands},
        {"model": {"id": "m1"}, "round": {"number": 2, "status": "closed"}},  # closed, nothing recorded yet
        {"model": {"id": "g"}, "round": None},
    ])  # fmt: skip
    fake.handlers["GetModelState"] = lambda inv, state: Outcome(payload=json.dumps(next(answers)).encode())
    c = FedcommitteeClient(gateway.network("fedchannel").contract("fedcommittee"))
    assert c.get_model_state("m1") == ({"id": "m1"}, {"number": 1, "status": "open"}, None)
    st = c.get_model_state("m1")
    assert st.round["status"] == "closed" and st.aggregates == cands
    assert c.get_model_state("m1").aggregates == []
    assert c.get_model_state("g") == ({"id": "g"}, None, None)  # gossip, or before round 1
    assert c.reads == 4


def test_a_transaction_a_concurrent_one_invalidated_is_sent_again_and_nothing_else_is(monkeypatch):
    from fedcommittee.ledger import CommitError, retrying_conflicts
    from fedcommittee.ledger import contract as contract_mod

    monkeypatch.setattr(contract_mod.time, "sleep", lambda s: None)

    def sender(codes):
        tries = []

        def send(*args, **kw):
            tries.append((args, kw))
            if len(tries) <= len(codes):
                raise CommitError("t", codes[len(tries) - 1], code_value=11, block_number=3)
            return "committed"

        return send, tries

    send, tries = sender(["MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"])
    assert retrying_conflicts(send, "m1", {"quorum": 2}, attempts=3) == "committed"
    assert tries == [(("m1", {"quorum": 2}), {})] * 3
    send, tries = sender(["ENDORSEMENT_POLICY_FAILURE"])  # not a lost race: raised at once
    with pytest.raises(CommitError, match="ENDORSEMENT_POLICY_FAILURE"):
        retrying_conflicts(send)
    assert len(tries) == 1
    send, tries = sender(["MVCC_READ_CONFLICT"] * 5)  # the attempts spent: the last conflict is raised
    with pytest.raises(CommitError, match="MVCC_READ_CONFLICT"):
        retrying_conflicts(send, attempts=5)
    assert len(tries) == 5
