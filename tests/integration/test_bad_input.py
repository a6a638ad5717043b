"""Bad-input drills: malformed, hostile and replayed inputs against the real network, and hostile content.

Chaincode part (needs Fabric): raw transaction calls with malformed JSON, wrong types, unknown fields,
oversize payloads, bad CIDs and sha256s, out-of-range numbers, unknown functions, updates to a closed
round, verdicts from non-members, double votes, and a replayed signed transaction envelope. Every one
must be rejected with a message that names the problem, and nothing may change: no block is added
(every peer's height is read back after each call) and every affected record reads back the same.

Content part (needs only IPFS): bytes whose sha256 is not the one recorded are refused by
``ContentStore.get``; a pickle, a torch zip file and other non-safetensors files are refused by
``serialize.loads`` even when their hash checks out.

The module prints a summary at the end (inputs tried, rejected, state changes observed) and writes
it to reports/bad-input-summary.txt.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import time

import pytest

from fedcommittee.ledger.contract import accepted_digest
from fedcommittee.storage import IntegrityError, InvalidCid, ObjectTooLarge
from tests.integration.drills import (
    ALL_USERS,
    COMMITTEE,
    NO_ROLE,
    OTHER_COMMITTEE,
    PROVIDER,
    PROVIDER2,
    PUBLISHER,
    ROLES,
    DrillLedger,
    Tally,
    accept,
    account_queries,
    activate,
    drill_ledger,
    federated_update,
    model_queries,
    model_spec,
    ref,
    unique_id,
    update_queries,
)
from tests.integration.network import ROOT

ZERO_ID = "0" * 64


@pytest.fixture(scope="module")
def tally(request):
    t = Tally()
    yield t
    text = t.summary() + "\n" + "\n".join(t.lines)
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "bad-input-summary.txt").write_text(text + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n\n{t.summary()}\n(details in reports/bad-input-summary.txt)\n")


@pytest.fixture(scope="module")
def ledger(fabric):
    with drill_ledger(fabric, ROLES) as led:
        yield led


@pytest.fixture(scope="module")
def scenario(ledger, store):
    """Model F: federated, active, round 1 open, governed by Org1+Org2. Model P: proposed, one approval."""
    spec_f = model_spec(ledger, store, unique_id("bad-f"), governance=["Org1MSP", "Org2MSP"])
    ledger.submit(PUBLISHER, "PublishModel", spec_f)
    model_f = activate(ledger, spec_f["modelId"])
    spec_p = model_spec(ledger, store, unique_id("bad-p"))
    ledger.submit(PUBLISHER, "PublishModel", spec_p)
    ledger.submit(COMMITTEE[0], "ApproveModel", spec_p["modelId"], "0.5")
    return {"F": model_f, "P": spec_p["modelId"], "spec": spec_f}


def queries(ledger: DrillLedger, scenario: dict, updates: list[str] = ()) -> list[tuple]:
    qs = model_queries(scenario["F"]["id"]) + model_queries(scenario["P"], rounds=0)
    for uid in updates:
        qs += update_queries(uid)
    return qs + account_queries(ledger, ALL_USERS)


def run_cases(ledger: DrillLedger, tally: Tally, cases: list[tuple], state_queries: list[tuple]) -> None:
    """Submit every case for real; each must be refused naming ``expect``; nothing may change."""
    state = ledger.snapshot(state_queries)
    heights = ledger.heights()
    problems = []
    for label, user, fn, args, expect in cases:
        out = ledger.submit_outcome(user, fn, *args)
        rejected = out.kind != "allowed"
        tally.add(f"{fn} {label}", rejected, out.message)
        if not rejected:
            problems.append(f"{fn} {label}: ACCEPTED (tx {out.txid})")
        elif expect not in out.message:
            problems.append(f"{fn} {label}: message {out.message!r} does not name the problem ({expect!r})")
        now = ledger.heights()
        if now != heights:
            tally.state_changes += 1
            problems.append(f"{fn} {label}: a block was added ({heights} -> {now})")
            heights = now
    if ledger.snapshot(state_queries) != state:
        tally.state_changes += 1
        problems.append("state read back differs after the drills")
    assert not problems, "\n".join(problems)


def with_(doc: dict, path: str, value) -> dict:
    """A deep copy of ``doc`` with ``path`` (dotted, list indexes as numbers) set to ``value``."""
    out = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[int(last) if isinstance(node, list) else last] = value
    return out


def test_malformed_transaction_inputs_are_rejected(ledger, store, scenario, tally):
    f, model_f, model_p = scenario["F"], scenario["F"]["id"], scenario["P"]
    spec = model_spec(ledger, store, unique_id("bad-new"))
    spec_json = json.dumps(spec)
    upd = federated_update(store, f, "bad-input update")
    other = store.put(b"some other object")
    cidv1 = other.cid
    assert cidv1.startswith("b"), cidv1
    sha = spec["initialWeights"]["sha256"]

    cases = [
        # PublishModel: JSON shape
        ("truncated JSON", PUBLISHER, "PublishModel", ["{"], "PublishModel input: invalid JSON"),
        ("not JSON", PUBLISHER, "PublishModel", ["not json"], "input must be an object"),
        ("empty", PUBLISHER, "PublishModel", [""], "PublishModel input: empty JSON input"),
        ("array", PUBLISHER, "PublishModel", ["[1,2]"], "input must be an object"),
        ("trailing data", PUBLISHER, "PublishModel", [spec_json + "{}"], "trailing data after the object"),
        (
            "NaN literal",
            PUBLISHER,
            "PublishModel",
            [json.dumps(with_(spec, "quorum", float("nan")))],
            "invalid",
        ),
        ("unknown field", PUBLISHER, "PublishModel", [with_(spec, "owner", "me")], 'unknown field "owner"'),
        (
            "nested unknown field",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "metric.unit", "%")],
            'unknown field "unit"',
        ),
        ("quorum as string", PUBLISHER, "PublishModel", [with_(spec, "quorum", "2")], "ModelSpec.quorum"),
        ("quorum as float", PUBLISHER, "PublishModel", [with_(spec, "quorum", 1.5)], "ModelSpec.quorum"),
        (
            "committee as object",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "committee", {})],
            "ModelSpec.committee",
        ),
        (
            "oversize (70 000 bytes)",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "architecture.name", "x" * 70_000)],
            "limit is 65536",
        ),
        # PublishModel: field values
        ("bad modelId", PUBLISHER, "PublishModel", [with_(spec, "modelId", "Bad Id")], "modelId:"),
        ("existing modelId", PUBLISHER, "PublishModel", [with_(spec, "modelId", model_f)], "already exists"),
        (
            "CIDv0 not base58",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "initialWeights.cid", "Qm" + "0O" * 22)],
            "initialWeights.cid:",
        ),
        (
            "short CID",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "initialWeights.cid", "QmNotACid")],
            "not a CIDv0",
        ),
        (
            "upper-case CIDv1",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "initialWeights.cid", cidv1.upper())],
            "initialWeights.cid:",
        ),
        (
            "truncated CIDv1",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "initialWeights.cid", cidv1[:-2])],
            "initialWeights.cid:",
        ),
        (
            "upper-case sha256",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "initialWeights.sha256", sha.upper())],
            "initialWeights.sha256:",
        ),
        (
            "63-char specSha256",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "specSha256", sha[:63])],
            "specSha256:",
        ),
        (
            "non-hex specSha256",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "specSha256", "z" * 64)],
            "specSha256:",
        ),
        (
            "bad shard sha256",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "committee.0.shardSha256", "0x" + sha[2:])],
            "committee[0].shardSha256:",
        ),
        (
            "member without the committee role",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "committee.1.member", ledger.key(NO_ROLE))],
            "committee[1].member:",
        ),
        ("quorum 0", PUBLISHER, "PublishModel", [with_(spec, "quorum", 0)], "quorum: 0 is out of range"),
        (
            "quorum > committee",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "quorum", 3)],
            "quorum: 3 is out of range",
        ),
        (
            "threshold outside the score range",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "acceptance.threshold", 2)],
            "acceptance.threshold:",
        ),
        ("unknown mode", PUBLISHER, "PublishModel", [with_(spec, "mode", "central")], 'mode: "central"'),
        (
            "negative reward",
            PUBLISHER,
            "PublishModel",
            [with_(spec, "rewardRules.acceptReward", -1)],
            "rewardRules.acceptReward: -1 is out of range",
        ),
        # SubmitUpdate
        (
            "truncated JSON",
            PROVIDER,
            "SubmitUpdate",
            [model_f, '{"round":1,'],
            "SubmitUpdate input: invalid JSON",
        ),
        (
            "numSamples as string",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "numSamples", "100")],
            "numSamples",
        ),
        (
            "numSamples 0",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "numSamples", 0)],
            "numSamples: 0 is out",
        ),
        (
            "metric as string",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "metrics.loss", "low")],
            "metrics",
        ),
        ("bad CID", PROVIDER, "SubmitUpdate", [model_f, with_(upd, "cid", "Qm123")], "update.cid:"),
        (
            "bad sha256",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "sha256", upd["sha256"][1:])],
            "update.sha256:",
        ),
        (
            "bad metric name",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "metrics", {"lo ss": 1})],
            "metrics key:",
        ),
        (
            "33 metrics",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "metrics", {f"m{i}": 0.1 for i in range(33)})],
            "metrics: 33 entries, limit is 32",
        ),
        (
            "unknown field",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "weights", "AAAA")],
            'unknown field "weights"',
        ),
        (
            "parents in federated mode",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "parents", [ZERO_ID])],
            "parents: not used in federated mode",
        ),
        (
            "wrong base model",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "baseSha256", other.sha256_hex)],
            "baseCid/baseSha256:",
        ),
        (
            "future round",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(upd, "round", 2)],
            "round: 2 is not the open round",
        ),
        (
            "oversize (70 000 bytes)",
            PROVIDER,
            "SubmitUpdate",
            [model_f, upd | {"pad": "x" * 70_000}],
            "limit is 65536",
        ),
        ("unknown model", PROVIDER, "SubmitUpdate", [unique_id("nope"), upd], "not found"),
        ("path-like model id", PROVIDER, "SubmitUpdate", ["../model", upd], "modelId:"),
        ("model not yet active", PROVIDER, "SubmitUpdate", [model_p, upd], "is proposed, not active"),
        # ApproveModel / RejectModel (committee member 2 has not voted on P)
        (
            "score not a number",
            COMMITTEE[1],
            "ApproveModel",
            [model_p, "abc"],
            'score: "abc" is not a number',
        ),
        ("score NaN", COMMITTEE[1], "ApproveModel", [model_p, "NaN"], "score: NaN is out of range"),
        ("score overflow", COMMITTEE[1], "ApproveModel", [model_p, "1e309"], "is not a number"),
        (
            "score out of range",
            COMMITTEE[1],
            "ApproveModel",
            [model_p, "1.5"],
            "outside the model's score range",
        ),
        ("non-UTF-8 model id", COMMITTEE[1], "ApproveModel", [b"\xff\xfe", "0.5"], "modelId:"),
        ("empty reason", COMMITTEE[1], "RejectModel", [model_p, ""], "reason: required"),
        (
            "control character",
            COMMITTEE[1],
            "RejectModel",
            [model_p, "bad\x07"],
            "reason: contains a control",
        ),
        (
            "600-byte reason",
            COMMITTEE[1],
            "RejectModel",
            [model_p, "x" * 600],
            "reason: 600 bytes, limit is 512",
        ),
        # Roles, rounds, governance: argument formats
        (
            "unknown role",
            "org1-admin",
            "GrantRole",
            [ledger.key(PUBLISHER), "root"],
            'role: "root" is not one of',
        ),
        ("not an identity key", "org1-admin", "GrantRole", ["nobody", "provider"], "is not an identity key"),
        ("round 0", PUBLISHER, "CloseRound", [model_f, "0"], 'round: "0" is not a round number'),
        ("round 1.0", PUBLISHER, "CloseRound", [model_f, "1.0"], 'round: "1.0" is not a round number'),
        ("round 99999", PUBLISHER, "CloseRound", [model_f, "99999"], 'round: "99999" is not a round number'),
        ("nothing accepted yet", PUBLISHER, "CloseRound", [model_f, "1"], "cannot close yet"),
        ("open round", COMMITTEE[0], "RecordAggregate", [model_f, "1", ref(other)], "is open, not closed"),
        (
            "close with an aggregate before anything is accepted",
            PUBLISHER,
            "CloseRoundWithAggregate",
            [model_f, "1", {**ref(other), "acceptedSha256": accepted_digest([ZERO_ID])}],
            "cannot close yet",
        ),
        (
            "accepted set's digest not a sha256",
            PUBLISHER,
            "CloseRoundWithAggregate",
            [model_f, "1", {**ref(other), "acceptedSha256": "u1"}],
            'acceptedSha256: "u1" is not a sha256',
        ),
        ("approve not a boolean", "org1-admin", "VoteRuleChange", [ZERO_ID, "yes"], 'approve: "yes" must be'),
        ("bad proposal id", "org1-admin", "VoteRuleChange", ["abc", "true"], 'proposalId: "abc"'),
        ("unknown proposal", "org1-admin", "VoteRuleChange", [ZERO_ID, "true"], "not found"),
        # The contract surface itself
        ("unknown function", PUBLISHER, "DeleteEverything", [], "DeleteEverything"),
        (
            "too few arguments",
            "org1-admin",
            "GrantRole",
            [ledger.key(PUBLISHER)],
            "takes 2 argument(s), got 1",
        ),
    ]
    run_cases(ledger, tally, cases, queries(ledger, scenario))


def test_surplus_arguments_are_rejected(ledger, scenario, tally):
    """contract-api refuses only too few arguments; the contract refuses surplus ones itself."""
    heights = ledger.heights()
    out = ledger.evaluate_outcome(COMMITTEE[1], "ApproveModel", scenario["P"], "0.5", "extra")
    assert ledger.heights() == heights
    rejected = out.kind != "allowed"
    tally.add("ApproveModel with a surplus argument (evaluated only)", rejected, out.message)
    assert rejected and "ApproveModel takes 2 argument(s), got 3" in out.message, out


@pytest.fixture(scope="module")
def round_closed(ledger, store, scenario):
    """Round 1 of F: U1 accepted, U2 pending with one verdict (and a sha256 that is not its content's);
    then the round is closed, an aggregate recorded and confirmed once; a rule change has one vote."""
    f, model_f = scenario["F"], scenario["F"]["id"]
    u1 = json.loads(ledger.submit(PROVIDER2, "SubmitUpdate", model_f, federated_update(store, f, "u1")))
    accept(ledger, u1["id"])
    mismatched = federated_update(store, f, "u2 as uploaded")
    mismatched["sha256"] = hashlib.sha256(b"u2 as claimed").hexdigest()  # the chaincode cannot see IPFS
    u2 = json.loads(ledger.submit(PROVIDER, "SubmitUpdate", model_f, mismatched))["id"]
    ledger.submit(COMMITTEE[0], "SubmitVerdict", u2, {"score": 0.7, "accept": True})
    proposal = ledger.submit(PUBLISHER, "ProposeRuleChange", model_f, {"quorum": 1, "reason": "drill"})
    ledger.submit("org1-admin", "VoteRuleChange", proposal, "true")
    ledger.submit(PUBLISHER, "CloseRound", model_f, "1")
    aggregate = store.put(f"{model_f}: aggregate of round 1".encode())
    ledger.submit(COMMITTEE[0], "RecordAggregate", model_f, "1", ref(aggregate))
    ledger.submit(
        COMMITTEE[0], "ConfirmAggregate", model_f, "1", {"sha256": aggregate.sha256_hex, "score": 0.8}
    )
    return {"u1": u1, "u2": u2, "proposal": proposal, "aggregate": aggregate}


def test_closed_rounds_non_members_and_double_votes_are_rejected(
    ledger, store, scenario, round_closed, tally
):
    f, model_f, model_p = scenario["F"], scenario["F"]["id"], scenario["P"]
    u1, u2 = round_closed["u1"]["id"], round_closed["u2"]
    agg = round_closed["aggregate"]
    verdict = {"score": 0.8, "accept": True}
    member = ledger.key(COMMITTEE[0])
    cases = [
        # Updates to a closed round (and a resubmitted object).
        (
            "to the closed round",
            PROVIDER,
            "SubmitUpdate",
            [model_f, federated_update(store, f, "late")],
            "is closed: updates are closed",
        ),
        (
            # The round's rules come first: a replay into an open round is recorded as rejected
            # (tests/integration/test_agents.py), into a closed one it writes nothing.
            "another provider's object again, to the closed round",
            PROVIDER,
            "SubmitUpdate",
            [model_f, with_(federated_update(store, f, "x"), "sha256", round_closed["u1"]["sha256"])],
            "is closed: updates are closed",
        ),
        ("closed round again", PUBLISHER, "CloseRound", [model_f, "1"], "is closed, not open"),
        # Verdicts from non-members.
        (
            "by a committee-role holder not seated",
            OTHER_COMMITTEE,
            "SubmitVerdict",
            [u2, verdict],
            "access denied",
        ),
        ("by an identity without roles", NO_ROLE, "SubmitVerdict", [u2, verdict], "access denied"),
        ("by the publisher", PUBLISHER, "SubmitVerdict", [u2, verdict], "access denied"),
        ("by the provider", PROVIDER2, "SubmitVerdict", [u2, verdict], "access denied"),
        # Double votes.
        (
            "second verdict by one member",
            COMMITTEE[0],
            "SubmitVerdict",
            [u2, verdict],
            "already submitted a verdict",
        ),
        (
            "verdict on a finalized update",
            COMMITTEE[0],
            "SubmitVerdict",
            [u1, verdict],
            "not pending: verdicts are",
        ),
        (
            "second approval by one member",
            COMMITTEE[0],
            "ApproveModel",
            [model_p, "0.6"],
            "has already voted on",
        ),
        (
            "second confirmation by one member",
            COMMITTEE[0],
            "ConfirmAggregate",
            [model_f, "1", {"sha256": agg.sha256_hex, "score": 0.9}],
            f"member {member} has already confirmed",
        ),
        (
            "second aggregate by one recorder",
            COMMITTEE[0],
            "RecordAggregate",
            [model_f, "1", ref(store.put(b"another aggregate"))],
            "has already recorded an aggregate",
        ),
        (
            "same aggregate again",
            PUBLISHER,
            "RecordAggregate",
            [model_f, "1", ref(agg)],
            "is already recorded",
        ),
        (
            "second vote by one org",
            "org1-admin",
            "VoteRuleChange",
            [round_closed["proposal"], "false"],
            "org Org1MSP has already voted",
        ),
        (
            "role already held",
            "org1-admin",
            "GrantRole",
            [ledger.key(PUBLISHER), "publisher"],
            "already holds",
        ),
        ("role not held", "org1-admin", "RevokeRole", [ledger.key(PUBLISHER), "committee"], "does not hold"),
        # Verdict and confirmation formats (member 2 has voted on nothing here).
        ("score missing", COMMITTEE[1], "SubmitVerdict", [u2, {"accept": True}], "score: required"),
        ("accept missing", COMMITTEE[1], "SubmitVerdict", [u2, {"score": 0.5}], "accept: required"),
        ("accept as string", COMMITTEE[1], "SubmitVerdict", [u2, {"score": 0.5, "accept": "yes"}], "accept"),
        (
            "score 5",
            COMMITTEE[1],
            "SubmitVerdict",
            [u2, {"score": 5, "accept": True}],
            "outside the model's score",
        ),
        (
            "unknown field",
            COMMITTEE[1],
            "SubmitVerdict",
            [u2, verdict | {"bonus": 5}],
            'unknown field "bonus"',
        ),
        ("trailing data", COMMITTEE[1], "SubmitVerdict", [u2, json.dumps(verdict) + "{}"], "trailing data"),
        ("control character", COMMITTEE[1], "SubmitVerdict", [u2, verdict | {"reason": "a\x00b"}], "control"),
        (
            "oversize (70 000 bytes)",
            COMMITTEE[1],
            "SubmitVerdict",
            [u2, verdict | {"reason": "x" * 70_000}],
            "limit is 65536",
        ),
        (
            "bad update id",
            COMMITTEE[1],
            "SubmitVerdict",
            ["xyz", verdict],
            'updateId: "xyz" is not an update id',
        ),
        ("unknown update", COMMITTEE[1], "SubmitVerdict", [ZERO_ID, verdict], f"update {ZERO_ID} not found"),
        (
            "unknown aggregate",
            COMMITTEE[1],
            "ConfirmAggregate",
            [model_f, "1", {"sha256": ZERO_ID, "score": 0.9}],
            "no aggregate with sha256",
        ),
        (
            "confirm without score",
            COMMITTEE[1],
            "ConfirmAggregate",
            [model_f, "1", {"sha256": ZERO_ID}],
            "score:",
        ),
        (
            "bad aggregate CID",
            PUBLISHER,
            "RecordAggregate",
            [model_f, "1", ref(agg) | {"cid": "Qm1"}],
            "cid:",
        ),
        ("federated model", PUBLISHER, "FinishModel", [model_f, u1], "is federated"),
    ]
    run_cases(ledger, tally, cases, queries(ledger, scenario, [u1, u2]))


def test_replayed_envelope_commits_once(ledger, scenario, round_closed, tally):
    """Re-submit the signed envelope of a committed verdict: it must not take effect a second time."""
    u2 = round_closed["u2"]
    txid, envelope, block = ledger.submit_keeping_envelope(
        COMMITTEE[1], "SubmitVerdict", u2, {"score": 0.6, "accept": True}
    )
    state_queries = queries(ledger, scenario, [u2])
    state = ledger.snapshot(state_queries)
    assert state[repr(("GetUpdate", u2))]["verdictCount"] == 2  # quorum 2: the verdict finalized it

    outcomes = []
    for _ in range(2):
        try:
            ledger.resubmit(COMMITTEE[1], txid, envelope)
            outcomes.append("accepted for ordering")
        except Exception as exc:  # the gateway or orderer may refuse it up front
            outcomes.append(f"refused at submit: {exc}")
    # Give the orderer time to cut a block with the copies, then look at every block since the first.
    deadline = time.monotonic() + 10
    seen = ledger.occurrences(txid, block)
    while time.monotonic() < deadline and len(seen) < 1 + outcomes.count("accepted for ordering"):
        time.sleep(0.25)
        seen = ledger.occurrences(txid, block)
    valid = [b for b, code in seen if code == "VALID"]
    assert valid == [block], f"the transaction committed more than once or elsewhere: {seen}"
    assert all(code != "VALID" for b, code in seen if b != block), seen
    assert ledger.contract("org1-admin").commit_status(txid) == block
    changed = ledger.snapshot(state_queries) != state
    tally.state_changes += int(changed)
    detail = f"copies in blocks {seen}; submit: {outcomes}"
    tally.add("replayed SubmitVerdict envelope (x2)", not changed and valid == [block], detail)
    assert not changed, "the replayed envelope changed state"


def test_ledger_hash_that_does_not_match_ipfs_content_is_refused(ledger, store, round_closed, tally):
    """U2 was recorded with the CID of one object and the sha256 of another: fetching it fails."""
    u2 = ledger.query("GetUpdate", round_closed["u2"])
    with pytest.raises(IntegrityError) as excinfo:
        store.get(u2["cid"], u2["sha256"], max_bytes=1 << 20)
    assert u2["sha256"] in str(excinfo.value) and "content refused" in str(excinfo.value)
    tally.add(
        "ContentStore.get of an update whose ledger sha256 is not its content's", True, str(excinfo.value)
    )


def test_content_that_does_not_match_its_hash_is_refused(store, tally):
    good = store.put(b"the real weights")
    decoy = store.put(b"weights someone else uploaded")
    cases = [
        ("sha256 of other content", lambda: store.get(good.cid, decoy.sha256_hex, 1 << 20), IntegrityError),
        (
            "CID swapped under a recorded sha256",
            lambda: store.get(decoy.cid, good.sha256_hex, 1 << 20),
            IntegrityError,
        ),
        (
            "recorded size differs",
            lambda: store.get(good.cid, good.sha256_hex, 1 << 20, size=3),
            IntegrityError,
        ),
        ("object over the byte limit", lambda: store.get(good.cid, good.sha256_hex, 4), ObjectTooLarge),
        ("malformed CID", lambda: store.get("QmNotACid", good.sha256_hex, 1 << 20), InvalidCid),
        ("malformed sha256", lambda: store.get(good.cid, good.sha256_hex.upper(), 1 << 20), ValueError),
    ]
    for label, call, error in cases:
        with pytest.raises(error) as excinfo:
            call()
        tally.add(f"ContentStore.get: {label}", True, str(excinfo.value))
    assert store.get(good.cid, good.sha256_hex, 1 << 20, size=good.size) == b"the real weights"


def test_hostile_weight_files_are_refused_even_with_a_correct_hash(store, tally):
    """What reaches serialize.loads passed the hash check, so the loader itself must refuse bad files."""
    torch = pytest.importorskip("torch")
    from fedcommittee.ml import models
    from fedcommittee.ml.serialize import WeightsError, dumps, loads

    state = models.initial_state("mlp", 0)

    class Boom:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    torch_zip = io.BytesIO()
    torch.save(state, torch_zip)
    files = {
        "a pickle of the state dict": (pickle.dumps(state), "pickle"),
        "a pickle that runs code": (pickle.dumps(Boom()), "pickle"),
        "a torch.save zip file": (torch_zip.getvalue(), "pickle"),
        "a JSON document": (json.dumps({"weights": [1, 2, 3]}).encode(), "not safetensors"),
        "a PNG header": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not safetensors"),
        "safetensors of another model": (dumps(models.initial_state("cnn-small", 0)), "do not match"),
        "safetensors cut short": (dumps(state)[:-64], "corrupt"),
    }
    for label, (data, expect) in files.items():
        obj = store.put(data)
        fetched = store.get(obj.cid, obj.sha256_hex, max_bytes=1 << 24, size=obj.size)  # hash checks out
        with pytest.raises(WeightsError, match=expect) as excinfo:
            loads(fetched, "mlp")
        tally.add(f"serialize.loads: {label}", True, str(excinfo.value))
    assert set(loads(store.get_object(store.put(dumps(state))), "mlp")) == set(state)
