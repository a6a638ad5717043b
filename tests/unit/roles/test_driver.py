"""The one loop every role runs (``driver.run_role``), on a real Agent over a fake ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcommittee.experiment import load_experiment
from fedcommittee.ledger import FedcommitteeClient, GatewayError, NotFound
from fedcommittee.ledger.records import ModelState
from fedcommittee.roles.driver import run_role
from fedcommittee.roles.runtime import Agent, JsonLog

ROOT = Path(__file__).resolve().parents[3]


class Ledger(FedcommitteeClient):
    """GetModel answers from a script: None (not published yet) or a status."""

    def __init__(self, script) -> None:
        super().__init__(contract=None)
        self.script = list(script)

    def get_model(self, model_id):
        self.reads += 1  # as the real client's query does
        self.reads_by_query["GetModel"] += 1
        status = self.script.pop(0)
        if status is None:
            raise NotFound(
                "refused", chaincode_message=f"NOT_FOUND: model {model_id}", stage="evaluate", status=500
            )
        return {"id": model_id, "status": status, "currentRound": 1}

    def get_model_state(self, model_id):
        return ModelState(self.get_model(model_id), None, None)


class Role:
    def __init__(self, fail_on=(), stop_on="no status") -> None:
        self.seen, self.fail_on, self.stop_on = [], fail_on, stop_on

    def step(self, model):
        status = None if model is None else model["status"]
        self.seen.append(status)
        if len(self.seen) in self.fail_on:
            raise GatewayError("peer restarting")
        return 0 if status == self.stop_on else None

    def final_fields(self, model):
        return {"round": model["currentRound"]}

    def wait_seconds(self):
        return 0.0

    def wakes_on(self, event):
        return True


def _agent(script, path):
    exp = load_experiment(ROOT / "configs" / "small.yaml", model_id="m")
    log = JsonLog(path, "a", "provider", echo=False)
    agent = Agent(exp, "a", "provider", client=Ledger(script), store=None, me="Org1MSP/a", log=log,
                  poll_seconds=0.0)  # fmt: skip
    return agent


def _records(path):
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (r["event"], {k: v for k, v in r.items() if k not in ("ts", "agent", "role", "event")}) for r in recs
    ]


def test_the_loop_steps_until_the_model_is_final_and_exits_with_its_outcome(tmp_path):
    agent = _agent([None, "proposed", "active", "active", "finished"], tmp_path / "a.jsonl")
    role = Role(fail_on=(3,))
    assert run_role(agent, role) == 0
    agent.log.close()
    assert role.seen == [None, "proposed", "active", "active"]  # a failed step is simply tried again
    records = _records(tmp_path / "a.jsonl")
    assert ("step_refused", {"level": "warning", "reason": "peer restarting"}) in records
    # the agent's ledger reads, in all and by contract function
    assert records[-1] == ("model_finished", {"reads": 5, "reads_by_query": {"GetModel": 5}, "round": 1})
    agent = _agent(["proposed", "rejected"], tmp_path / "b.jsonl")
    assert run_role(agent, Role()) == 1
    agent.log.close()
    last = _records(tmp_path / "b.jsonl")[-1]
    assert last == ("model_rejected", {"reads": 2, "reads_by_query": {"GetModel": 2}, "round": 1})


def test_a_step_may_stop_the_agent_with_an_exit_code(tmp_path):
    agent = _agent(["active", "active"], tmp_path / "a.jsonl")
    role = Role(stop_on="active")
    assert run_role(agent, role) == 0 and role.seen == ["active"]


def test_poll_interval_from_the_environment(monkeypatch):
    from fedcommittee.roles.driver import poll_seconds

    monkeypatch.delenv("FC_POLL_SECONDS", raising=False)
    assert poll_seconds() == 3.0
    monkeypatch.setenv("FC_POLL_SECONDS", "30")
    assert poll_seconds() == 30.0
    for bad in ("soon", "0", "nan", "1e9"):
        monkeypatch.setenv("FC_POLL_SECONDS", bad)
        with pytest.raises(ValueError, match=f"FC_POLL_SECONDS must be .* got '{bad}'"):
            poll_seconds()


class Batches:
    """An agent's event source (``Agent.events``) that hands out scripted batches of payloads."""

    def __init__(self, *batches) -> None:
        self.batches, self.timeouts = list(batches), []

    def wait(self, timeout, model_id):
        self.timeouts.append(timeout)
        return self.batches.pop(0) if self.batches else []


def test_an_agent_sleeps_through_events_its_role_does_not_wake_on(tmp_path):
    agent = _agent([], tmp_path / "a.jsonl")
    verdicts = [{"type": "VerdictsSubmitted", "mode": "federated"}]
    opened = [{"type": "UpdateSubmitted", "mode": "federated"}, {"type": "RoundOpened", "mode": "federated"}]
    agent.events = Batches(verdicts, verdicts, opened)
    wakes = lambda ev: ev["type"] != "VerdictsSubmitted"  # noqa: E731
    assert agent.wait(5.0, wakes_on=wakes) == opened  # two batches slept through, woken by the third
    assert len(agent.events.timeouts) == 3 and all(t <= 5.0 for t in agent.events.timeouts)
    agent.events = Batches(verdicts)
    assert agent.wait(5.0) == verdicts  # no filter: any event wakes
    agent.events = Batches(verdicts)
    assert agent.wait(0.0, wakes_on=wakes) == []  # the timeout still ends the wait


def test_a_federated_provider_wakes_on_the_rounds_moves_not_on_the_others_updates_and_verdicts():
    from fedcommittee.roles.provider import Provider

    wakes = lambda ev: Provider.wakes_on(None, ev)  # noqa: E731 (it reads nothing of the provider)
    for kind in ("UpdateSubmitted", "VerdictsSubmitted", "UpdateFinalized", "AggregateConfirmed"):
        assert not wakes({"type": kind, "mode": "federated"}), kind
    for kind in ("RoundOpened", "RoundClosed", "AggregateRecorded", "ModelFinished", "ModelActivated"):
        assert wakes({"type": kind, "mode": "federated"}), kind
    # Gossip: an accepted update is a parent to build on, and our own verdicts free our next update.
    assert wakes({"type": "VerdictsSubmitted", "mode": "gossip"})
    assert wakes({"type": "UpdateFinalized", "mode": "gossip"})
    assert wakes({"type": "ModelVote"})  # an event without a mode: a pass, to be safe


def test_a_federated_member_wakes_on_updates_and_the_rounds_moves_not_on_the_others_verdicts():
    from fedcommittee.roles.committee import Member

    wakes = lambda ev: Member.wakes_on(None, ev)  # noqa: E731 (it reads nothing of the member)
    for kind in ("VerdictSubmitted", "VerdictsSubmitted", "UpdateFinalized"):
        assert not wakes({"type": kind, "mode": "federated"}), kind
    for kind in ("UpdateSubmitted", "RoundClosed", "AggregateRecorded", "AggregateConfirmed", "RoundOpened",
                 "DataRegistered", "RuleChangeApplied", "ModelActivated"):  # fmt: skip
        assert wakes({"type": kind, "mode": "federated"}), kind
    assert wakes({"type": "VerdictsSubmitted", "mode": "gossip"})
    assert wakes({"type": "ModelVote"})
