"""The smoke path of the main job, run as users run it: the `fedcommittee smoke` command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FEDCOMMITTEE = [str(Path(sys.executable).parent / "fedcommittee")]


def smoke(local_network):
    net = local_network["network"]
    return net.run_command([*FEDCOMMITTEE, "--home", str(net.home), "smoke"], check=False)


def test_ipfs_round_trip_through_the_cli(local_network):
    proc = smoke(local_network)
    assert "[ok  ] ipfs round trip" in proc.stdout, proc.stdout + proc.stderr
    if not local_network["fabric"]["available"]:
        assert proc.returncode == 3, "without Fabric the smoke run must say it is incomplete"
        assert "ledger:" in proc.stderr


def test_fabric_submit_commit_and_read_back(local_network, fabric):
    first = smoke(local_network)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[ok  ] ledger submit + read back" in first.stdout
    backend = local_network["fabric"]["backend"]
    assert {"fabric": "ledger backend: Hyperledger Fabric", "dev": "ledger backend: embedded ledger"}[
        backend
    ] in first.stdout
    # A second run flips the role back: both directions of the write were committed and read.
    second = smoke(local_network)
    assert second.returncode == 0, second.stdout + second.stderr
    flipped = {"GrantRole" in first.stdout, "GrantRole" in second.stdout}
    assert flipped == {True, False}


@pytest.mark.parametrize("args", [["smoke"]])
def test_cli_without_a_network_says_how_to_start_one(tmp_path, args):
    import subprocess

    proc = subprocess.run(
        [*FEDCOMMITTEE, "--home", str(tmp_path / "none"), *args], capture_output=True, text=True
    )
    assert proc.returncode == 3
    assert "scripts/network.sh up" in proc.stderr
