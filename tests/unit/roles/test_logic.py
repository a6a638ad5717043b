"""Pure agent logic against in-memory stand-ins for the ledger and the store (unit tests only: the
product path always runs on real Fabric and IPFS, see tests/integration/test_agents.py)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedcommittee import ml
from fedcommittee.experiment import load_experiment
from fedcommittee.ledger import CommitError, ContractError, FedcommitteeClient
from fedcommittee.ledger.gateway import SubmitResult
from fedcommittee.policy import Policy
from fedcommittee.roles import runtime
from fedcommittee.roles.auditor import audit_model
from fedcommittee.roles.data import decode_dataset, encode_dataset
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.reader import Reader, compute_aggregate, gossip_base
from fedcommittee.storage.errors import IntegrityError, IpfsError, IpfsUnavailable

MODEL = "mlp"


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, data: bytes):
        sha = hashlib.sha256(data).hexdigest()
        cid = "bafk" + sha[:20]
        self.objects[cid] = data
        return type("Obj", (), {"cid": cid, "sha256_hex": sha, "size": len(data)})()

    def get(self, cid: str, sha256_hex: str, max_bytes=None, size=None) -> bytes:
        data = self.objects[cid]
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256_hex:
            raise IntegrityError(cid, sha256_hex, actual, len(data))
        return data


class FakeLedger(FedcommitteeClient):
    """The real client with just the queries the auditor and aggregation use answered from dicts
    shaped like the chaincode's JSON (its ``iter_*`` page through them)."""

    def __init__(self) -> None:
        super().__init__(contract=None)
        self.models: dict[str, dict] = {}
        self.rounds: dict[tuple[str, int], dict] = {}
        self.updates: dict[str, dict] = {}

    def get_model(self, mid):
        return self.models[mid]

    def get_round(self, mid, r):
        return self.rounds[(mid, int(r))]

    def get_update(self, uid):
        return self.updates[uid]

    def list_round_updates(self, mid, r, page_size=None, bookmark=""):
        items = [u for u in self.updates.values() if u["modelId"] == mid and u.get("round", 0) == int(r)]
        return {"items": items, "bookmark": "", "count": len(items)}

    def list_accepted_updates(self, mid, r, page_size=None, bookmark=""):
        page = self.list_round_updates(mid, r)
        items = [u for u in page["items"] if u["status"] == "accepted"]
        return {"items": items, "bookmark": "", "count": len(items)}


def federated_history(
    rounds: int = 2,
    model_id: str = "m",
    seal=None,
    reader: Reader | None = None,
    policy: Policy | None = None,
):
    """A finished federated model whose aggregates were computed honestly: 3 updates a round, 2
    accepted. ``seal`` (bytes -> bytes) is applied to every update as uploaded; ``reader`` (one that
    can open them) computes the aggregates, with ``policy`` (default: FedAvg)."""
    policy = policy or Policy()
    store, ledger = FakeStore(), FakeLedger()
    init = ml.initial_state(MODEL, 0)
    g = store.put(ml.dumps(init))
    model = {
        "id": model_id, "architecture": {"name": MODEL, "version": "1"}, "specSha256": ml.spec_hash(MODEL),
        "initialWeights": {"cid": g.cid, "sha256": g.sha256_hex}, "committee": [], "mode": "federated",
        "status": "finished", "currentRound": rounds,
    }  # fmt: skip
    ledger.models[model_id] = model
    reader = Reader(ledger, store, MODEL) if reader is None else replace(reader, client=ledger, store=store)
    glob = {"cid": g.cid, "sha256": g.sha256_hex}
    for r in range(1, rounds + 1):
        accepted = []
        for i in range(3):
            gen = torch.Generator().manual_seed(100 * r + i)
            delta = {k: torch.randn(v.shape, generator=gen) * 0.01 for k, v in init.items()}
            blob = ml.dumps(delta)
            obj = store.put(seal(blob) if seal else blob)
            uid = f"u{r}{i}"
            status = "accepted" if i < 2 else "rejected"
            ledger.updates[uid] = {
                "id": uid, "modelId": model_id, "round": r, "cid": obj.cid, "sha256": obj.sha256_hex,
                "numSamples": 10 + i, "status": status,
            }  # fmt: skip
            if status == "accepted":
                accepted.append(uid)
        rd = {"number": r, "status": "closed", "global": dict(glob), "accepted": sorted(accepted)}
        ledger.rounds[(model_id, r)] = rd
        blob, _ = compute_aggregate(reader, policy, model, rd)
        agg = store.put(blob)
        rd.update(status="done", aggregate={"cid": agg.cid, "sha256": agg.sha256_hex})
        glob = {"cid": agg.cid, "sha256": agg.sha256_hex}
    model["final"] = dict(glob)
    return store, ledger, reader


def test_aggregate_is_deterministic_and_order_free():
    store, ledger, reader = federated_history()
    rd = dict(ledger.get_round("m", 1))
    a, _ = compute_aggregate(reader, Policy(), ledger.get_model("m"), rd)
    rd["accepted"] = list(reversed(rd["accepted"]))
    b, _ = compute_aggregate(reader, Policy(), ledger.get_model("m"), rd)
    assert a == b
    assert ml.sha256_hex(a) == ledger.get_round("m", 1)["aggregate"]["sha256"]


def test_aggregate_refuses_an_update_that_is_not_accepted():
    store, ledger, reader = federated_history()
    rd = dict(ledger.get_round("m", 1))
    rd["accepted"] = ["u12"]  # rejected on the ledger
    with pytest.raises(ValueError, match="rejected"):
        compute_aggregate(reader, Policy(), ledger.get_model("m"), rd)


def test_audit_recomputes_a_stateful_aggregation_the_ledger_records():
    fedavgm = {"name": "fedavgm", "params": {"momentum": 0.9}}
    policy = Policy(aggregation="fedavgm", aggregation_params={"momentum": 0.9})
    _, ledger, reader = federated_history(rounds=3, policy=policy)
    rep = audit_model(reader, "m")  # a record from before the contract kept the strategy: FedAvg
    assert [f.where for f in rep.findings] == ["round 2.aggregate", "round 3.aggregate"], rep.findings
    assert "(recomputed with fedavg)" in rep.findings[0].problem
    ledger.models["m"]["aggregation"] = fedavgm  # as the contract records it
    rep = audit_model(reader, "m")
    assert rep.ok, rep.findings


