"""The fedcommittee chaincode on the real local network, through the Python Gateway client.

Every transaction goes through a peer's Gateway as the identity that plays the role: org admins
grant roles, a publisher publishes, committee members vote and judge, providers submit updates.
Objects put on chain (initial weights, shards, updates, aggregates) are real IPFS objects, so every
CID and sha256 on the ledger is one Kubo produced. Each test uses its own model id.

After each submit the helper waits until all three peers have the block, so the next actor (whose
gateway may be another org's peer) never endorses against a state one block behind.
"""

from __future__ import annotations

import json

import pytest

from fedcommittee.ledger import ContractError
from fedcommittee.storage import ContentStore
from tests.integration import drills
from tests.integration.drills import DrillLedger, drill_ledger, ref, unique_id

PUBLISHER = "org1-user1"
PROVIDERS = ["org1-user2", "org2-user2", "org3-user2"]
COMMITTEE = ["org1-user3", "org2-user3", "org3-user3"]
OUTSIDER = "org2-user4"  # holds no role and sits on no committee

ROLES = {
    PUBLISHER: "publisher",
    **dict.fromkeys(PROVIDERS, "provider"),
    **dict.fromkeys(COMMITTEE, "committee"),
}


@pytest.fixture(scope="module")
def ledger(fabric):
    with drill_ledger(fabric, ROLES) as led:
        yield led


def model_spec(ledger: DrillLedger, store: ContentStore, model_id: str, *, mode: str, quorum: int) -> dict:
    return drills.model_spec(
        ledger,
        store,
        model_id,
        mode=mode,
        quorum=quorum,
        committee_users=COMMITTEE,
        threshold=0.8,
        federated_rules={"minAccepted": 2, "deadlineSeconds": 600, "maxRounds": 3, "maxParents": 0},
    )


def publish_and_activate(
    ledger: DrillLedger, store: ContentStore, prefix: str, *, mode: str, quorum: int
) -> dict:
    model_id = unique_id(prefix)
    spec = model_spec(ledger, store, model_id, mode=mode, quorum=quorum)
    published = json.loads(ledger.submit(PUBLISHER, "PublishModel", spec))
    assert published["status"] == "proposed"
    assert published["publisher"] == ledger.key(PUBLISHER)
    for i, member in enumerate(COMMITTEE[:quorum]):
        assert ledger.query("GetModel", model_id)["status"] == "proposed"
        ledger.submit(member, "ApproveModel", model_id, str(0.5 + 0.05 * i))
    model = ledger.query("GetModel", model_id)
    assert model["status"] == "active"
    assert model["global"] == spec["initialWeights"]
    return model


def verdicts(ledger: DrillLedger, update_id: str, scores: list[float], accept: bool) -> None:
    # Each member's verdicts are sent one at a time, waiting for commit (chaincode README, MVCC).
    for member, score in zip(COMMITTEE, scores, strict=False):
        ledger.submit(member, "SubmitVerdict", update_id, {"score": score, "accept": accept})


def ids(items: list) -> list[str]:
    return [i["id"] if isinstance(i, dict) else i for i in items]


def expect_contract_error(excinfo, message: str) -> None:
    err = excinfo.value
    assert isinstance(err, ContractError)
    assert message in err.chaincode_message, err.chaincode_message
    assert err.txid


# ---------------------------------------------------------------------------- federated


