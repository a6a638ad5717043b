"""The role agents on the real network: a small federated consortium, run as users run it.

1. ``fedcommittee run configs/small.yaml`` (digits + MLP, 4 providers incl. a sign-flipper and a free
   rider, 3 committee members, 2 rounds): the attacker's and the free rider's updates are rejected,
   the honest ones accepted, the global model improves, and ``fedcommittee verify`` finds nothing.
2. The same experiment with a provider and a committee member SIGKILLed mid-run and restarted: the
   model still finishes with every honest update accepted once, nothing counted twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from fedcommittee.roles.protocol import final_candidates, final_choice, final_mix, generations
from tests.integration.network import ROOT

FEDCOMMITTEE = str(Path(sys.executable).parent / "fedcommittee")
CONFIG = ROOT / "configs" / "small.yaml"


def small_config(dest: Path, *changes: tuple[str, str]) -> Path:
    """configs/small.yaml with whole lines replaced, each ``(old, new)`` (every old line must be in
    it), written to ``dest``."""
    text = CONFIG.read_text()
    for old, new in changes:
        assert f"\n{old}\n" in text, f"{CONFIG} has no line {old!r}"
        text = text.replace(f"\n{old}\n", f"\n{new}\n")
    dest.write_text(text)
    return dest


def run_small(net, monkeypatch, config: Path, name: str, timeout: float, each_turn=None) -> tuple[str, int]:
    """``fedcommittee run`` of ``config`` in this process, its agents on ``net`` (``each_turn``: a
    supervision-turn hook, as ``run_experiment`` takes it): (model id, exit code)."""
    from fedcommittee.experiment import load_experiment
    from fedcommittee.run import run_experiment

    for k, v in net.env().items():
        monkeypatch.setenv(k, v)  # the agents run_experiment starts inherit the network's env
    model_id = f"{name}-{int(time.time())}"
    exp = load_experiment(config, model_id=model_id)
    return model_id, run_experiment(
        exp, config, home=net.home, timeout=timeout, report=False, each_turn=each_turn
    )


def cli(net, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FEDCOMMITTEE, "--home", str(net.home), *args],
        env=net.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ledger(net):
    from fedcommittee.endpoints import Endpoints
    from fedcommittee.ledger import FedcommitteeClient, Gateway, load_profile

    endpoints = Endpoints.load(net.home)
    gw = Gateway.connect(load_profile(endpoints.connection_profile), user="org1-admin")
    return gw, FedcommitteeClient(gw.network().contract())


def provider_names(net) -> dict[str, str]:
    from fedcommittee.endpoints import Endpoints
    from fedcommittee.experiment import load_experiment
    from fedcommittee.ledger import load_profile
    from fedcommittee.report import identity_names

    profile = load_profile(Endpoints.load(net.home).connection_profile)
    return identity_names(load_experiment(CONFIG), profile)


def updates_by_provider(client, model_id: str, rounds: int, names: dict[str, str]) -> dict[str, list[dict]]:

    out: dict[str, list[dict]] = {}
    for r in range(1, rounds + 1):
        for u in client.iter_round_updates(model_id, r):
            out.setdefault(names[u["provider"]], []).append(u)
    return out


def check_outcome(net, model_id: str, *, sealed: bool = False) -> None:
    """``sealed``: the run had ``encrypt_updates``, so the free rider's replays are distinct objects
    that the committee rejects for repeating its first update's content (the contract cannot see it)."""
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        assert model["status"] == "finished", model
        rounds = int(model["currentRound"])
        ups = updates_by_provider(client, model_id, rounds, provider_names(net))
        # Honest providers: one accepted update per round, never two.
        for name in ("honest1", "honest2"):
            assert [u["status"] for u in ups[name]] == ["accepted"] * rounds, (name, ups[name])
        # The sign-flipper is rejected every round, and so is the free rider: its zero delta by the
        # committee, its replays in later rounds either by the committee (sealed: new bytes, same
        # content) or by the contract on the spot (byte-identical: recorded with a refusal, no verdicts).
        assert [u["status"] for u in ups["flipper"]] == ["rejected"] * rounds
        assert [u["status"] for u in ups["freerider"]] == ["rejected"] * rounds
        first = ups["freerider"][0]["id"]
        assert "refusal" not in ups["freerider"][0]
        for u in ups["freerider"][1:]:
            if sealed:
                reasons = {v.get("reason", "") for v in client.get_verdicts(u["id"])}
                assert reasons
                assert all(r.startswith(f"repeats the content of update {first}") for r in reasons)
            else:
                assert u["refusal"].startswith("replay: sha256 ")
                assert u["refusal"].endswith(f"as update {first}")
        # Nothing counted twice: each judged update has `quorum`..committee verdicts, one per member;
        # one the contract refused has none.
        for lst in ups.values():
            for u in lst:
                verdicts = client.get_verdicts(u["id"])
                members = [v["member"] for v in verdicts]
                assert len(members) == len(set(members)), u["id"]
                if u.get("refusal"):
                    assert members == [], u["id"]
                else:
                    assert model["quorum"] <= len(members) <= len(model["committee"])
        # Rewards agree with the outcomes.
        ranked = client.get_leaderboard(model_id)
        assert client.leaderboard(model_id) == ranked  # the paged reading, as the report reads it
        board = {e["identity"]: e for e in ranked}
        for lst in ups.values():
            prov = lst[0]["provider"]
            assert board[prov]["accepted"] == sum(u["status"] == "accepted" for u in lst)
            assert board[prov]["rejected"] == sum(u["status"] == "rejected" for u in lst)