def test_audit_of_an_honest_history_finds_nothing():
    _, ledger, reader = federated_history()
    rep = audit_model(reader, "m")
    assert rep.ok, rep.findings
    assert rep.checked >= 1 + 2 * 3 + 2 * 2
    assert [r["status"] for r in rep.rounds] == ["done", "done"]


def test_audit_finds_a_tampered_object_and_a_wrong_aggregate():
    store, ledger, reader = federated_history()
    u = ledger.updates["u21"]
    store.objects[u["cid"]] = b"not the bytes that were recorded"
    rd = ledger.rounds[("m", 1)]
    fake = store.put(ml.dumps(ml.initial_state(MODEL, 9)))
    rd["aggregate"] = {"cid": fake.cid, "sha256": fake.sha256_hex}
    rep = audit_model(reader, "m")
    wheres = " | ".join(f.where for f in rep.findings)
    assert "round 2 update u21" in wheres
    assert "round 1.aggregate" in wheres
    assert "round 2.global" in wheres  # round 2 did not start from the recorded round-1 aggregate


def gossip_history():
    """A gossip model finished on the mean of each provider's best accepted model: p1 made two
    accepted models (qualities 0.6, 0.7), p2 one (0.5), p3 a rejected one."""
    store, ledger = FakeStore(), FakeLedger()
    init = ml.initial_state(MODEL, 0)
    g = store.put(ml.dumps(init))
    model = {
        "id": "g", "architecture": {"name": MODEL, "version": "1"}, "specSha256": ml.spec_hash(MODEL),
        "initialWeights": {"cid": g.cid, "sha256": g.sha256_hex}, "committee": [], "mode": "gossip",
        "status": "finished", "currentRound": 0,
    }  # fmt: skip
    ledger.models["g"] = model
    for i, (uid, provider, status, quality) in enumerate(
        [
            ("a1", "p1", "accepted", 0.6),
            ("a2", "p1", "accepted", 0.7),
            ("b1", "p2", "accepted", 0.5),
            ("c1", "p3", "rejected", None),
        ]  # fmt: skip
    ):
        gen = torch.Generator().manual_seed(i)
        weights = {k: v + torch.randn(v.shape, generator=gen) * 0.01 for k, v in init.items()}
        obj = store.put(ml.dumps(weights))
        ledger.updates[uid] = {"id": uid, "modelId": "g", "round": 0, "provider": provider, "parents": [],
                               "cid": obj.cid, "sha256": obj.sha256_hex, "status": status}  # fmt: skip
        if quality is not None:
            ledger.updates[uid]["medianQuality"] = quality
    reader = Reader(ledger, store, MODEL)
    final = store.put(ml.dumps(gossip_base(reader, model, ["a2", "b1"])))
    # Two members judged the mix (0.8, 0.7) above every candidate: the model finished on the mix.
    judgments = [
        {"member": "m1", "qualities": [0.8, 0.7, 0.6, 0.5]},
        {"member": "m2", "qualities": [0.7, 0.8, 0.5, 0.4]},
    ]
    proposal = {"mix": ["a2", "b1"], "cid": final.cid, "sha256": final.sha256_hex,
                "candidates": ["a2", "a1", "b1"], "judgments": judgments}  # fmt: skip
    model.update(
        finalProposal=proposal, finalMix=["a2", "b1"], final={"cid": final.cid, "sha256": final.sha256_hex}
    )
    return store, ledger, reader


def test_audit_recomputes_a_gossip_models_final_proposal():
    store, ledger, reader = gossip_history()
    rep = audit_model(reader, "g")
    assert rep.ok, rep.findings
    model = ledger.models["g"]
    prop = model["finalProposal"]
    # A mix that skips p1's best model: neither the rule's mix nor the mean the object holds.
    prop["mix"] = ["a1", "b1"]
    assert [f.where for f in audit_model(reader, "g").findings] == [
        "model.finalProposal.mix",
        "model.finalProposal",
        "model.final",
    ]
    prop["mix"] = ["a2", "b1"]
    # Candidates not in the rule's order (best first), or one left out.
    prop["candidates"] = ["a1", "a2", "b1"]
    assert [f.where for f in audit_model(reader, "g").findings] == ["model.finalProposal.candidates"]
    prop["candidates"] = ["a2", "a1", "b1"]
    # A mix object that is not the mean of the updates it names.
    other = store.put(ml.dumps(gossip_base(reader, model, ["a1", "b1"])))
    prop.update(cid=other.cid, sha256=other.sha256_hex)
    model["final"] = {"cid": other.cid, "sha256": other.sha256_hex}
    findings = audit_model(reader, "g").findings
    assert [(f.where, f.problem) for f in findings] == [("model.finalProposal", "is not the mean of its mix")]


def test_audit_checks_the_committees_choice_of_a_gossip_final():
    _, ledger, reader = gossip_history()
    model = ledger.models["g"]
    # Judgments that put candidate a1 first (medians 0.65, 0.65, 0.75, 0.45): the model must end on a1.
    model["finalProposal"]["judgments"][1]["qualities"] = [0.5, 0.6, 0.9, 0.4]
    where = [(f.where, f.problem) for f in audit_model(reader, "g").findings]
    assert where == [("model.final", "is not the best proposed entry by median quality (final_choice)")]
    a1 = ledger.updates["a1"]
    model.update(finalMix=None, finalUpdate="a1", final={"cid": a1["cid"], "sha256": a1["sha256"]})
    assert audit_model(reader, "g").ok
    model["finalProposal"]["judgments"] = []  # finished, but nobody judged: the ledger contradicts itself
    where = [(f.where, f.problem) for f in audit_model(reader, "g").findings]
    assert where == [("model.finalProposal", "the model finished without a judgment of its proposal")]