def test_federated_round_from_publish_to_confirmed_aggregate(ledger, store):
    model = publish_and_activate(ledger, store, "fed", mode="federated", quorum=3)
    model_id, init = model["id"], model["global"]
    assert model["currentRound"] == 1
    round1 = ledger.query("GetRound", model_id, "1")
    assert round1["status"] == "open" and round1["global"] == init
    assert model["baseline"] == pytest.approx(0.55)

    # Three providers train on round 1's global model.
    updates = {}
    for provider in PROVIDERS:
        obj = store.put(f"{model_id}: update of {provider}".encode())
        update = {
            "round": 1,
            "baseCid": init["cid"],
            "baseSha256": init["sha256"],
            **ref(obj),
            "numSamples": 100,
            "metrics": {"loss": 0.3},
        }
        stored = json.loads(ledger.submit(provider, "SubmitUpdate", model_id, update))
        assert stored["status"] == "pending" and stored["provider"] == ledger.key(provider)
        updates[provider] = stored["id"]
    good, also_good, bad = (updates[p] for p in PROVIDERS)

    verdicts(ledger, good, [0.9, 0.85, 0.88], accept=True)
    verdicts(ledger, also_good, [0.82, 0.86, 0.8], accept=True)
    verdicts(ledger, bad, [0.3, 0.4, 0.2], accept=False)

    expected = [(good, "accepted", 0.88), (also_good, "accepted", 0.82), (bad, "rejected", 0.3)]
    for uid, status, median in expected:
        upd = ledger.query("GetUpdate", uid)
        assert upd["status"] == status, upd
        assert upd["verdictCount"] == 3
        assert upd["medianScore"] == pytest.approx(median)
        assert len(ledger.query("GetVerdicts", uid)) == 3

    board = {e["identity"]: e for e in ledger.query("GetLeaderboard", model_id)}
    for provider, accepted in zip(PROVIDERS, [True, True, False], strict=True):
        entry = board[ledger.key(provider)]
        if accepted:
            assert (entry["accepted"], entry["rewards"], entry["penalties"]) == (1, 10, 0)
        else:
            assert (entry["rejected"], entry["rewards"], entry["penalties"], entry["net"]) == (1, 0, 2, -2)
    for member in COMMITTEE:
        entry = board[ledger.key(member)]
        assert (entry["verdicts"], entry["rewards"]) == (3, 3)
    nets = [e["net"] for e in ledger.query("GetLeaderboard", model_id)]
    assert nets == sorted(nets, reverse=True)

    # Close: the accepted set is fixed, sorted by update id, the rejected update left out.
    ledger.submit(PUBLISHER, "CloseRound", model_id, "1")
    closed = ledger.query("GetRound", model_id, "1")
    assert closed["status"] == "closed"
    assert closed["accepted"] == sorted([good, also_good])
    assert closed["totalSamples"] == 200

    aggregate = store.put(f"{model_id}: aggregate of round 1".encode())
    ledger.submit(COMMITTEE[0], "RecordAggregate", model_id, "1", ref(aggregate))
    assert [a["sha256"] for a in ledger.query("GetAggregates", model_id, "1")] == [aggregate.sha256_hex]
    for i, member in enumerate(COMMITTEE):
        assert ledger.query("GetModel", model_id)["currentRound"] == 1
        confirmation = {"sha256": aggregate.sha256_hex, "score": 0.9 + 0.01 * i}
        ledger.submit(member, "ConfirmAggregate", model_id, "1", confirmation)

    done = ledger.query("GetRound", model_id, "1")
    assert done["status"] == "done"
    assert done["aggregate"] == ref(aggregate)
    model = ledger.query("GetModel", model_id)
    assert model["currentRound"] == 2 and model["status"] == "active"
    assert model["global"] == ref(aggregate)
    round2 = ledger.query("GetRound", model_id, "2")
    assert round2["status"] == "open" and round2["global"] == ref(aggregate)


# ---------------------------------------------------------------------------- gossip


