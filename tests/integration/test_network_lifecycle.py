"""scripts/network.sh on its own state directory and ports: up twice, busy port, down leaves nothing."""

from __future__ import annotations

import os
import socket

import pytest

from tests.integration.network import LocalNetwork, port_listening, process_running


@pytest.fixture
def net(tmp_path):
    network = LocalNetwork(home=tmp_path / "state")
    yield network
    network.run("down", check=False)


def test_up_is_idempotent_and_down_leaves_no_process_or_port(net):
    endpoints = net.up()
    assert endpoints["ipfs_api"] == f"http://127.0.0.1:{net.ports['FC_IPFS_API_PORT']}"
    pids = net.pids()
    assert "ipfs" in pids
    backend = endpoints["fabric"]["backend"]
    if backend == "fabric":
        expected = {"orderer1", "orderer2", "orderer3"} | {f"peer0.org{n}" for n in (1, 2, 3)}
        expected |= {f"chaincode.org{n}" for n in (1, 2, 3)}
    else:  # the embedded ledger: one process serves every org's gateway
        expected = {"ledger"}
    assert expected <= set(pids), f"missing {backend} processes: {expected - set(pids)}"

    second = net.run("up")
    assert "already running" in second.stdout
    assert net.pids() == pids, "a second `up` must not start another daemon"

    status = net.run("status").stdout
    assert f"ipfs: running (pid {pids['ipfs']}" in status

    net.down()
    for name, pid in pids.items():
        assert not process_running(pid), f"{name} (pid {pid}) is still running after down"
    for port in net.all_ports():
        assert not port_listening(port), f"port {port} still listening after down"
    assert not net.home.exists(), "down must remove the network state"
    assert "ipfs: stopped" in net.run("status").stdout


def test_busy_port_gives_a_clear_error_and_starts_nothing(net):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", net.ports["FC_IPFS_API_PORT"]))
        blocker.listen()
        proc = net.run("up", check=False)
    assert proc.returncode != 0
    assert f"port {net.ports['FC_IPFS_API_PORT']} (FC_IPFS_API_PORT) is already in use" in proc.stderr
    assert net.pids() == {}


def test_down_never_signals_a_process_it_did_not_start(net, tmp_path):
    # A PID file pointing at a foreign process (this test runner) must be ignored, not killed.
    pid_dir = net.home / "pids"
    pid_dir.mkdir(parents=True)
    (pid_dir / "ipfs.pid").write_text(str(os.getpid()))
    (pid_dir / "ipfs.exe").write_text("/nonexistent/ipfs")
    net.down()
    assert process_running(os.getpid())
