"""Fault drills: a running federated experiment keeps working, and loses nothing, under node faults.

On a network of its own (stopping nodes of the session network would disturb the other modules),
``fedcommittee run`` runs ``configs/small.yaml`` with 4 rounds instead of 2 (so that each drill
falls inside a round) as a subprocess while the drills, one per round, use ``scripts/network.sh
stop NAME`` / ``start NAME``:

a. round 1, on Fabric: one of the three Raft orderers is stopped (the other two keep a quorum),
   started again; on the embedded ledger: the ledger process is killed (SIGKILL) and restarted;
b. round 2: one org's peer (the gateway of that org's agents) is stopped mid-round and brought back
   (on the embedded ledger: that org's listener is closed and reopened);
c. round 3: the IPFS node is restarted.

Then: the experiment finished and its audit found nothing; ``fedcommittee verify`` agrees; every
update seen accepted during the drills is still accepted on the ledger, and every accepted update
and aggregate is fetchable from IPFS with its recorded sha256; one verdict per member per update and
a leaderboard that matches the outcomes (``test_agents.check_outcome``). A summary is printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.network import ROOT, LocalNetwork
from tests.integration.test_agents import FEDCOMMITTEE, check_outcome, cli, ledger, small_config

# Rounds take seconds and go on while a drill's node is down (Fabric's other orderers and peers carry
# them), so there must be rounds left for the next drill when one ends: each drill waits for the next
# round to open after the previous one, and none starts in the last round, which progress (polled)
# may name only as it finishes, leaving the drill to hit the run's closing audit instead. The drills
# hold nodes down for 10 + 10 + 5 s one after another, and rounds go on meanwhile at the machine's
# pace: 16 rounds were too few on Fabric on a fast day (the third drill stopped Kubo during the
# audit), and so were 24 on a quiet one (2026-12-07: rounds of about 0.65 s, the peer drill in
# round 21, none left for Kubo's). 60 leaves rounds for all three down to about 0.5 s a round; a
# slow day pays for the margin with rounds after the last drill. So many rounds need the default
# config's committee (SCORING, read from configs/default.yaml so that it follows the default):
# small.yaml's `trust` bar drifts onto honest updates as training goes on (it rejected an honest one
# in round 40 of such a run), and the checks want every honest update accepted. The default's bars
# before probation (`effect`, cos_floor -0.05) rejected one in round 24 of a Fabric run (2026-12-07),
# scored while a drill held a peer down; in process, over 60 rounds on seeds 0-2, they and the
# default's bars keep every honest update (`benchmarks/ml/main_job.py --config configs/small.yaml
# --set rounds=60 --set "scoring={...}"`), so the drill's timing decided it, and the default's
# lenient floor leaves more room.
ROUNDS = 60


def _default_committee_scoring() -> str:
    """small.yaml's scoring line with configs/default.yaml's rule and bars, and small.yaml's own
    reference training (its model and data are not the default's)."""
    scoring = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["scoring"]
    bars = {k: v for k, v in scoring.items() if k not in ("reference_steps", "reference_lr")}
    return "scoring: " + json.dumps({**bars, "reference_steps": 40, "reference_lr": 0.1})


SCORING = (
    "scoring: {rule: trust, metric: loss, reference_steps: 40, reference_lr: 0.1}",
    _default_committee_scoring(),
)
# A transaction in flight when the embedded ledger is killed is lost with it. Its sender used to learn
# that only when its CommitStatus wait (60 s, asked again once on DEADLINE_EXCEEDED) ran out, about
# 124 s, and small.yaml's 120-s round deadline once closed round 1 without that provider (CI,
# 2026-12-06). Since the gateway client asks only once more, for 20 s, after the connection drops
# (`Timeouts.commit_after_outage`; tests/unit/ledger/test_gateway.py), the resubmission should come
# within about 25 s of the restart; the default config's 240 s is kept as margin (a drill rarely
# catches a transaction in flight, so this path is not seen in every run).
DEADLINE_SECONDS = 240
# The first drill's node, per ledger backend: a Raft orderer, or the embedded ledger itself.
FIRST = {"fabric": ("orderer", "orderer2"), "dev": ("ledger", "ledger")}
PEER = "peer0.org2"  # the gateway of member2 and honest2 (org2 users)
MAX_BYTES = 64 << 20


class Experiment:
    """``fedcommittee run`` in the background, its stdout lines collected as they come."""

    def __init__(self, net: LocalNetwork, config: Path, model_id: str) -> None:
        self.started = time.time()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FEDCOMMITTEE, "--home", str(net.home), "run", str(config), "--model-id", model_id],
            env=net.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def running(self) -> bool:
        return self.proc.poll() is None

    def rounds_opened(self) -> int:
        """The highest round this run's progress lines have named so far, in any state (0: none
        yet). Progress is polled, so a quick round may never be printed as open."""
        found = [int(m.group(1)) for ln in self.lines if (m := re.search(r"round (\d+)/\d+ ", ln))]
        return max(found, default=0)

    def wait_for_round(self, rnd: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline and self.running():
            if self.rounds_opened() >= rnd:
                return True
            time.sleep(0.2)
        return False

    def output(self) -> str:
        return "\n".join(self.lines)


def accepted_updates(net: LocalNetwork, model_id: str) -> dict[str, dict]:
    """Accepted updates of every round so far, by id (read through org1's peer, never stopped)."""
    from fedcommittee.ledger import ContractError

    gw, client = ledger(net)
    with gw:
        try:
            model = client.get_model(model_id)
        except ContractError:
            return {}
        out = {}
        for r in range(1, int(model.get("currentRound") or 0) + 1):
            for u in client.iter_round_updates(model_id, r):
                if u["status"] == "accepted":
                    out[u["id"]] = u
        return out


def reverify_objects(
    net: LocalNetwork, model_id: str, accepted: dict[str, dict]
) -> list[tuple[str, str, str]]:
    """Fetch every accepted update and every round aggregate of the model again from IPFS, with its
    recorded sha256 checked; returns (what, cid, sha256) of each object verified."""
    from fedcommittee.storage import ContentStore, IpfsClient

    objects = [(f"update {u['id']}", u["cid"], u["sha256"]) for u in accepted.values()]
    gw, client = ledger(net)
    with gw:
        model = client.get_model(model_id)
        for r in range(1, int(model["currentRound"]) + 1):
            agg = client.get_round(model_id, r).get("aggregate")
            if agg:
                objects.append((f"round {r} aggregate", agg["cid"], agg["sha256"]))
    endpoints = json.loads((net.home / "endpoints.json").read_text())
    with IpfsClient(endpoints["ipfs_api"], timeout=60) as ipfs:
        store = ContentStore(ipfs, pin=False)
        for where, cid, sha in objects:
            data = store.get(cid, sha, MAX_BYTES)
            assert hashlib.sha256(data).hexdigest() == sha, where
    return objects


def audit_nothing_lost(net: LocalNetwork, model_id: str, seen: dict) -> tuple[dict, list, list]:
    """`fedcommittee verify` is clean, every update accepted during a drill (``seen``) is still
    accepted, and every accepted update and round aggregate is on IPFS with the recorded hash.
    Returns (accepted at the end, lost, objects re-verified)."""
    verify = cli(net, "verify", "--model-id", model_id)
    assert verify.returncode == 0 and "0 discrepancies" in verify.stdout, verify.stdout + verify.stderr
    final = accepted_updates(net, model_id)
    lost = [uid for uid in seen if uid not in final]
    assert not lost, lost
    return final, lost, reverify_objects(net, model_id, final)


def agent_crashes(net: LocalNetwork, model_id: str, output: str) -> list[str]:
    """Each agent exit that ``fedcommittee run`` reported (and restarted), with the agent's last error."""
    logs = net.home / "runs" / model_id / "logs"
    crashes = []
    for ln in output.splitlines():
        if "exited with" in ln:
            agent = ln.split()[0]
            text = (logs / f"{agent}.out").read_text(errors="replace").splitlines()
            # The CLI's last word on a fatal error is "fedcommittee: <ErrorType>: ...".
            errors = [t for t in text if t.startswith("fedcommittee: ")] or ["(no error line)"]
            crashes.append(f"{ln.split(' (see ')[0]}: {errors[-1][:300]}")
    return crashes


@pytest.fixture(scope="module")
def fault_network(fabric, tmp_path_factory, request):
    net = LocalNetwork(home=tmp_path_factory.mktemp("fc-faults"))
    try:
        net.up()
        yield net
        if getattr(request.config, "_fc_failed", False):
            print(f"\nnode logs of the fault-drill network:\n{net.log_tails()}")
    except Exception:
        print(net.log_tails())
        raise
    finally:
        net.run("down", check=False)


@pytest.fixture(scope="module")
def drilled_run(fault_network, tmp_path_factory):
    """The experiment with the three drills; returns what the checks need."""
    net = fault_network
    config = small_config(
        tmp_path_factory.mktemp("faults-config") / "small.yaml",
        ("rounds: 2", f"rounds: {ROUNDS}"),
        ("deadline_seconds: 120", f"deadline_seconds: {DEADLINE_SECONDS}"),
        SCORING,
    )
    model_id = f"small-faults-{int(time.time())}"
    exp = Experiment(net, config, model_id)
    drills: list[str] = []
    seen: dict[str, dict] = {}

    def drill(name: str, node: str, down_for: float) -> None:
        if not exp.running():
            return
        t0 = time.time()
        if node == "ledger":  # the harshest fault: no chance to finish anything in flight
            os.kill(net.pids()["ledger"], signal.SIGKILL)
        else:
            net.run("stop", node)
        assert f"{node}: stopped" in net.run("status").stdout
        time.sleep(down_for)
        net.run("start", node)
        assert f"{node}: running" in net.run("status").stdout
        drills.append(f"{name}: {node} down {down_for:.0f} s, back after {time.time() - t0:.1f} s")
        seen.update(accepted_updates(net, model_id))

    try:
        # Each drill starts as a round opens (the providers are training and submitting): the first
        # in round 1, each later one in the first round that opens after the previous drill ended.
        for name, node, down_for in [(*FIRST[backend(net)], 10), ("peer", PEER, 10), ("ipfs", "ipfs", 5)]:
            due = exp.rounds_opened() + 1
            if due < ROUNDS and exp.wait_for_round(due, 300) and exp.rounds_opened() < ROUNDS:
                drill(f"{name} (round {exp.rounds_opened()})", node, down_for)
        exp.proc.wait(timeout=600)
    finally:
        if exp.running():  # SIGINT: `fedcommittee run` stops its agents before it returns
            exp.proc.send_signal(signal.SIGINT)
            try:
                exp.proc.wait(60)
            except subprocess.TimeoutExpired:
                exp.proc.kill()
        exp.reader.join(10)
    return net, model_id, exp, drills, seen


def test_experiment_survives_node_faults(drilled_run):
    net, model_id, exp, drills, seen = drilled_run
    out = exp.output()
    wall = time.time() - exp.started
    assert len(drills) == 3, f"the experiment ended before every drill ran: {drills}\n{out}"
    assert exp.proc.returncode == 0, out[-6000:]
    assert " 0 discrepancies" in out, out[-4000:]
    check_outcome(net, model_id)
    final, lost, objects = audit_nothing_lost(net, model_id, seen)

    assert not net.unsupported_requests(), net.unsupported_requests()
    # The orchestrator's restart budget (run.MAX_RESTARTS) was enough: no agent gave up.
    assert "no restarts left" not in out, out[-4000:]
    logs = net.home / "runs" / model_id / "logs"
    crashes = agent_crashes(net, model_id, out)
    stream_failures = {
        p.stem: n for p in sorted(logs.glob("*.jsonl")) if (n := p.read_text().count('"events_failed"'))
    }

    summary = [
        f"fault drills summary (ledger backend: {backend(net)})",
        *(f"  drill {d}" for d in drills),
        f"  experiment {model_id}: finished, exit {exp.proc.returncode}, {wall:.0f} s",
        f"  accepted updates seen during drills: {len(seen)}; accepted at the end: {len(final)}",
        f"  objects re-verified from IPFS (sha256): {len(objects)}",
        f"  lost: {len(lost)}",
        *(f"  agent crash (restarted by fedcommittee run): {c}" for c in crashes),
        f"  event streams that failed (agents fell back to polling): {stream_failures or 'none'}",
    ]
    print("\n".join(summary))
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "faults-summary.txt").write_text("\n".join(summary) + "\n")
    # Agents wait out an unreachable peer and reconcile on their next pass: none may exit.
    assert not crashes, "\n".join(crashes)


def test_stop_start_name_checks_and_status(fault_network):
    net = fault_network
    first = FIRST[backend(net)][1]
    bad = net.run("stop", "peer0.org9", check=False)
    assert bad.returncode != 0
    assert "unknown node 'peer0.org9'" in bad.stderr and first in bad.stderr and "ipfs" in bad.stderr
    assert net.run("start", check=False).returncode != 0
    # Starting a running node is a no-op; every node is running again after the drills.
    assert "already running" in net.run("start", first).stdout
    assert "already running" in net.run("start", PEER).stdout
    status = net.run("status").stdout
    nodes = {"fabric": ("orderer1", "orderer2", "orderer3", "chaincode.org2"), "dev": ("ledger",)}
    for node in ("ipfs", PEER, *nodes[backend(net)]):
        assert f"{node}: running" in status, status


def backend(net: LocalNetwork) -> str:
    return json.loads((net.home / "endpoints.json").read_text())["fabric"]["backend"]
