"""Restart every agent at once: a running experiment loses nothing when all its agents die together.

On the session network, ``run_experiment`` runs ``configs/small.yaml`` with ``ROUNDS`` rounds instead
of 2 and a ``KillDrill`` (crash_drill.py) naming *every* agent (all providers, all committee members
and the publisher) with the same round: once round ``KILL_IN`` opens, all of them are SIGKILLed
before any is restarted, so for a moment no agent of the consortium is alive,
whatever it was doing (training, scoring, submitting, between an IPFS put and its transaction).

Agents are level-triggered and idempotent: restarted, each reads the ledger and does what is still
missing. What must hold at the end:

* the experiment finishes (exit 0: the model is finished and its audit finds 0 discrepancies), and
  a separate ``fedcommittee verify`` agrees;
* the kill was mid-run (the model was active, and work was left), every agent was killed once and
  restarted, and none exited on its own afterwards (no restarts by the orchestrator were needed);
* nothing lost: every update accepted before the kill is still accepted, and every accepted update
  and every round aggregate is fetched again from IPFS with its recorded sha256;
* nothing counted twice: the outcomes of the undisturbed run, one verdict per member per update and
  a leaderboard that matches them (``test_agents.check_outcome``), and one aggregate confirmation
  per member per round.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from fedcommittee.ledger import ContractError
from tests.integration.test_agents import check_outcome, ledger, small_config
from tests.integration.test_faults import accepted_updates, agent_crashes, audit_nothing_lost

# The supervisor's turns (and so the drill) come every 2 s, and on a fast day a round of small.yaml
# takes half a second: with 6 rounds, rounds 3-6 once went by between two turns and nobody was
# killed. 20 leave several turns after round 3 opens.
ROUNDS = 20
KILL_IN = 3  # the round all agents die in: rounds before it are done, rounds after it still to come


class Tee:
    """stdout while the experiment runs: passed through, and kept line by line."""

    def __init__(self, out) -> None:
        self.out, self.lines, self._buf = out, [], ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.out.write(text)
            self._buf += text
            *done, self._buf = self._buf.split("\n")
            self.lines += done
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def text(self) -> str:
        return "\n".join(self.lines)


def model_state(net, model_id: str) -> dict:
    gw, client = ledger(net)
    with gw:
        try:
            m = client.get_model(model_id)
        except ContractError:  # not published yet
            return {"status": "unpublished", "round": 0}
        r = int(m.get("currentRound") or 0)
        rd = client.get_round(model_id, r)["status"] if r else ""
        return {"status": m["status"], "round": r, "round_status": rd}


@pytest.fixture(scope="module")
def restarted_run(local_network, fabric, tmp_path_factory, monkeypatch_module):
    from fedcommittee.experiment import load_experiment
    from fedcommittee.run import run_experiment
    from tests.integration.crash_drill import KillDrill

    net = local_network["network"]
    for k, v in net.env().items():
        monkeypatch_module.setenv(k, v)  # the agents run_experiment starts inherit the network's env
    config = small_config(
        tmp_path_factory.mktemp("restart-all") / "small.yaml", ("rounds: 2", f"rounds: {ROUNDS}")
    )
    model_id = f"small-restart-all-{int(time.time())}"
    exp = load_experiment(config, model_id=model_id)
    names = [m.name for m in exp.committee] + [p.name for p in exp.providers] + ["publisher"]
    result: dict = {}
    at_kill: list[tuple[dict, dict]] = []  # (model state, accepted updates), read just before the kill

    def record_ledger(_model: dict) -> None:
        at_kill.append((model_state(net, model_id), accepted_updates(net, model_id)))

    def target() -> None:
        try:
            result["code"] = run_experiment(
                exp,
                config,
                home=net.home,
                timeout=600,
                report=False,
                each_turn=KillDrill(dict.fromkeys(names, KILL_IN), on_kill=record_ledger),
            )
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
            result["error"] = exc

    tee = Tee(sys.stdout)
    started = time.time()
    sys.stdout = tee  # run_experiment prints its progress (and the drill's kills) from its thread
    try:
        runner = threading.Thread(target=target, daemon=True)
        runner.start()
        runner.join(660)
    finally:
        sys.stdout = tee.out
    assert not runner.is_alive(), "run_experiment did not return"
    if "error" in result:
        raise result["error"]
    return net, model_id, names, result["code"], tee, at_kill, time.time() - started


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_experiment_survives_restarting_every_agent_at_once(restarted_run):
    net, model_id, names, code, tee, at_kill, wall = restarted_run
    out = tee.text()
    assert code == 0, out[-6000:]
    assert " 0 discrepancies" in out, out[-4000:]

    # Every agent was killed once, all in one go (nothing else happened between the kills), mid-run.
    kills = [i for i, ln in enumerate(tee.lines) if ln.startswith("drill: killed ")]
    assert sorted(tee.lines[i].split()[2].rstrip(";") for i in kills) == sorted(names), out[-4000:]
    assert kills == list(range(kills[0], kills[0] + len(names))), "the kills were not one batch"
    assert len(at_kill) == 1, f"the ledger was read {len(at_kill)} times at a kill, not once"
    state_at_kill, seen = at_kill[0]
    assert state_at_kill["status"] == "active", state_at_kill
    logs = net.home / "runs" / model_id / "logs"
    for name in names:
        starts = (logs / f"{name}.jsonl").read_text().count('"event":"start"')
        assert starts >= 2, f"{name}: {starts} start(s): it was not restarted"

    check_outcome(net, model_id)
    final, lost, objects = audit_nothing_lost(net, model_id, seen)
    assert len(final) > len(seen), "no update was accepted after the kill: it was not mid-run"

    # Nothing counted twice: one aggregate confirmation per member per round (check_outcome did
    # the verdicts and the leaderboard), and every round done with an aggregate.
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        assert int(model["currentRound"]) == ROUNDS
        members = {seat["member"] for seat in model["committee"]}
        for r in range(1, ROUNDS + 1):
            rd = client.get_round(model_id, r)
            assert rd["status"] == "done" and rd["aggregate"], rd
            confirmers = [
                c["member"] for cand in client.get_aggregates(model_id, r) for c in cand["confirmations"]
            ]
            assert len(confirmers) == len(set(confirmers)) and set(confirmers) <= members, (r, confirmers)
            assert len(confirmers) >= model["quorum"]

    assert "no restarts left" not in out, out[-4000:]
    crashes = agent_crashes(net, model_id, out)
    print(
        "\n".join(
            [
                "restart-all drill summary",
                f"  killed at once (in round {KILL_IN}): {', '.join(sorted(names))}",
                f"  ledger at the kill: model {state_at_kill['status']}, round {state_at_kill['round']} "
                f"{state_at_kill['round_status']}, {len(seen)} updates accepted",
                f"  experiment {model_id}: finished, exit {code}, {wall:.0f} s, {ROUNDS} rounds",
                f"  accepted at the end: {len(final)}; lost: {len(lost)}",
                f"  objects re-verified from IPFS (sha256): {len(objects)}",
                *(f"  agent crash after the restart: {c}" for c in crashes),
            ]
        )
    )
    assert not crashes, "\n".join(crashes)