def test_audit_recomputes_each_gossip_updates_standing():
    _, ledger, reader = gossip_history()
    ups = ledger.updates
    ups["a1"]["standing"] = {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}
    ups["a2"]["standing"] = {"previous": "a1", "earlier": 1, "accepted": 1, "lastRejectedAgo": 0}
    ups["c1"]["standing"] = {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}  # b1: from an older contract
    rep = audit_model(reader, "g")
    assert rep.ok, rep.findings
    # A standing that hides an acceptance (p1 would meet the tight bars), then one naming another's update.
    ups["a2"]["standing"]["accepted"] = 0
    assert [f.where for f in audit_model(reader, "g").findings] == ["update a2.standing"]
    ups["a2"]["standing"] = {"previous": "b1", "earlier": 1, "accepted": 1, "lastRejectedAgo": 0}
    [finding] = audit_model(reader, "g").findings
    assert finding.problem == "previous b1 is no update of provider p1 to this model"
    # Two first updates of one provider: its chain is broken.
    ups["a2"]["standing"] = {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}
    [finding] = audit_model(reader, "g").findings
    assert finding.where == "update a2.standing" and "as update a1 of the same provider" in finding.problem


def test_audit_flags_an_unknown_architecture():
    _, ledger, reader = federated_history()
    ledger.models["m"]["architecture"]["name"] = "resnet-9000"
    rep = audit_model(reader, "m")
    assert not rep.ok and rep.findings[0].where == "model.architecture"


def test_gossip_base_is_the_order_free_mean_of_its_parents():
    store, ledger = FakeStore(), FakeLedger()
    init, a, b = (ml.initial_state(MODEL, s) for s in (0, 1, 2))
    g = store.put(ml.dumps(init))
    model = {"id": "m", "initialWeights": {"cid": g.cid, "sha256": g.sha256_hex}}
    for uid, state in (("ua", a), ("ub", b)):
        obj = store.put(ml.dumps(state))
        ledger.updates[uid] = {"id": uid, "modelId": "m", "status": "accepted", "cid": obj.cid,
                               "sha256": obj.sha256_hex}  # fmt: skip
    reader = Reader(ledger, store, MODEL)
    m1, m2 = gossip_base(reader, model, ["ua", "ub"]), gossip_base(reader, model, ["ub", "ua"])
    assert ml.dumps(m1) == ml.dumps(m2)
    assert all(m1[k].dtype == a[k].dtype and torch.allclose(m1[k], (a[k] + b[k]) / 2) for k in a)
    assert ml.dumps(gossip_base(reader, model, [])) == ml.dumps(init)  # no parents: the initial weights
    ledger.updates["ub"]["status"] = "rejected"
    with pytest.raises(ValueError, match="parent ub is rejected"):
        gossip_base(reader, model, ["ua", "ub"])


def test_a_gossip_update_is_measured_mixed_with_its_parents():
    from fedcommittee.roles.reader import joined_model

    parents = [ml.initial_state(MODEL, s) for s in (1, 2, 3)]
    weights = ml.initial_state(MODEL, 4)
    base = {k: sum(p[k] for p in parents) / 3 for k in weights}
    joined = joined_model(base, weights, 3)
    assert all(torch.allclose(joined[k], (weights[k] + sum(p[k] for p in parents)) / 4) for k in weights)
    alone = joined_model(parents[0], weights, 0)  # no parents: the update's own model
    assert all(torch.allclose(alone[k], weights[k]) for k in weights)


def test_shard_encoding_round_trip_and_checks():
    ds = ml.load_digits().subset(list(range(50)))
    back = decode_dataset(encode_dataset(ds), 10)
    assert torch.equal(back.x, ds.x) and torch.equal(back.y, ds.y)
    with pytest.raises(ValueError, match="out of range"):
        decode_dataset(encode_dataset(ds), 3)


def test_identity_key_matches_the_chaincode_format():
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "User1@org1.fc.local")])  # fmt: skip
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca.org1.fc.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    got = identity_key("Org1MSP", cert)
    msp, b64 = got.split("/", 1)
    assert msp == "Org1MSP"
    # Go's pkix.Name.String(): most specific RDN first.
    assert (
        base64.b64decode(b64).decode() == "x509::CN=User1@org1.fc.local,OU=client,C=US::CN=ca.org1.fc.local"
    )


# ------------------------------------------------------------------ Agent.submit: check before, retry


class FakeContract:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def submit_transaction(self, fn, *args):
        self.calls += 1
        out = self.outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out


def bare_agent(contract, log=None):
    """A real Agent over a fake contract (no Fabric, no IPFS, no events)."""
    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    return runtime.Agent(exp, "member1", "committee", client=FedcommitteeClient(contract), store=FakeStore(),
                         me="Org1MSP/member1", log=log or (lambda *a, **k: None))  # fmt: skip


def test_submit_skips_what_the_ledger_already_has(monkeypatch):
    contract = FakeContract([])
    agent = bare_agent(contract)
    assert agent.submit(agent.client.submit_verdict, "u", {}, done=lambda: True) is None
    assert contract.calls == 0


def test_submit_after_the_caller_checked_asks_the_ledger_only_on_a_retry(monkeypatch):
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    ok = type("R", (), {"txid": "t2", "block_number": 5})()
    conflict = CommitError("t1", "MVCC_READ_CONFLICT", code_value=11, block_number=4)
    contract = FakeContract([conflict, ok])
    agent = bare_agent(contract)
    asked = []
    done = lambda: asked.append(contract.calls) or False  # noqa: E731
    assert agent.submit(agent.client.submit_verdict, "u", {"score": 1.0}, done=done, checked=True) is ok
    assert contract.calls == 2 and asked == [1]  # not before the first try, before the retry


def test_submit_asks_recheck_where_our_effect_is_known_missing_and_done_after_an_unknown_outcome(monkeypatch):
    from fedcommittee.ledger.errors import GatewayError

    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    ok = type("R", (), {"txid": "t3", "block_number": 6})()
    conflict = CommitError("t1", "MVCC_READ_CONFLICT", code_value=11, block_number=4)
    contract = FakeContract([conflict, GatewayError("peer unreachable"), ok])
    agent = bare_agent(contract)
    asked = []
    recheck = lambda: asked.append(("recheck", contract.calls)) or False  # noqa: E731
    done = lambda: asked.append(("done", contract.calls)) or False  # noqa: E731
    send = agent.client.submit_verdict
    assert agent.submit(send, "u", {"score": 1.0}, done=done, recheck=recheck, checked=True) is ok
    # Before the first try and after the conflict ours is known missing; after the lost try it is not.
    assert asked == [("recheck", 0), ("recheck", 1), ("done", 2)]
    # Not checked by the caller: done first, then recheck after a conflict.
    contract, asked[:] = FakeContract([conflict, ok]), []
    agent = bare_agent(contract)
    assert agent.submit(agent.client.submit_verdict, "u", {}, done=done, recheck=recheck) is ok
    assert asked == [("done", 0), ("recheck", 1)]


