"""A member sends a round's verdicts in one SubmitVerdicts transaction, and handles what it skips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fedcommittee.experiment import load_experiment
from fedcommittee.ledger import ContractError, FedcommitteeClient
from fedcommittee.ledger.gateway import SubmitResult
from fedcommittee.logs import expected_race
from fedcommittee.policy import Policy
from fedcommittee.roles import committee as committee_mod
from fedcommittee.roles.committee import Member

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class StubAgent:
    """What Member's verdict path uses: exp, me, submit, log, and the ledger's verdicts; also the
    contract under its client, recording each transaction's wire arguments."""

    exp: object
    me: str = "Org1MSP/member"
    model_id: str = "m1"
    calls: list = field(default_factory=list)
    records: list = field(default_factory=list)
    on_ledger: set = field(default_factory=set)
    refuse_batch: bool = False
    skip: tuple = ()
    final: set = field(default_factory=set)  # updates the others' verdicts have finalized
    honour_done: bool = False  # check ``done`` before sending, as Agent.submit does
    tries_lost: int = 0  # tries that end without an answer before the one that is sent for good
    meanwhile: object = None  # what happens on the ledger during such a try: a function of the stub

    @property
    def client(self) -> FedcommitteeClient:
        """The real client, its transactions sent to ``submit_transaction`` below."""
        return FedcommitteeClient(self)

    def submit(self, send, *args, done=None, recheck=None, checked=False, wait_for_peers=False, **kwargs):
        # A member read every update it judges on its own peer: its verdicts wait for peers behind.
        assert wait_for_peers, "verdicts must wait for an endorsing peer that is behind"
        ask = recheck if checked else done  # as Agent.submit asks before its first try
        for _ in range(self.tries_lost):
            if self.honour_done and ask is not None and ask():
                return None
            self.meanwhile(self)
            ask = done  # the try's outcome is unknown
        if self.honour_done and ask is not None and ask():
            return None
        return send(*args, **kwargs)

    def evaluate(self, fn, *args):
        assert fn == "ListRoundUpdates", fn
        statuses = {u: ("accepted" if u in self.final else "pending") for u in ("a", "b", "c")}
        return json.dumps({"items": [{"id": u, "status": s} for u, s in statuses.items()]}).encode()

    def submit_transaction(self, fn, *args):
        self.calls.append((fn, args))
        if fn == "SubmitVerdicts":
            if self.refuse_batch:
                raise ContractError(
                    "refused", chaincode_message="verdicts[1]: boom", stage="endorse", status=500
                )
            items = json.loads(args[0])["verdicts"]
            recorded = [v["updateId"] for v in items if v["updateId"] not in self.skip]
            skipped = [{"updateId": u, "reason": "update is accepted, not pending"} for u in self.skip]
            self.on_ledger |= set(recorded)
            body = json.dumps({"recorded": recorded, "skipped": skipped}).encode()
            return SubmitResult(result=body, txid="t", block_number=1)
        self.on_ledger.add(args[0])
        return SubmitResult(result=b"", txid="t", block_number=1)

    def log(self, event, **fields):
        self.records.append((event, fields))

    @property
    def policy(self):
        return Policy.from_experiment(self.exp)


def _member(**kw):
    exp = load_experiment(ROOT / "configs" / "small.yaml", model_id="m1")
    agent = StubAgent(exp=exp, **kw)
    m = Member(agent, "member1")
    m.has_verdict = lambda uid: uid in agent.on_ledger
    return m, agent


def _u(uid):
    return {"id": uid, "provider": f"Org2MSP/{uid}", "round": 3}


def test_a_round_of_verdicts_is_one_transaction_and_skips_are_logged():
    m, agent = _member(skip=("b",))
    m._verdicts([(_u("a"), 0.3, "", None), (_u("b"), -0.2, "", None), (_u("c"), -1.0, "bad hash", None)])
    assert [fn for fn, _ in agent.calls] == ["SubmitVerdicts"]
    sent = json.loads(agent.calls[0][1][0])["verdicts"]
    assert [v["updateId"] for v in sent] == ["a", "b", "c"]
    assert sent[2]["accept"] is False and sent[2]["reason"] == "bad hash"
    assert sent[0]["accept"] is True and sent[1]["accept"] is False  # trust rule: score >= 0 accepts
    assert m.judged == {"a", "b", "c"}
    refused = [f["update"] for e, f in agent.records if e == "verdict_refused"]
    assert refused == ["b"]
    assert [f["update"] for e, f in agent.records if e == "verdict"] == ["a", "b", "c"]


def test_one_verdict_goes_alone_and_a_refused_batch_falls_back_to_singles():
    m, agent = _member()
    m._verdicts([(_u("a"), 0.3, "", None)])
    assert [fn for fn, _ in agent.calls] == ["SubmitVerdict"]
    m, agent = _member(refuse_batch=True)
    agent.on_ledger.add("b")  # b made it meanwhile: not sent again
    m._verdicts([(_u("a"), 0.3, "", None), (_u("b"), 0.1, "", None), (_u("c"), 0.2, "", None)])
    assert [(fn, args[0]) for fn, args in agent.calls] == [
        ("SubmitVerdicts", agent.calls[0][1][0]),
        ("SubmitVerdict", "a"),
        ("SubmitVerdict", "c"),
    ]
    assert (
        "verdicts_refused",
        {"level": "warning", "count": 3, "reason": "verdicts[1]: boom"},
    ) in agent.records


