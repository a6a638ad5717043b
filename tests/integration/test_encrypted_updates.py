"""Updates sealed to the committee, end to end on the real network (``encrypt_updates: true``).

``fedcommittee run`` on configs/small.yaml with ``encrypt_updates: true`` added (a temporary copy): the
same outcome as the clear run (honest updates accepted, the sign-flipper rejected, the free rider
rejected; its replays are distinct sealed objects that the committee rejects for repeating its first
update's content), a clean audit by the run (as the publisher: every update opened, every aggregate
recomputed), every update object on IPFS an envelope sealed to exactly the three members and the
publisher, and ``fedcommittee verify`` as a non-recipient counting what it could not open. Then
configs/gossip.yaml the same way: every update sealed to the committee, the publisher and the four
registered providers, the attacker never accepted, audit and report complete.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.integration.test_agents import CONFIG, check_outcome, cli, ledger
from tests.integration.test_protocol_rules import log_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sealed_run(local_network, fabric, tmp_path_factory):
    net = local_network["network"]
    config = tmp_path_factory.mktemp("sealed") / "small-sealed.yaml"
    config.write_text(CONFIG.read_text() + "\nencrypt_updates: true\n")
    model_id = f"sealed-{int(time.time())}"
    proc = cli(net, "run", str(config), "--model-id", model_id, timeout=420)
    return net, model_id, proc


def _update_objects(net, client, model_id: str) -> list[dict]:
    from tests.integration.test_agents import provider_names, updates_by_provider

    model = client.get_model(model_id)
    ups = updates_by_provider(client, model_id, int(model["currentRound"]), provider_names(net))
    return [u for lst in ups.values() for u in lst]


def test_sealed_run_has_the_outcome_of_the_clear_run(sealed_run):
    from fedcommittee.endpoints import Endpoints
    from fedcommittee.experiment import load_experiment
    from fedcommittee.ledger import load_profile
    from fedcommittee.storage import IpfsClient, envelope

    net, model_id, proc = sealed_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("verify: "))
    assert " 0 discrepancies" in line and re.search(
        r", (\d+) sealed updates: 0 not opened, 0 aggregates", line
    ), line
    check_outcome(net, model_id, sealed=True)
    report = json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())
    assert report["summary"]["test_accuracy_final"] > report["summary"]["test_accuracy_initial"] + 0.2

    # Every update object, fetched raw from the node, is an envelope sealed to exactly the committee's
    # and the publisher's certificate keys.
    exp = load_experiment(CONFIG)
    endpoints = Endpoints.load(net.home)
    profile = load_profile(endpoints.connection_profile)
    want = sorted(
        envelope.key_id(profile.identity(u).load()[0].certificate.public_key())
        for u in [exp.publisher, *(m.user for m in exp.committee)]
    )
    gw, client = ledger(net)
    with gw, IpfsClient(endpoints.ipfs_api) as ipfs:
        updates = _update_objects(net, client, model_id)
        assert len(updates) == 8  # 4 providers x 2 rounds: the free rider's replay is not refused now
        for u in updates:
            raw = ipfs.cat(u["cid"], 1 << 22)
            assert envelope.is_envelope(raw), u["id"]
            assert sorted(envelope.envelope_recipients(raw)) == want
    assert f", {len(updates)} sealed updates: 0 not opened" in line

    # The providers' logs say what they sealed: plain and sealed sizes.
    for name in ("honest1", "honest2", "flipper", "freerider"):
        trained = [r for r in log_records(net, model_id, name) if r["event"] == "trained"]
        assert trained and all(r["encrypted"] is True and r["recipients"] == 4 for r in trained)
        assert all(0 < r["plain_bytes"] < r["bytes"] for r in trained)


def test_verify_counts_what_a_non_recipient_cannot_open(sealed_run):
    net, model_id, proc = sealed_run
    assert proc.returncode == 0
    admin = cli(net, "verify", "--model-id", model_id)  # org1-admin: holds no recipient key
    assert admin.returncode == 0, admin.stdout + admin.stderr
    assert "[ok  ]" in admin.stdout and " 0 discrepancies" in admin.stdout
    assert ", 8 sealed updates: 8 not opened, 2 aggregates not recomputed (no recipient key)" in admin.stdout
    member = cli(net, "verify", "--model-id", model_id, "--user", "org2-user2")  # member2
    assert member.returncode == 0, member.stdout + member.stderr
    assert "[ok  ]" in member.stdout and ", 8 sealed updates: 0 not opened, 0 aggregates" in member.stdout


def test_sealed_gossip_run(local_network, fabric, tmp_path):
    """Gossip: updates are sealed to the committee, the publisher and the registered providers (who
    build on each other's accepted updates); the run, its audit and its report open them all."""
    from fedcommittee.endpoints import Endpoints
    from fedcommittee.experiment import load_experiment
    from fedcommittee.ledger import load_profile
    from fedcommittee.storage import IpfsClient, envelope
    from tests.integration.network import ROOT

    net = local_network["network"]
    base = ROOT / "configs" / "gossip.yaml"
    config = tmp_path / "gossip-sealed.yaml"
    config.write_text(base.read_text() + "\nencrypt_updates: true\n")
    model_id = f"sealed-gossip-{int(time.time())}"
    proc = cli(net, "run", str(config), "--model-id", model_id, timeout=420)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("verify: "))
    assert " 0 discrepancies" in line and "sealed updates: 0 not opened, 0 aggregates" in line, line
    report = json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())
    per = report["summary"]["per_provider"]
    assert per["attacker"]["accepted"] == 0
    assert all(per[n]["accepted"] >= 2 for n in ("honest1", "honest2", "honest3")), per
    assert report["sealed_not_opened"] == 0
    assert report["summary"]["test_accuracy_final"] > report["summary"]["test_accuracy_initial"] + 0.15

    exp = load_experiment(base)
    endpoints = Endpoints.load(net.home)
    profile = load_profile(endpoints.connection_profile)
    users = [exp.publisher, *(m.user for m in exp.committee), *(p.user for p in exp.providers)]
    want = sorted(envelope.key_id(profile.identity(u).load()[0].certificate.public_key()) for u in users)
    gw, client = ledger(net)
    with gw, IpfsClient(endpoints.ipfs_api) as ipfs:
        updates = list(client.iter_round_updates(model_id, 0))
        assert len(updates) == len(exp.providers) * exp.gossip.updates_per_provider  # none refused
        for u in updates:
            raw = ipfs.cat(u["cid"], 1 << 22)
            assert envelope.is_envelope(raw) and sorted(envelope.envelope_recipients(raw)) == want