def test_submit_retries_mvcc_conflicts(monkeypatch):
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    ok = type("R", (), {"txid": "t2", "block_number": 5})()
    conflict = CommitError("t1", "MVCC_READ_CONFLICT", code_value=11, block_number=4)
    contract = FakeContract([conflict, ok])
    logged = []
    agent = bare_agent(contract, log=lambda event, **f: logged.append((event, f.get("tx"))))
    assert agent.submit(agent.client.submit_verdict, "u", {"score": 1.0}, done=lambda: False) is ok
    assert contract.calls == 2
    assert logged == [("conflict", "SubmitVerdict"), ("submitted", "SubmitVerdict")]


def test_submit_waits_for_an_endorsing_peer_behind_ours(monkeypatch):
    from fedcommittee.ledger.errors import contract_error

    waits = []
    monkeypatch.setattr(runtime.time, "sleep", waits.append)
    msg = "NOT_FOUND: verdicts[2]: update u2 not found"

    def behind(stage="endorse"):
        return contract_error(msg, chaincode_message=msg, stage=stage, status=500)

    ok = type("R", (), {"txid": "t3", "block_number": 9})()
    logged = []
    agent = bare_agent(FakeContract([behind(), behind(), ok]), log=lambda e, **f: logged.append(e))
    send = agent.client.submit_verdicts
    assert agent.submit(send, [{"updateId": "u2"}], wait_for_peers=True, done=lambda: False) is ok
    assert logged == ["peer_lag", "peer_lag", "submitted"] and waits == [0.5, 1.0]
    # Not asked to wait, or refused by the contract while evaluating, or out of attempts: raised.
    for outcomes, kw in (([behind()], {}), ([behind("evaluate")], {"wait_for_peers": True}),
                         ([behind(), behind()], {"wait_for_peers": True, "attempts": 2})):  # fmt: skip
        agent = bare_agent(FakeContract(outcomes))
        with pytest.raises(ContractError, match="not found"):
            agent.submit(agent.client.submit_verdicts, [{"updateId": "u2"}], done=lambda: False, **kw)
    assert runtime.expected_race("peer_lag", {"tx": "SubmitVerdicts"}) == "peer_lag"


def test_conflict_backoff_starts_short_doubles_and_stays_bounded():
    lows = [runtime.conflict_backoff(a) for a in range(8) for _ in range(50)]
    assert all(0.025 <= w <= 3.0 for w in lows)
    first = [runtime.conflict_backoff(0) for _ in range(200)]
    assert max(first) <= 0.075  # the winner is committed: retry almost at once
    assert len({round(w, 6) for w in first}) > 100  # jittered, not in step
    medians = [sorted(runtime.conflict_backoff(a) for _ in range(201))[100] for a in range(4)]
    assert medians == sorted(medians) and medians[3] > 4 * medians[0]


def test_submit_treats_a_refusal_explained_by_the_ledger_as_done(monkeypatch):
    state = {"done": False}
    msg = "round 1 of model m is done, not closed"
    err = ContractError(msg, chaincode_message=msg, stage="endorse", status=500)

    class Refuse(FakeContract):
        def submit_transaction(self, fn, *args):
            state["done"] = True  # someone else completed it meanwhile
            raise err

    agent = bare_agent(Refuse([]))
    send = agent.client.confirm_aggregate
    assert agent.submit(send, "m", 1, sha256="ab", score=0.5, done=lambda: state["done"]) is None


def test_json_log_lines(tmp_path):
    log = runtime.JsonLog(tmp_path / "a.jsonl", "a", "provider", echo=False)
    log("trained", round=1, loss=0.5)
    log("conflict", level="warning", tx="X")
    log.close()
    recs = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert recs[0]["event"] == "trained" and recs[0]["round"] == 1 and recs[0]["agent"] == "a"
    assert recs[1]["level"] == "warning"