@pytest.fixture(scope="module")
def federated_run(local_network, fabric):
    net = local_network["network"]
    model_id = f"small-{int(time.time())}"
    started = time.time()
    proc = cli(net, "run", str(CONFIG), "--model-id", model_id, timeout=420)
    return net, model_id, proc, time.time() - started


def test_federated_run_rejects_attackers_and_improves(federated_run):
    net, model_id, proc, wall = federated_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "verify: " in proc.stdout and " 0 discrepancies" in proc.stdout
    check_outcome(net, model_id)
    report = json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())
    acc = report["summary"]
    assert acc["test_accuracy_final"] > acc["test_accuracy_initial"] + 0.2, acc
    assert (net.home / "runs" / model_id / "report" / "accuracy.png").stat().st_size > 0
    # One JSON-lines log per agent, every line a JSON object.
    logs = sorted((net.home / "runs" / model_id / "logs").glob("*.jsonl"))
    assert len(logs) == 8
    for path in logs:
        for line in path.read_text().splitlines():
            assert json.loads(line)["agent"] == path.stem
    # The publisher closes rounds with their aggregate in one transaction: the contract takes the
    # agents' digest of the accepted set as its own (a mismatch would be refused and fall back).
    publisher = [json.loads(ln) for ln in (logs[0].parent / "publisher.jsonl").read_text().splitlines()]
    assert not [r for r in publisher if r["event"] == "close_with_aggregate_refused"]
    assert any(r.get("tx") == "CloseRoundWithAggregate" for r in publisher if r["event"] == "submitted")


