"""Access-control matrix against the real network: every role-restricted transaction, every kind of caller.

For each transaction there is a valid target at the moment it is tried (a proposed model to vote on, an
open round to submit to, a pending update to judge, a closed round to aggregate, an open rule change),
so the only reason a call can fail is who makes it. Each cell is observed in two steps:

1. the call is *evaluated* (simulated on a peer, never ordered): the chaincode either runs to the end
   (``allowed``) or answers ``access denied: ...`` (``denied``); the peer itself refuses an identity
   from an unknown CA before any chaincode runs (``denied`` too, with the peer's message);
2. every denied call is then *submitted* for real: it must fail at endorsement with the same kind of
   refusal, and afterwards every peer's block height and everything the call could have touched (read
   back through queries) must be unchanged.

Allowed cells are only evaluated, so the state stays valid for the rest of the row. Between rows the
test itself moves the scenario on (closes the round, records the aggregate) as the rightful caller.
The observed matrix is printed, written to reports/access-matrix.txt, and must equal EXPECTED.
"""

from __future__ import annotations

import json

import pytest

from fedcommittee.ledger import Gateway
from fedcommittee.ledger.contract import accepted_digest
from tests.integration.drills import (
    ALL_USERS,
    COMMITTEE,
    FORGED,
    NO_ROLE,
    OTHER_COMMITTEE,
    PROVIDER,
    PROVIDER2,
    PUBLISHER,
    ROLES,
    accept,
    account_queries,
    activate,
    drill_ledger,
    federated_update,
    forged_identity,
    gossip_update,
    model_queries,
    model_spec,
    ref,
    unique_id,
    update_queries,
)
from tests.integration.network import ROOT

# Caller kinds (columns) and the identity that plays each one.
COLUMNS = {
    "publisher": PUBLISHER,  # publisher of every drill model
    "provider": PROVIDER,
    "committee": COMMITTEE[0],  # seated on every drill model
    "other-committee": OTHER_COMMITTEE,  # committee role, seated on none
    "no-role": NO_ROLE,
    "org-admin": "org2-admin",  # admin of the org in charge: the target's org; a governance org
    "other-org-admin": "org3-admin",  # another org's admin; Org3 is not in the governance rule
    "unknown-CA": FORGED,  # claims Org1MSP, issued by a CA the channel does not know
}

A, D = "allowed", "denied"
EXPECTED = {
    #                    publisher provider committee other-c no-role org-adm other-adm unknown-CA
    "GrantRole": [D, D, D, D, D, A, D, D],
    "RevokeRole": [D, D, D, D, D, A, D, D],
    "PublishModel": [A, D, D, D, D, D, D, D],
    "ApproveModel": [D, D, A, D, D, D, D, D],
    "RejectModel": [D, D, A, D, D, D, D, D],
    "RegisterData": [D, A, D, D, D, D, D, D],
    "SubmitUpdate": [D, A, D, D, D, D, D, D],
    "SubmitVerdict": [D, D, A, D, D, D, D, D],
    "SubmitVerdicts": [D, D, A, D, D, D, D, D],
    "FinishModel": [A, D, D, D, D, D, D, D],
    "ProposeRuleChange": [A, D, D, D, D, A, D, D],
    "VoteRuleChange": [D, D, D, D, D, A, D, D],
    "CloseRound": [A, A, A, D, D, D, D, D],
    "CloseRoundWithAggregate": [A, A, A, D, D, D, D, D],
    "RecordAggregate": [A, A, A, D, D, D, D, D],
    "ConfirmAggregate": [D, D, A, D, D, D, D, D],
    "ProposeFinal": [A, D, D, D, D, D, D, D],
    "JudgeFinal": [D, D, A, D, D, D, D, D],
}
GOVERNANCE_ORGS = ["Org1MSP", "Org2MSP"]