def test_member_rejects_unloadable_updates_without_crashing():
    from fedcommittee.experiment import load_experiment
    from fedcommittee.roles.committee import Member

    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    store = FakeStore()
    good = store.put(ml.dumps(ml.initial_state(MODEL, 0)))
    junk = store.put(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    agent = type("A", (), {})()
    agent.exp = exp
    agent.policy = Policy.from_experiment(exp)
    agent.reader = Reader(None, store, MODEL)
    member = Member(agent, "member1")
    model = {"id": "m", "mode": "federated", "committee": [], "publisher": "p"}
    assert isinstance(
        member._load_update(model, {"cid": good.cid, "sha256": good.sha256_hex, "baseSha256": "b"}, "b"), dict
    )
    # A compressed delta is scored as what it decodes to.
    from fedcommittee.ml.compress import compress, roundtrip

    delta = ml.initial_state(MODEL, 1)
    sent = store.put(compress(delta, "int8+topk:0.1"))
    got = member._load_update(model, {"cid": sent.cid, "sha256": sent.sha256_hex, "baseSha256": "b"}, "b")
    want = roundtrip(delta, "int8+topk:0.1", MODEL)
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert not all(torch.equal(got[k], delta[k]) for k in delta)  # lossy: not the original
    reason = member._load_update(model, {"cid": junk.cid, "sha256": junk.sha256_hex, "baseSha256": "b"}, "b")
    assert isinstance(reason, str) and reason
    assert member._load_update(
        model, {"cid": good.cid, "sha256": good.sha256_hex, "baseSha256": "x"}, "b"
    ) == ("base is not the round's global model")
    tampered = {"cid": good.cid, "sha256": "0" * 64, "baseSha256": "b"}
    assert "IntegrityError" in member._load_update(model, tampered, "b")


def confirming_member(monkeypatch, cands: list):
    """A member of small.yaml ("Org2MSP/me") over round 1 of a federated history, closed, whose
    candidate aggregates are ``cands``; its transactions are kept in ``submitted``, its clock is
    ``clock[0]``. Returns (member, agent, store, ledger, reader, rd, submitted, clock)."""
    from fedcommittee.experiment import load_experiment
    from fedcommittee.roles import committee as committee_mod
    from fedcommittee.roles.committee import Member

    store, ledger, reader = federated_history(rounds=1)
    rd = dict(ledger.rounds[("m", 1)], status="closed")
    ledger.get_aggregates = lambda mid, r: cands
    ledger.get_round = lambda mid, r: rd
    submitted = []

    agent = type("A", (), {})()
    agent.exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    agent.policy = Policy.from_experiment(agent.exp)
    agent.model_id, agent.me, agent.client, agent.reader = "m", "Org2MSP/me", ledger, reader
    agent.aggregates = lambda r: ledger.get_aggregates("m", r)
    agent.log = lambda *a, **k: None
    agent.put = store.put
    agent.poll_seconds = 30.0
    agent.submit = lambda send, *args, done=None, **kw: submitted.append((send.transaction, args, kw))
    member = Member(agent, "member1")
    member.shard = ml.load_digits().subset(list(range(40)))
    clock = [1000.0]
    monkeypatch.setattr(committee_mod.time, "time", lambda: clock[0])
    return member, agent, store, ledger, reader, rd, submitted, clock


def test_member_never_confirms_an_aggregate_it_cannot_reproduce(monkeypatch):
    cands = []
    member, agent, store, ledger, reader, rd, submitted, clock = confirming_member(monkeypatch, cands)
    bogus = store.put(ml.dumps(ml.initial_state(MODEL, 7)))
    cands.append(
        {"sha256": bogus.sha256_hex, "cid": bogus.cid, "recordedBy": "Org1MSP/evil", "confirmations": []}
    )

    member.confirm(ledger.models["m"], rd)
    assert submitted == [] and member.discrepancies == [bogus.sha256_hex]
    # Round 2's global is the aggregate we computed, and our reference on it is under way already,
    # before any candidate we agree with is recorded (it trains on its own thread meanwhile).
    ours = ledger.rounds[("m", 1)]["aggregate"]["sha256"]
    assert member.global_of[0] == (2, ours) and member.references.started_for() == (2, ours)
    # The member sleeps until its settle window ends (not a poll), then records its own.
    assert member.wait_seconds() == pytest.approx(agent.exp.settle_seconds + 0.05)
    assert member.wait_seconds() is None  # an event-driven wait again once that pass is done
    clock[0] += agent.exp.settle_seconds + 1  # nobody recorded the right one: record our own
    member.confirm(ledger.models["m"], rd)
    assert [fn for fn, _, _ in submitted] == ["RecordAggregate"]
    assert submitted[0][2]["sha256"] == ours
    cands.append({"sha256": ours, "cid": "x", "recordedBy": agent.me, "confirmations": []})
    member.confirm(ledger.models["m"], rd)
    assert [fn for fn, _, _ in submitted] == ["RecordAggregate", "ConfirmAggregate"]
    assert submitted[1][2]["sha256"] == ours
    # The global is the confirmed bytes decoded, as a fetch would give, and the reference trained on
    # its thread is the one the member would have trained itself on that model.
    assert member.global_of[0] == (2, ours) and member.references.started_for() == (2, ours)
    fetched = reader.fetch_weights(submitted[0][2]["cid"], ours)
    assert sorted(member.global_of[1]) == sorted(fetched)
    assert all(torch.equal(member.global_of[1][k], fetched[k]) for k in fetched)
    reference = member._round_reference(2, {"sha256": ours}, fetched)
    again = ml.reference_delta(member.rule, agent.exp.model, fetched, member.shard)
    assert all(torch.equal(reference[k], again[k]) for k in again)


def test_only_members_seated_within_the_quorum_evaluate_the_aggregate_before_their_turn(monkeypatch):
    from fedcommittee.roles import committee as committee_mod
    from fedcommittee.roles.committee import CONFIRM_TURN_SECONDS

    cands = []
    member, agent, store, ledger, reader, rd, submitted, clock = confirming_member(monkeypatch, cands)
    ours = ledger.rounds[("m", 1)]["aggregate"]
    cands.append(
        {"sha256": ours["sha256"], "cid": ours["cid"], "recordedBy": "Org1MSP/pub", "confirmations": []}
    )
    evaluated = []
    real_evaluate = ml.evaluate
    monkeypatch.setattr(
        committee_mod.ml, "evaluate", lambda *a, **k: evaluated.append(1) or real_evaluate(*a, **k)
    )
    seats = [{"member": m} for m in ("Org1MSP/a", "Org3MSP/c", agent.me)]
    past_quorum = dict(ledger.models["m"], committee=seats, quorum=2)

    # Seat 2 of a quorum of 2: the aggregate is computed (the next round's reference starts on it)
    # but not evaluated while the quorum may still confirm without us.
    member.confirm(past_quorum, rd)
    assert submitted == [] and evaluated == [] and member.references.started_for() == (2, ours["sha256"])
    # Seats 0 and 1 are down: our turn comes, and the evaluation with it, once.
    clock[0] += 2 * CONFIRM_TURN_SECONDS
    member.confirm(past_quorum, rd)
    assert [fn for fn, _, _ in submitted] == ["ConfirmAggregate"] and len(evaluated) == 1
    assert submitted[0][2]["score"] == member.aggregate_evals[1].accuracy
    # Seated within the quorum (seat 0 here): evaluated as soon as computed, and confirmed at once.
    first = member
    member, agent, *_, submitted, _ = confirming_member(monkeypatch, cands)
    member.confirm(dict(past_quorum, committee=[{"member": agent.me}, *seats[:2]]), rd)
    assert len(evaluated) == 2 and [fn for fn, _, _ in submitted] == ["ConfirmAggregate"]
    for m in (first, member):  # the references' threads draw from torch's RNG: let them finish
        m.references.start(m.references.started_for(), None).result()


def test_members_close_a_round_the_publisher_left_once_every_update_is_final(monkeypatch):
    from fedcommittee.roles import committee as committee_mod
    from fedcommittee.roles.committee import PUBLISHER_GRACE_SECONDS, Member

    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "default.yaml", model_id="m")
    assert exp.settle_seconds < PUBLISHER_GRACE_SECONDS  # a short settle window must not race the publisher
    member = object.__new__(Member)  # only the closing logic: no shard, no ledger
    member.settle_due, closes, logged = None, [], []
    member.agent = type("A", (), {})()
    member.agent.exp, member.agent.model_id = exp, "m"
    member.agent.client = type("C", (), {"close_round": None})()
    member.agent.log = lambda event, **kw: logged.append(kw.get("why"))
    member.agent.submit = lambda send, model_id, r, done=None: closes.append(r)
    clock = [1010.0]
    monkeypatch.setattr(committee_mod.time, "time", lambda: clock[0])
    rd = {"number": 3, "deadline": 2000}
    n = len(exp.providers)
    final = [
        {"id": f"u{i}", "status": "rejected" if i else "accepted", "finalizedAt": 1000 + i} for i in range(n)
    ]
    last = 1000 + n - 1

    # Every configured provider's update final: due a grace period after the last finalization,
    # not the (shorter) settle window.
    member.close_if_overdue(rd, final)
    assert closes == [] and member.settle_due == last + PUBLISHER_GRACE_SECONDS
    clock[0] = last + exp.settle_seconds + 0.5
    member.close_if_overdue(rd, final)
    assert closes == []
    clock[0] = last + PUBLISHER_GRACE_SECONDS + 0.5
    member.close_if_overdue(rd, final)
    assert closes == [3] and logged == ["everyone_final"]
    # An update still pending, or a provider not heard from: the deadline (and settle) as before.
    for updates in ([*final[:-1], dict(final[-1], status="pending")], final[:-1]):
        member.settle_due = None
        member.close_if_overdue(rd, updates)
        assert closes == [3] and member.settle_due is None
    clock[0] = 2000 + exp.settle_seconds + 0.5
    member.close_if_overdue(rd, final[:-1])
    assert closes == [3, 3] and logged == ["everyone_final", "deadline"]


