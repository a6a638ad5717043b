"""The protocol rules end to end on the real network, as users run them (configs/rules.yaml):

approval of the publisher's profile -> data registrations -> random allocation of 3 of 5 providers per
round -> compressed updates scored as sent -> a governance vote during the run -> stop at the target.
And a model whose profile declares more training data than the providers registered is rejected by
the committee with the reason on the ledger.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.network import ROOT
from tests.integration.test_agents import FEDCOMMITTEE, cli, ledger

CONFIG = ROOT / "configs" / "rules.yaml"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def ledger_as(net, user: str):
    from fedcommittee.endpoints import Endpoints
    from fedcommittee.ledger import FedcommitteeClient, Gateway, load_profile

    gw = Gateway.connect(load_profile(Endpoints.load(net.home).connection_profile), user=user)
    return gw, FedcommitteeClient(gw.network().contract())


def log_records(net, model_id: str, agent: str) -> list[dict]:
    path = net.home / "runs" / model_id / "logs" / f"{agent}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def rules_run(local_network, fabric):
    """`fedcommittee run configs/rules.yaml`, with a rule change proposed and voted during the run."""
    from fedcommittee.ledger import ContractError, retrying_conflicts

    net = local_network["network"]
    model_id = f"rules-{int(time.time())}"
    proc = subprocess.Popen(
        [FEDCOMMITTEE, "--home", str(net.home), "run", str(CONFIG), "--model-id", model_id],
        env=net.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    change = {}
    try:
        gw, client = ledger(net)
        with gw:

            def active():
                try:
                    return client.get_model(model_id)["status"] == "active"
                except ContractError:
                    return False

            wait_for(active, 240, "the committee to approve the model")
            # During round 1 (in-process, so the vote lands while the run goes on): the admins of two
            # of the three orgs lengthen the round deadline for later rounds.
            admins = {n: ledger_as(net, f"org{n}-admin") for n in (1, 2)}
            try:
                # Sent as `fedcommittee rules` sends them: round 1 may open or close meanwhile, and
                # a proposal or vote its block invalidates (MVCC) is sent again.
                change_doc = {"deadlineSeconds": 150, "reason": "slow peers"}
                pid = retrying_conflicts(admins[1][1].propose_rule_change, model_id, change_doc).txid
                for n in (1, 2):
                    retrying_conflicts(admins[n][1].vote_rule_change, pid, True)
                # Read through org1's peer, which may be a block behind org2's that committed the vote.
                change = wait_for(
                    lambda: (rc := client.get_rule_change(pid))["status"] != "open" and rc, 30, "the change"
                )
            finally:
                for g, _ in admins.values():
                    g.close()
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return net, model_id, proc.returncode, out, change


def test_the_run_stops_at_the_target_and_audits_clean(rules_run):
    net, model_id, code, out, _ = rules_run
    assert code == 0, out[-6000:]
    assert " 0 discrepancies" in out, out[-3000:]
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
    assert model["status"] == "finished"
    assert model["stopReason"] == "target", model
    assert int(model["currentRound"]) < model["roundRules"]["maxRounds"]
    assert model["best"]["score"] >= 0.8 and model["final"]["sha256"] == model["best"]["sha256"]


def test_approval_followed_the_profile_and_the_registrations(rules_run):
    net, model_id, _, _, _ = rules_run

    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        votes = client.get_model_votes(model_id)
        regs = list(client.iter_data_registrations(model_id))
    prof = model["profile"]
    assert prof["purpose"].startswith("handwritten digit recognition")
    assert len(regs) == 5
    for g in regs:  # consent given in the config: the histogram is there and adds up
        assert g["shareHistogram"] and sum(g["labelHistogram"].values()) == g["numSamples"]
        assert (g["dataType"], g["format"]) == (prof["dataType"], prof["dataFormat"])
    # Every approval was cast once the registrations made by then covered the declared size.
    first_vote = min(v["timestamp"] for v in votes)
    assert all(v["approve"] for v in votes) and len(votes) >= model["quorum"]
    early = [g for g in regs if g["registeredAt"] <= first_vote]
    assert sum(g["numSamples"] for g in early) >= prof["trainingSamples"]
    # Approval scores are the initial weights' shard accuracy (an untrained MLP: about chance).
    assert all(0.0 <= v["score"] < 0.3 for v in votes)


def test_only_allocated_providers_trained(rules_run):
    net, model_id, _, _, _ = rules_run

    from fedcommittee.endpoints import Endpoints
    from fedcommittee.experiment import load_experiment
    from fedcommittee.ledger import load_profile
    from fedcommittee.report import identity_names

    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        rounds = int(model["currentRound"])
        names = identity_names(
            load_experiment(CONFIG), load_profile(Endpoints.load(net.home).connection_profile)
        )
        seen = set()
        for r in range(1, rounds + 1):
            alloc = client.get_allocation(model_id, r)
            ups = list(client.iter_round_updates(model_id, r))
            # Round 1's pool is whoever registered before activation; by round 2 everyone has.
            assert alloc["rule"] == "random" and len(alloc["providers"]) == min(3, alloc["eligible"])
            assert alloc["eligible"] == 5 or (r == 1 and alloc["eligible"] >= 2), alloc
            assert {u["provider"] for u in ups} <= set(alloc["providers"]), f"round {r}"
            for u in ups:
                who = names[u["provider"]]
                seen.add(who)
                # The sign-flipper is rejected whenever it is drawn; honest providers accepted.
                assert u["status"] == ("rejected" if who == "p5" else "accepted"), (r, who, u["status"])
    for name in ("p1", "p2", "p3", "p4", "p5"):
        recs = log_records(net, model_id, name)
        trained = {e["round"] for e in recs if e["event"] == "trained"}
        skipped = {e["round"] for e in recs if e["event"] == "not_allocated"}
        assert not trained & skipped, name
        assert len(trained | skipped) >= rounds - 1, name  # every round it saw, one or the other
    assert len(seen) >= 3


def test_compressed_updates_were_sent_and_scored(rules_run):
    net, model_id, _, _, _ = rules_run
    from fedcommittee.ml.compress import encoded_size

    sizes = {}
    for name, scheme in (("p1", "int8"), ("p4", "float16")):
        trained = [e for e in log_records(net, model_id, name) if e["event"] == "trained"]
        if trained:
            assert {e["scheme"] for e in trained} == {scheme}
            assert {e["bytes"] for e in trained} == {encoded_size("mlp", scheme)}
            sizes[scheme] = trained[0]["bytes"]
    assert sizes, "neither p1 nor p4 was ever allocated"
    full = encoded_size("mlp", "float32")
    assert all(b < 0.6 * full for b in sizes.values()), (sizes, full)


def test_the_rule_change_applied_during_the_run(rules_run):
    net, model_id, code, _, change = rules_run
    assert code == 0
    assert change["status"] == "applied", change
    assert [v["org"] for v in change["votes"]] == ["Org1MSP", "Org2MSP"]
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        history = client.get_history("model", model_id)
    assert model["ruleChanges"] == 1 and model["roundRules"]["deadlineSeconds"] == 150
    entries = history if isinstance(history, list) else history["items"]
    # The audit trail holds the model before and after the change, with the transaction that made it.
    changed = [e for e in entries if (e.get("value") or {}).get("ruleChanges") == 1]
    assert changed and any(not (e.get("value") or {}).get("ruleChanges") for e in entries)
    assert changed[0]["txId"] == change["decidedTx"]


def test_rules_cli_proposes_votes_and_refuses_outsiders(local_network, fabric, store):
    """`fedcommittee rules` against a model that stays active (no agents): propose, vote as org
    admins until applied, a non-admin's vote refused with the contract's reason, and the list."""
    from tests.integration.drills import PUBLISHER, ROLES, DrillLedger, activate, model_spec, unique_id

    net = local_network["network"]
    led = DrillLedger(fabric)
    try:
        for user, role in ROLES.items():
            led.ensure_role(user, role)
        spec = model_spec(led, store, unique_id("rules-cli"), governance=["Org1MSP", "Org2MSP", "Org3MSP"])
        led.submit(PUBLISHER, "PublishModel", spec)
        activate(led, spec["modelId"])
    finally:
        led.close()
    mid = spec["modelId"]
    assert cli(net, "rules", "propose", "--model-id", mid).returncode == 2  # no change given
    prop = cli(net, "rules", "propose", "--model-id", mid, "--quorum", "1", "--reason", "two members left",
               "--user", "org3-admin")  # fmt: skip
    assert prop.returncode == 0, prop.stdout + prop.stderr
    pid = prop.stdout.split()[1].rstrip(":")
    assert " open " in prop.stdout and "0/2 approvals" in prop.stdout, prop.stdout
    outsider = cli(net, "rules", "vote", pid, "--approve", "--user", "org1-user3")
    assert outsider.returncode == 1 and "refused by the contract" in outsider.stderr, outsider.stderr
    first = cli(net, "rules", "vote", pid, "--approve", "--user", "org3-admin")
    assert first.returncode == 0 and "1/2 approvals" in first.stdout, first.stdout + first.stderr
    again = cli(net, "rules", "vote", pid, "--reject", "--user", "org3-admin")  # one vote per org
    assert again.returncode == 1, again.stdout
    second = cli(net, "rules", "vote", pid, "--approve", "--user", "org1-admin")
    assert second.returncode == 0 and " applied " in second.stdout, second.stdout + second.stderr
    listed = cli(net, "rules", "list", "--model-id", mid, "--json")
    (rc,) = json.loads(listed.stdout)
    assert rc["status"] == "applied" and rc["change"] == {"quorum": 1, "reason": "two members left"}
    assert [v["org"] for v in rc["votes"]] == ["Org3MSP", "Org1MSP"]
    gw, client = ledger(net)
    with gw:
        assert client.get_model(mid)["quorum"] == 1


def test_an_oversold_profile_is_rejected_with_its_reason(local_network, fabric, tmp_path):
    net = local_network["network"]
    model_id = f"oversold-{int(time.time())}"
    cfg = tmp_path / "oversold.yaml"
    cfg.write_text(
        CONFIG.read_text()
        .replace(
            'profile: {purpose: "handwritten digit recognition across three organizations"}',
            'profile: {purpose: "needs far more data than anyone has", training_samples: 1000000000}',
        )
        .replace("deadline_seconds: 120", "deadline_seconds: 20")  # members wait this long for data
    )
    proc = cli(net, "run", str(cfg), "--model-id", model_id, "--no-report", timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:]
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        votes = client.get_model_votes(model_id)
    assert model["status"] == "rejected"
    reasons = [v.get("reason", "") for v in votes if not v["approve"]]
    assert len(reasons) >= model["quorum"]
    assert all("declared 1000000000 training samples" in r for r in reasons), reasons