def render(matrix: dict[str, list[str]]) -> str:
    names = list(COLUMNS)
    width = max(len(r) for r in matrix) + 2
    lines = ["".ljust(width) + " ".join(n.rjust(15) for n in names)]
    for row, cells in matrix.items():
        lines.append(row.ljust(width) + " ".join(c.rjust(15) for c in cells))
    lines.append("")
    lines.append("identities: " + ", ".join(f"{k}={v}" for k, v in COLUMNS.items()))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def ledger(fabric):
    with drill_ledger(fabric, ROLES) as led:
        yield led


def test_access_control_matrix(ledger, store, capsys):
    # ------------------------------------------------------------------ scenario
    # Model A: federated, active, governance by Org1+Org2, round 1 open with one accepted update.
    spec_a = model_spec(ledger, store, unique_id("acl-a"), governance=GOVERNANCE_ORGS)
    model_a = spec_a["modelId"]
    ledger.submit(PUBLISHER, "PublishModel", spec_a)
    a = activate(ledger, model_a)
    u1 = json.loads(ledger.submit(PROVIDER2, "SubmitUpdate", model_a, federated_update(store, a, "u1")))["id"]
    accept(ledger, u1)
    proposal = ledger.submit(PUBLISHER, "ProposeRuleChange", model_a, {"quorum": 1, "reason": "drill"})
    # Model B: proposed, nobody has voted.
    spec_b = model_spec(ledger, store, unique_id("acl-b"))
    model_b = spec_b["modelId"]
    ledger.submit(PUBLISHER, "PublishModel", spec_b)
    # Model G: gossip, active, one accepted root and one pending update.
    spec_g = model_spec(ledger, store, unique_id("acl-g"), mode="gossip")
    model_g = spec_g["modelId"]
    ledger.submit(PUBLISHER, "PublishModel", spec_g)
    activate(ledger, model_g)
    root = json.loads(
        ledger.submit(PROVIDER2, "SubmitUpdate", model_g, gossip_update(store, model_g, "root"))
    )
    accept(ledger, root["id"])
    pending = json.loads(
        ledger.submit(PROVIDER2, "SubmitUpdate", model_g, gossip_update(store, model_g, "pending"))
    )["id"]

    aggregate = store.put(f"{model_a}: aggregate of round 1".encode())
    state_queries = (
        model_queries(model_a)
        + model_queries(model_b, rounds=0)
        + model_queries(model_g, rounds=0)
        + update_queries(u1)
        + update_queries(root["id"])
        + update_queries(pending)
        + [("GetRuleChange", proposal)]
        + account_queries(ledger, ALL_USERS)
    )
    new_model = model_spec(ledger, store, unique_id("acl-new"))

    # Each row: the transaction's arguments, valid at the time the row is tried.
    rows = {
        "GrantRole": lambda: (ledger.key(NO_ROLE), "committee"),
        "RevokeRole": lambda: (ledger.key(PROVIDER), "provider"),
        "PublishModel": lambda: (new_model,),
        "ApproveModel": lambda: (model_b, "0.5"),
        "RejectModel": lambda: (model_b, "drill: not good enough"),
        "RegisterData": lambda: (
            model_a,
            {"numSamples": 100, "dataType": "image", "format": "png-28x28", "shareHistogram": False},
        ),
        "SubmitUpdate": lambda: (model_a, federated_update(store, a, "matrix update")),
        "SubmitVerdict": lambda: (pending, {"score": 0.9, "accept": True}),
        "SubmitVerdicts": lambda: ({"verdicts": [{"updateId": pending, "score": 0.9, "accept": True}]},),
        "FinishModel": lambda: (model_g, root["id"]),
        "ProposeRuleChange": lambda: (model_a, {"deadlineSeconds": 900, "reason": "drill"}),
        "VoteRuleChange": lambda: (proposal, "true"),
        "CloseRound": lambda: (model_a, "1"),
        "CloseRoundWithAggregate": lambda: (
            model_a,
            "1",
            {**ref(aggregate), "acceptedSha256": accepted_digest([u1])},
        ),
        "RecordAggregate": lambda: (model_a, "1", ref(store.put(f"{model_a}: other aggregate".encode()))),
        "ConfirmAggregate": lambda: (model_a, "1", {"sha256": aggregate.sha256_hex, "score": 0.9}),
        "ProposeFinal": lambda: (model_g, final_proposal),
        "JudgeFinal": lambda: (model_g, {"qualities": [0.5, 0.5]}),
    }
    mix = ref(store.put(f"{model_g}: the mix".encode()))
    final_proposal = {"mix": [root["id"]], **mix, "candidates": [root["id"]]}
    # The scenario moves on, as its rightful caller, before these rows.
    before_row = {
        "RecordAggregate": lambda: ledger.submit(PUBLISHER, "CloseRound", model_a, "1"),
        "ConfirmAggregate": lambda: ledger.submit(
            COMMITTEE[0], "RecordAggregate", model_a, "1", ref(aggregate)
        ),
        "ProposeFinal": lambda: accept(ledger, pending),  # a final is proposed once none is pending
        "JudgeFinal": lambda: ledger.submit(PUBLISHER, "ProposeFinal", model_g, final_proposal),
    }

    # ------------------------------------------------------------------ the matrix
    observed: dict[str, list[str]] = {}
    problems: list[str] = []
    peer_answer = ""
    for row, make_args in rows.items():
        if row in before_row:
            before_row[row]()
        args = make_args()
        state = ledger.snapshot(state_queries)
        heights = ledger.heights()
        cells = []
        for column, user in COLUMNS.items():
            seen = ledger.evaluate_outcome(user, row, *args)
            if seen.kind == "denied":
                # The real path: endorsement must refuse it in the same way, and nothing is ordered.
                real = ledger.submit_outcome(user, row, *args)
                if real.kind != "denied":
                    problems.append(
                        f"{row} by {column}: evaluate denied, submit gave {real.kind}: {real.message}"
                    )
                if user == FORGED:
                    assert "creator" in real.message, real.message
                    peer_answer = peer_answer or real.message
                else:
                    assert real.message.startswith("access denied"), real.message
            elif seen.kind == "error":
                problems.append(f"{row} by {column}: not an access decision: {seen.message}")
            cells.append(seen.kind)
        observed[row] = cells
        assert ledger.heights() == heights, f"{row}: a refused call was ordered"
        assert ledger.snapshot(state_queries) == state, f"{row}: a refused call changed state"

    text = render(observed) + f"\nthe peer's answer to the unknown CA: {peer_answer}"
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "access-matrix.txt").write_text(text + "\n")
    with capsys.disabled():
        print("\n\naccess-control matrix (observed on the real network):\n" + text + "\n")
    assert not problems, "\n".join(problems)
    assert observed == EXPECTED, "observed matrix differs from the expected one:\n" + text


def test_unknown_ca_is_refused_by_the_peer_for_queries_and_admin_claims(ledger):
    """The forged identity cannot even read, and a forged OU=admin certificate grants nothing."""
    err = ledger.evaluate_outcome(FORGED, "WhoAmI")
    assert err.kind == "denied" and "creator" in err.message, err

    identity, signer = forged_identity(ou="admin")
    peer = ledger.profile.peer(msp_id="Org1MSP")
    with Gateway.connect(
        peer.endpoint,
        identity,
        signer,
        tls_ca_pem=peer.tls_ca_pem(),
        server_name_override=peer.server_name_override,
    ) as gw:
        heights = ledger.heights()
        before = ledger.query("GetAccount", ledger.key(PROVIDER2))
        contract = gw.network(ledger.channel).contract(ledger.profile.chaincode)
        with pytest.raises(Exception) as excinfo:
            contract.submit("GrantRole", ledger.key(PROVIDER2), "publisher")
        assert "access denied" in str(excinfo.value) and "creator" in str(excinfo.value), excinfo.value
        assert ledger.heights() == heights
        assert ledger.query("GetAccount", ledger.key(PROVIDER2)) == before