def test_verify_status_and_history_commands(federated_run):
    net, model_id, proc, _ = federated_run
    assert proc.returncode == 0
    verify = cli(net, "verify", "--model-id", model_id)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "[ok  ]" in verify.stdout and "0 discrepancies" in verify.stdout
    status = cli(net, "status", "--model-id", model_id, "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)[0]
    assert info["status"] == "finished" and not info["pending_verdicts"]
    history = cli(net, "history", "model", model_id)
    assert history.returncode == 0, history.stderr
    assert len(history.stdout.splitlines()) >= 3  # proposed, active, rounds..., finished


def test_bad_config_is_a_usage_error(local_network, tmp_path):
    net = local_network["network"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("rounds: 2", "roundz: 2"))
    proc = cli(net, "run", str(bad))
    assert proc.returncode == 2
    assert "roundz" in proc.stderr


def test_agents_survive_a_kill_and_restart(local_network, fabric, tmp_path):
    from fedcommittee.experiment import load_experiment
    from fedcommittee.run import run_experiment
    from tests.integration.crash_drill import KillDrill

    net = local_network["network"]
    model_id = f"small-drill-{int(time.time())}"
    # More rounds, so that both kills fall inside the run: the drill acts on the supervisor's turns,
    # every 2 s, and a round can take half a second.
    config = small_config(tmp_path / "small.yaml", ("rounds: 2", "rounds: 12"))
    exp = load_experiment(config, model_id=model_id)
    env = net.env()
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = run_experiment(
            exp,
            config,
            home=net.home,
            timeout=400,
            report=False,
            each_turn=KillDrill({"honest1": 1, "member2": 3}),
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0
    check_outcome(net, model_id)
    logs = net.home / "runs" / model_id / "logs"
    for name in ("honest1", "member2"):
        starts = [ln for ln in (logs / f"{name}.jsonl").read_text().splitlines() if '"event":"start"' in ln]
        assert len(starts) >= 2, f"{name} was not restarted"


def test_gossip_run(local_network, fabric):
    """Gossip mode: no rounds; the noise attacker never becomes a parent; the audit is clean."""
    net = local_network["network"]
    model_id = f"gossip-{int(time.time())}"
    proc = cli(net, "run", str(ROOT / "configs" / "gossip.yaml"), "--model-id", model_id, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())
    per = report["summary"]["per_provider"]
    assert per["attacker"]["accepted"] == 0 and per["attacker"]["rejected"] >= 1
    for name in ("honest1", "honest2", "honest3"):
        assert per[name]["accepted"] >= 2, per
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        prop = model.get("finalProposal") or {}
        assert model["status"] == "finished" and prop, model
        attacker_ids = {u["id"] for u in report["updates"] if u["provider"] == "attacker"}
        accepted, earlier = [], defaultdict(list)
        for u in report["updates"]:
            full = client.get_update(u["id"])
            assert not attacker_ids & set(full.get("parents") or []), "a rejected update became a parent"
            if full["status"] == "accepted":
                accepted.append(full)
            earlier[u["provider"]].append(full["standing"])
        # Each update recorded its provider's standing, one chain per provider (the audit recomputes
        # each one: its verdict is below); the attacker's show every earlier update of its rejected.
        for provider, chain in earlier.items():
            assert sorted(s["earlier"] for s in chain) == list(range(len(chain))), (provider, chain)
        caught = earlier["attacker"]
        assert all(s["accepted"] == 0 and s["lastRejectedAgo"] == (s["earlier"] > 0) for s in caught), caught
        # Every accepted model carries the committee's measured quality (the median of the members'
        # shard accuracies, each verdict recording its own).
        for u in accepted:
            qualities = sorted(v["quality"] for v in client.get_verdicts(u["id"]))
            assert 0.0 <= u["medianQuality"] <= 1.0 and qualities[0] <= u["medianQuality"] <= qualities[-1]
        # The proposed final: the mean of each provider's best fresh model by that measure, beside
        # every accepted model, as the ledger records them (the audit recomputes the mean: its
        # verdict is below).
        assert prop["mix"] == final_mix(accepted) and prop["candidates"] == final_candidates(accepted)
        depth = generations(accepted)
        mix = [client.get_update(uid) for uid in prop["mix"]]
        assert len({u["provider"] for u in mix}) == len(mix) >= 2  # one model per provider
        assert all(depth[u["id"]] >= max(depth.values()) - 1 for u in mix)  # none stale
        # A quorum of members measured every entry, and the model ended on the best by median.
        judges = {j["member"] for j in prop["judgments"]}
        assert len(judges) == len(prop["judgments"]) >= model["quorum"]
        assert all(len(j["qualities"]) == 1 + len(prop["candidates"]) for j in prop["judgments"])
        winner, medians = final_choice(prop)
        assert prop["medians"] == pytest.approx(medians)
        if winner is None:
            assert model["finalMix"] == prop["mix"] and model["final"]["sha256"] == prop["sha256"]
        else:
            assert (
                model["finalUpdate"] == winner
                and model["final"]["sha256"] == client.get_update(winner)["sha256"]
            )
    assert "verify: " in proc.stdout and " 0 discrepancies" in proc.stdout
    assert report["summary"]["test_accuracy_final"] > report["summary"]["test_accuracy_initial"] + 0.15
    page = (net.home / "runs" / model_id / "report" / "report.html").read_text()
    assert "standing when sent" in page and "the previous one rejected" in page