def test_a_batch_the_others_finalized_is_not_sent_and_its_verdicts_count_as_late():
    """The retry of a batch whose first try ended without an answer: once every update is final (or
    has our verdict), the contract would skip each verdict, so nothing is sent; the unsent ones are
    logged as the race the contract's skips are."""

    def meanwhile(agent):
        agent.on_ledger.add("c")  # ours made it (the unanswered try) before the others finalized c
        agent.final.update({"a", "b", "c"})

    m, agent = _member(honour_done=True, tries_lost=1, meanwhile=meanwhile)
    items = [(_u(u), 0.3, "", None) for u in ("a", "b", "c")]
    m._verdicts(items)
    assert agent.calls == []
    refused = [(f["update"], f["reason"]) for e, f in agent.records if e == "verdict_refused"]
    assert [u for u, _ in refused] == ["a", "b"]
    assert all(expected_race("verdict_refused", {"reason": r}) == "verdict_after_close" for _, r in refused)
    # One update still pending without our verdict: the batch goes.
    m, agent = _member(honour_done=True, final={"a", "c"})
    m._verdicts(items)
    assert [fn for fn, _ in agent.calls] == ["SubmitVerdicts"]


def test_a_pending_update_is_looked_up_for_our_verdict_once_not_on_every_pass():
    m, agent = _member()
    asked = []
    m.has_verdict = lambda uid: asked.append(uid) or uid in agent.on_ledger
    agent.on_ledger.add("b")  # ours from before a restart
    ups = [{**_u(u), "status": "pending"} for u in ("a", "b")]
    assert [u["id"] for u in m._unjudged(ups)] == ["a"]
    assert [u["id"] for u in m._unjudged(ups)] == ["a"]  # the next pass: still to judge
    assert asked == ["a", "b"]  # each asked once


def test_an_update_submitted_after_we_started_is_not_looked_up_for_a_verdict_of_ours():
    """Only an earlier run of ours, before a restart, could have judged an update: one submitted
    after this run started (beyond the clock-skew margin) needs no ledger read."""
    m, agent = _member()
    asked = []
    m.has_verdict = lambda uid: asked.append(uid) or False
    late = int(m.started + committee_mod.RESTART_CHECK_MARGIN_SECONDS) + 1
    ups = [
        {**_u("old"), "status": "pending", "submittedAt": int(m.started) - 60},
        {**_u("near"), "status": "pending", "submittedAt": int(m.started)},
        {**_u("new"), "status": "pending", "submittedAt": late},
    ]
    assert [u["id"] for u in m._unjudged(ups)] == ["old", "near", "new"]
    assert asked == ["old", "near"]


def test_before_the_first_try_a_batch_asks_which_updates_are_pending_but_not_for_our_verdicts():
    """Our verdicts on updates we just found unjudged are known to be missing: the check before the
    first try is one listing, not one GetVerdicts per update (a retry asks, as above)."""
    asked = []
    items = [(_u(u), 0.3, "", None) for u in ("a", "b", "c")]
    m, agent = _member(honour_done=True, final={"a"})
    m.has_verdict = lambda uid: asked.append(uid) or uid in agent.on_ledger
    m._verdicts(items)
    assert [fn for fn, _ in agent.calls] == ["SubmitVerdicts"] and asked == []
    # All three finalized by the others before we sent: nothing sent, nothing asked, all late.
    m, agent = _member(honour_done=True, final={"a", "b", "c"})
    m.has_verdict = lambda uid: asked.append(uid) or uid in agent.on_ledger
    m._verdicts(items)
    assert agent.calls == [] and asked == []
    assert [f["update"] for e, f in agent.records if e == "verdict_refused"] == ["a", "b", "c"]


def test_a_member_reads_probation_from_the_finished_rounds_once():
    """Round r's probation: providers rejected in the rule's probation_rounds rounds before r, read
    from the ledger once per finished round."""
    from dataclasses import replace
    from types import SimpleNamespace

    from fedcommittee.experiment import ScoringConfig

    scoring = ScoringConfig(rule="effect", cos_floor=-0.2, sym_se=10.0, probation_rounds=2)
    exp = replace(load_experiment(ROOT / "configs" / "small.yaml"), scoring=scoring)
    ledger = {
        1: [{"provider": "p", "status": "rejected"}],
        2: [{"provider": "q", "status": "rejected"}, {"provider": "p", "status": "accepted"}],
        3: [{"provider": "r", "status": "rejected"}],
    }
    reads: list[int] = []

    def iter_round_updates(model_id, k):
        reads.append(k)
        return iter(ledger[k])

    agent = SimpleNamespace(policy=Policy.from_experiment(exp), model_id="m1", log=lambda *a, **kw: None,
                            client=SimpleNamespace(iter_round_updates=iter_round_updates))  # fmt: skip
    member = Member(agent, "m")
    updates = [{"provider": x} for x in ("p", "q", "r", "s")]
    assert member.probation_of(3, updates) == [True, True, False, False]  # rounds 1 and 2
    assert member.probation_of(4, updates) == [False, True, True, False]  # rounds 2 and 3
    assert reads == [1, 2, 3]  # each finished round read once
    assert member.probation_of(1, updates) == [False] * 4  # no round before the first
    # Until a first acceptance too: only p has had one (round 2), so q, r and s start on probation,
    # and round 1 judges everyone on it. Still each finished round read once.
    member.rule = replace(member.rule, probation_until_accepted=True)
    assert member.probation_of(1, updates) == [True] * 4
    assert member.probation_of(3, updates) == [True, True, True, True]  # p: rejected in round 1
    assert member.probation_of(4, updates) == [False, True, True, True]
    assert reads == [1, 2, 3]