def test_publisher_rechecks_when_the_quiet_window_ends(monkeypatch):
    from fedcommittee.roles import publisher as publisher_mod
    from fedcommittee.roles.publisher import Publisher

    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    agent = type("A", (), {})()
    agent.exp, agent.policy, agent.model_id, agent.poll_seconds = exp, Policy.from_experiment(exp), "m", 30.0
    ups = [{"id": f"u{i}", "status": "accepted", "submittedAt": 1010} for i in range(2)]
    rd = {"number": 1, "status": "open", "openedAt": 1000, "deadline": 1000 + exp.deadline_seconds}
    after = {"number": 1, "status": "closed"}
    agent.client = type(
        "C", (), {"iter_round_updates": lambda self, mid, r: iter(ups), "close_round": None,
                  "get_round": lambda self, mid, r: after}
    )()  # fmt: skip
    closed = []
    agent.log = lambda *a, **k: closed.append(k.get("why"))
    agent.submit = lambda *a, **k: None
    agent.recent = None  # no memory of objects: nothing is read ahead
    monkeypatch.setattr(publisher_mod.time, "time", lambda: 1012.0)
    pub = Publisher(agent)
    pub.close_with_aggregate = lambda model, rd, updates: False  # the close's timing only, no aggregate
    pub.close_when_due({}, rd)  # 2 of the configured providers, not quiet yet
    assert closed == [] and pub.wait_seconds() == pytest.approx(1010 + exp.settle_seconds - 1012 + 0.05)
    monkeypatch.setattr(publisher_mod.time, "time", lambda: 1010.0 + exp.settle_seconds + 0.1)
    assert pub.close_when_due({}, rd) is after  # the round as the ledger holds it once closed
    assert closed == ["quiet"]


def test_publisher_records_the_aggregate_in_the_step_that_closes_the_round():
    from fedcommittee.roles.publisher import Publisher

    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    agent = type("A", (), {})()
    agent.exp, agent.policy, agent.model_id = exp, Policy.from_experiment(exp), "m"
    states = iter([{"number": 1, "status": "open"}, {"number": 1, "status": "closed"}])
    agent.client = type("C", (), {"get_round": lambda self, mid, r: next(states)})()
    agent.round = lambda r: agent.client.get_round("m", r)
    pub = Publisher(agent)
    recorded = []
    pub.close_when_due = lambda model, rd: agent.client.get_round("m", 1)  # closes it
    pub.record_aggregate = lambda model, rd: recorded.append(rd["status"])
    pub.drive_round({"currentRound": 1})
    assert recorded == ["closed"]


def test_provider_trains_on_the_prefetched_candidate_when_it_is_confirmed():
    from fedcommittee.roles.provider import Provider

    store = FakeStore()
    agg = store.put(ml.dumps(ml.initial_state(MODEL, 3)))
    other = store.put(ml.dumps(ml.initial_state(MODEL, 4)))
    fetched = []
    reader = Reader(None, store, MODEL, on_io=lambda op, size, s: fetched.append(op))
    agent = type("A", (), {})()
    agent.model_id, agent.reader = "m", reader
    agent.client = type(
        "C", (), {"get_aggregates": lambda self, mid, r: [{"cid": agg.cid, "sha256": agg.sha256_hex}]}
    )()
    agent.aggregates = lambda r: agent.client.get_aggregates("m", r)
    prov = object.__new__(Provider)  # the data split is not needed for fetching
    prov.agent, prov.prefetched = agent, {}
    prov.prefetch(1)
    prov.prefetch(1)  # level-triggered: fetched once
    assert fetched == ["get"]
    state = prov.global_model({"cid": agg.cid, "sha256": agg.sha256_hex})
    assert fetched == ["get"] and torch.equal(state["fc1.weight"], ml.initial_state(MODEL, 3)["fc1.weight"])
    # A global that is not the prefetched candidate is fetched (hash-checked) as before.
    prov.global_model({"cid": other.cid, "sha256": other.sha256_hex})
    assert fetched == ["get", "get"] and prov.prefetched == {}