def test_gossip_parents_must_be_accepted(ledger, store):
    model_id = publish_and_activate(ledger, store, "gossip", mode="gossip", quorum=2)["id"]

    def submit(provider: str, tag: str, parents: list[str]) -> str:
        obj = store.put(f"{model_id}: {tag}".encode())
        update = {"parents": parents, **ref(obj), "numSamples": 50, "metrics": {}}
        return json.loads(ledger.submit(provider, "SubmitUpdate", model_id, update))["id"]

    root = submit(PROVIDERS[0], "root", [])
    free_rider = submit(PROVIDERS[1], "free rider", [])
    verdicts(ledger, root, [0.9, 0.95], accept=True)
    verdicts(ledger, free_rider, [0.1, 0.2], accept=False)
    assert ledger.query("GetUpdate", root)["status"] == "accepted"
    assert ledger.query("GetUpdate", free_rider)["status"] == "rejected"

    child = submit(PROVIDERS[2], "child of root", [root])
    assert [p["id"] for p in ledger.query("GetParents", child)] == [root]
    assert ids(ledger.query("GetChildren", root, "", "")["items"]) == [child]

    # A pending update cannot be a parent either, and a rejected one never.
    with pytest.raises(ContractError) as excinfo:
        submit(PROVIDERS[0], "child of pending", [child])
    expect_contract_error(excinfo, f"parents[0]: update {child} is pending, not accepted")
    verdicts(ledger, child, [0.9, 0.9], accept=True)
    before = ledger.query("ListProviderUpdates", model_id, ledger.key(PROVIDERS[2]), "", "")
    with pytest.raises(ContractError) as excinfo:
        submit(PROVIDERS[2], "child of the free rider", [child, free_rider])
    expect_contract_error(excinfo, f"parents[1]: update {free_rider} is rejected, not accepted")
    assert ledger.query("ListProviderUpdates", model_id, ledger.key(PROVIDERS[2]), "", "") == before
    assert ledger.query("GetChildren", free_rider, "", "")["count"] == 0
    # The accepted child is a valid parent.
    grandchild = submit(PROVIDERS[0], "grandchild", [child, root])
    assert ledger.query("GetUpdate", grandchild)["parents"] == [child, root]


# ---------------------------------------------------------------------------- rejections


@pytest.fixture
def pending_update(ledger, store):
    """An active federated model (quorum 2) with one update that has one verdict."""
    model_id = publish_and_activate(ledger, store, "reject", mode="federated", quorum=2)["id"]
    init = ledger.query("GetRound", model_id, "1")["global"]
    obj = store.put(f"{model_id}: update".encode())
    update = {"round": 1, "baseCid": init["cid"], "baseSha256": init["sha256"], **ref(obj), "numSamples": 10}
    uid = json.loads(ledger.submit(PROVIDERS[0], "SubmitUpdate", model_id, update))["id"]
    ledger.submit(COMMITTEE[1], "SubmitVerdict", uid, {"score": 0.9, "accept": True})
    return model_id, uid


def state_of(ledger: DrillLedger, model_id: str, uid: str) -> dict:
    return {
        "update": ledger.query("GetUpdate", uid),
        "verdicts": ledger.query("GetVerdicts", uid),
        "board": ledger.query("GetLeaderboard", model_id),
        "outsider": ledger.client(OUTSIDER).who_am_i()["account"],
    }


def test_double_vote_is_rejected_and_changes_nothing(ledger, pending_update):
    model_id, uid = pending_update
    before = state_of(ledger, model_id, uid)
    with pytest.raises(ContractError) as excinfo:
        ledger.submit(COMMITTEE[1], "SubmitVerdict", uid, {"score": 0.1, "accept": False})
    expect_contract_error(
        excinfo, f"member {ledger.key(COMMITTEE[1])} has already submitted a verdict on update {uid}"
    )
    assert state_of(ledger, model_id, uid) == before
    assert before["update"]["status"] == "pending" and before["update"]["verdictCount"] == 1


def test_verdict_from_a_non_member_is_rejected_and_changes_nothing(ledger, pending_update):
    model_id, uid = pending_update
    before = state_of(ledger, model_id, uid)
    with pytest.raises(ContractError) as excinfo:
        ledger.submit(OUTSIDER, "SubmitVerdict", uid, {"score": 0.9, "accept": True})
    expect_contract_error(
        excinfo, f"access denied: caller {ledger.key(OUTSIDER)} is not on the committee of model {model_id}"
    )
    assert state_of(ledger, model_id, uid) == before


def test_unknown_json_field_is_rejected_and_changes_nothing(ledger, pending_update):
    model_id, uid = pending_update
    before = state_of(ledger, model_id, uid)
    with pytest.raises(ContractError) as excinfo:
        ledger.submit(COMMITTEE[2], "SubmitVerdict", uid, {"score": 0.9, "accept": True, "bonus": 5})
    expect_contract_error(excinfo, 'SubmitVerdict input: invalid JSON: json: unknown field "bonus"')
    assert state_of(ledger, model_id, uid) == before
    # The same member's well-formed verdict then goes through and finalizes the update.
    ledger.submit(COMMITTEE[2], "SubmitVerdict", uid, {"score": 0.85, "accept": True})
    assert ledger.query("GetUpdate", uid)["status"] == "accepted"
