from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedcommittee.ledger.contract import FedcommitteeClient, decode_event
from fedcommittee.ledger.gateway import ChaincodeEvent

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
    src = Path(__file__).resolve().parents[3] / "fedcommittee" / "ledger" / "contract.py"
    return set(re.findall(r'_(?:submit|query)\("([A-Za-z]+)"', src.read_text()))


def test_transactions_are_submitted_with_string_args(client):
    c, calls, fake = client
    model = c.publish_model({"modelId": "m1", "committee": []})
    assert model["fn"] == "PublishModel"
    update_id = c.submit_update("m1", {"round": 1})
    assert update_id in fake.tx_status, "submit_update must return the update id, i.e. its txid"
    res = c.submit_verdict("u1", {"score": 0.9, "accept": True})
    assert fake.tx_status[res.txid][0] == 0  # committed VALID
    c.close_round("m1", 3)
    c.record_aggregate("m1", 3, '{"cid":"x"}')
    assert calls == [
        ("PublishModel", ['{"modelId":"m1","committee":[]}']),
        ("SubmitUpdate", ["m1", '{"round":1}']),
        ("SubmitVerdict", ["u1", '{"score":0.9,"accept":true}']),
        ("CloseRound", ["m1", "3"]),
        ("RecordAggregate", ["m1", "3", '{"cid":"x"}']),
    ]


def test_protocol_rule_transactions(client):
    c, calls, fake = client
    assert c.register_data("m1", {"numSamples": 5, "dataType": "image"})["fn"] == "RegisterData"
    pid = c.propose_rule_change("m1", {"quorum": 2})
    assert pid in fake.tx_status, "propose_rule_change must return the proposal id, i.e. its txid"
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