def test_members_confirm_in_seat_order_and_go_on_without_a_member_that_is_down(monkeypatch):
    from fedcommittee.roles import committee as committee_mod
    from fedcommittee.roles.committee import CONFIRM_TURN_SECONDS, Member

    member = object.__new__(Member)  # only the turn logic: no shard, no ledger
    member.agent = type("A", (), {"me": "Org2MSP/me"})()
    member.candidate_seen, member.settle_due = {}, None
    seats = [{"member": "Org1MSP/a"}, {"member": "Org2MSP/me"}, {"member": "Org3MSP/c"}]
    clock = [1000.0]
    monkeypatch.setattr(committee_mod.time, "time", lambda: clock[0])
    none_yet = {"sha256": "s", "confirmations": []}
    # Seat 1 waits for seat 0's confirmation, and is woken when its time is up anyway.
    assert not member.my_turn_to_confirm({"committee": seats}, 1, none_yet)
    assert member.settle_due == 1000.0 + CONFIRM_TURN_SECONDS
    clock[0] += 0.2
    assert member.my_turn_to_confirm({"committee": seats}, 1, dict(none_yet, confirmations=[{"member": "a"}]))
    # Seat 0 is down: nobody confirms before us, and our turn comes when the time is up.
    assert not member.my_turn_to_confirm({"committee": seats}, 2, none_yet)
    clock[0] += CONFIRM_TURN_SECONDS
    assert member.my_turn_to_confirm({"committee": seats}, 2, none_yet)
    # In seat 0 nobody is waited for.
    assert member.my_turn_to_confirm({"committee": seats[1:]}, 3, none_yet)


@pytest.mark.parametrize(
    "failure, postponed",
    [(IpfsUnavailable("http://127.0.0.1:5001", "cat", "connection refused"), True),
     (IpfsError("cat", "stream broken after 10 bytes"), True),  # no HTTP answer: cut off
     (IpfsError("cat", "block was not found locally (offline)", status=500), False)],
)  # fmt: skip
def test_member_never_rejects_an_update_because_its_ipfs_node_is_down(failure, postponed):
    from fedcommittee.experiment import load_experiment
    from fedcommittee.roles.committee import Member

    class Failing(FakeStore):
        def get(self, cid, sha256_hex, max_bytes=None, size=None):
            raise failure

    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    agent = type("A", (), {})()
    agent.exp, agent.policy, agent.reader = exp, Policy.from_experiment(exp), Reader(None, Failing(), MODEL)
    member = Member(agent, "member1")
    model = {"id": "m", "mode": "federated", "committee": [], "publisher": "p"}
    update = {"cid": "bafkx", "sha256": "0" * 64, "baseSha256": "b"}
    if postponed:  # raised to judge_round, which tries again in a second instead of voting
        with pytest.raises(type(failure)):
            member._load_update(model, update, "b")
    else:  # the node answered: the object is not there, and that is the provider's doing
        assert "not found" in member._load_update(model, update, "b")


def test_aggregate_reads_the_accepted_set_in_one_listing():
    _, ledger, reader = federated_history(rounds=1)
    asked = []
    ledger.get_update = lambda uid: asked.append(uid) or ledger.updates[uid]
    rd = dict(ledger.get_round("m", 1), status="closed")
    blob, _ = compute_aggregate(reader, Policy(), ledger.get_model("m"), rd)
    assert asked == [] and ml.sha256_hex(blob) == ledger.get_round("m", 1)["aggregate"]["sha256"]


def test_publisher_reads_the_updates_while_the_round_is_open(monkeypatch):
    from fedcommittee.roles import publisher as publisher_mod
    from fedcommittee.roles.publisher import Publisher
    from fedcommittee.roles.reader import RecentObjects

    store, ledger, reader = federated_history(rounds=1)
    gets = []
    reader = replace(reader, recent=RecentObjects(), on_io=lambda op, size, seconds: gets.append(op))
    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    agent = type("A", (), {})()
    agent.exp, agent.policy, agent.model_id, agent.poll_seconds = exp, Policy.from_experiment(exp), "m", 30.0
    agent.client, agent.reader, agent.recent = ledger, reader, reader.recent
    agent.log = agent.submit = lambda *a, **k: None
    monkeypatch.setattr(publisher_mod.time, "time", lambda: 1012.0)
    ledger.updates["u12"]["status"] = "pending"  # one verdict still to come: the round stays open
    rejected = dict(ledger.updates["u11"], id="u19", status="rejected", cid="never-read")
    ledger.updates["u19"] = rejected
    rd = {"number": 1, "status": "open", "openedAt": 1000, "deadline": 1000 + exp.deadline_seconds}
    pub = Publisher(agent)
    model = ledger.get_model("m")
    assert pub.close_when_due(model, rd) is rd
    assert gets == ["get", "get", "get"]  # the two accepted updates and the pending one, not the rejected
    pub.close_when_due(model, rd)
    assert gets == ["get", "get", "get"]  # each read once
    del ledger.updates["u19"]
    closed = dict(ledger.get_round("m", 1), status="closed")
    blob, _ = compute_aggregate(reader, agent.policy, ledger.get_model("m"), closed)
    assert gets == ["get", "get", "get", "get"]  # after the close only the global model comes from IPFS
    assert ml.sha256_hex(blob) == ledger.get_round("m", 1)["aggregate"]["sha256"]


def _closing_publisher(
    monkeypatch, pending: bool = False, refuse: bool = False, closed_meanwhile: bool = False
):
    """A publisher over round 1 of ``federated_history`` reopened (two updates accepted, one rejected,
    or still pending), the round's deadline passed; returns it, the transactions it submitted (name,
    keyword arguments), and the round as the history recorded it. ``closed_meanwhile``: the submit
    loop finds the round closed by someone else before it sends anything."""
    from fedcommittee.roles import publisher as publisher_mod
    from fedcommittee.roles.publisher import Publisher

    store, ledger, reader = federated_history(rounds=1)
    honest = dict(ledger.get_round("m", 1))
    exp = load_experiment(Path(__file__).resolve().parents[3] / "configs" / "small.yaml", model_id="m")
    rd = {"number": 1, "status": "open", "global": honest["global"], "openedAt": 1000,
          "deadline": 1000 + exp.deadline_seconds}  # fmt: skip
    ledger.rounds[("m", 1)] = rd
    if pending:
        ledger.updates["u12"]["status"] = "pending"
    agent = type("A", (), {})()
    agent.exp, agent.policy, agent.model_id, agent.poll_seconds = exp, Policy.from_experiment(exp), "m", 30.0
    agent.client, agent.reader, agent.recent, agent.put = ledger, reader, None, store.put
    agent.log = lambda *a, **k: None
    submitted = []

    def submit(send, *args, done=None, **kw):
        submitted.append((send.transaction, kw))
        if refuse and send.transaction == "CloseRoundWithAggregate":
            reason = "CONFLICT: another accepted set"
            raise ContractError("refused", chaincode_message=reason, stage="endorse", status=None)
        if closed_meanwhile:
            return None  # Agent.submit's answer when done() says the ledger already has it
        return SubmitResult(result=b"", txid="t", block_number=1)

    agent.submit = submit
    monkeypatch.setattr(publisher_mod.time, "time", lambda: 1000.0 + exp.deadline_seconds + 5)
    return Publisher(agent), submitted, honest


def test_publisher_closes_and_records_the_aggregate_in_one_transaction(monkeypatch):
    pub, submitted, honest = _closing_publisher(monkeypatch)
    # None: closed with our aggregate recorded, nothing left to read about the round (drive_round).
    assert pub.close_when_due(pub.agent.client.get_model("m"), pub.agent.client.get_round("m", 1)) is None
    assert [fn for fn, _ in submitted] == ["CloseRoundWithAggregate"]
    kw = submitted[0][1]
    assert kw["accepted"] == honest["accepted"] == ["u10", "u11"]  # every update final: the set is fixed
    assert kw["sha256"] == honest["aggregate"]["sha256"]  # the aggregate every party computes


@pytest.mark.parametrize(
    "pending,refuse,meanwhile", [(True, False, False), (False, True, False), (False, False, True)]
)
def test_publisher_closes_first_while_the_accepted_set_may_change(monkeypatch, pending, refuse, meanwhile):
    """An update still pending at the deadline, a contract that found another accepted set, or a
    round somebody else closed first: the round is closed alone (or found closed) and its aggregate
    is recorded after, from the set the close fixed."""
    pub, submitted, _ = _closing_publisher(
        monkeypatch, pending=pending, refuse=refuse, closed_meanwhile=meanwhile
    )
    after = pub.close_when_due(pub.agent.client.get_model("m"), pub.agent.client.get_round("m", 1))
    assert after is pub.agent.client.rounds[("m", 1)]  # the round as the ledger holds it, for the record
    want = ["CloseRound"] if pending else ["CloseRoundWithAggregate", "CloseRound"]
    assert [fn for fn, _ in submitted] == want


class QueryContract:
    """Answers queries from a dict of JSON-ready answers and records each query's name."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def evaluate(self, fn, *args):
        self.asked.append(fn)
        return json.dumps(self.answers[fn]).encode()


def test_a_pass_reads_the_model_and_its_round_in_one_query_and_uses_that_round_once():
    open_round = {"number": 2, "status": "open"}
    contract = QueryContract({
        "GetModelState": {"model": {"id": "m", "currentRound": 2}, "round": open_round},
        "GetRound": {"number": 2, "status": "closed"},
        "GetAggregates": ["fresh"],
    })  # fmt: skip
    agent = bare_agent(contract, log=runtime.JsonLog(None, "member1", "committee", echo=False))
    assert agent.model() == {"id": "m", "currentRound": 2} and agent.current_round == 2
    assert agent.round(2) == open_round and contract.asked == ["GetModelState"]
    # Served once: asked again in the same pass (after a transaction, say), the ledger answers.
    assert agent.round(2)["status"] == "closed" and contract.asked == ["GetModelState", "GetRound"]
    agent.model()
    assert agent.round(1)["status"] == "closed"  # another round than the one read with the model
    assert contract.asked == ["GetModelState", "GetRound", "GetModelState", "GetRound"]
    assert agent.aggregates(2) == ["fresh"]  # the round read with the model was open: none came with it


def test_a_closed_rounds_aggregates_come_with_the_model_and_serve_once():
    cands = [{"sha256": "ab", "recordedBy": "Org1MSP/p"}]
    contract = QueryContract({
        "GetModelState": {"model": {"id": "m", "currentRound": 3}, "round": {"number": 3, "status": "closed"},
                          "aggregates": cands},
        "GetAggregates": [],
    })  # fmt: skip
    agent = bare_agent(contract, log=runtime.JsonLog(None, "member1", "committee", echo=False))
    agent.model()
    assert agent.aggregates(2) == []  # another round: read
    agent.model()
    assert agent.aggregates(3) == cands and agent.aggregates(3) == []  # served once, then read
    assert contract.asked == ["GetModelState", "GetAggregates", "GetModelState", "GetAggregates"]


def test_a_provider_asks_for_its_update_only_when_an_earlier_run_or_an_unanswered_try_may_have_sent_it():
    from fedcommittee.roles.provider import Provider

    prov = object.__new__(Provider)  # neither data nor a network is needed for this decision
    prov.started, prov.tried, prov.sent, prov.refused, prov.not_allocated = 1000.0, set(), set(), set(), set()
    assert prov.may_have_update(3, {"openedAt": 990})  # opened before we started
    assert prov.may_have_update(3, {"openedAt": 1004})  # within the clock-skew margin
    assert not prov.may_have_update(3, {"openedAt": 1006})  # after: only we could have sent it
    prov.tried.add(3)
    assert prov.may_have_update(3, {"openedAt": 1006})  # we began to send it: maybe it is in
    # The step: found on the ledger once, then known without asking again.
    asked = []
    prov.has_update = lambda r: asked.append(r) or True
    prov.agent = type("A", (), {"round": lambda self, r: {"number": r, "status": "open", "openedAt": 1006}})()
    prov.federated_step({"currentRound": 3})
    prov.federated_step({"currentRound": 3})
    assert asked == [3] and prov.sent == {3}


def test_a_member_scores_a_rounds_updates_in_submission_order():
    from fedcommittee.roles.committee import to_score

    listed = [  # as the ledger lists them: by key, not by time
        {"id": "a", "round": 3, "submittedAt": 20},
        {"id": "b", "round": 3, "submittedAt": 10, "refusal": "repeats the content of update c"},
        {"id": "c", "round": 3, "submittedAt": 10},
        {"id": "d", "round": 3, "submittedAt": 5},
        {"id": "e", "round": 3, "submittedAt": 10},
    ]
    assert [u["id"] for u in to_score(listed)] == ["d", "c", "e", "a"]
