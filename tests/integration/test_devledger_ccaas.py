"""The embedded ledger with its chaincode as a service: the binary that runs on Fabric, one process
per org (FC_DEVLEDGER_CHAINCODE=ccaas), dialled through the shim protocol; an org's chaincode
stopped and started again is redialled. Only the embedded ledger has this mode (on Fabric the
chaincode always runs as a service), so the test skips where this run's ledger is Fabric."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integration.network import LocalNetwork

FEDCOMMITTEE = str(Path(sys.executable).parent / "fedcommittee")


@pytest.fixture
def ccaas_network(local_network, tmp_path):
    if local_network["fabric"].get("backend") != "dev":
        pytest.skip("chaincode-as-a-service mode of the embedded ledger: this run's ledger is Fabric")
    env = {"FC_LEDGER": "dev", "FC_DEVLEDGER_CHAINCODE": "ccaas"}
    net = LocalNetwork(home=tmp_path / "state", extra_env=env)
    try:
        net.up()
    except Exception:
        net.run("down", check=False)  # stop whatever did start before the failure
        raise
    yield net
    net.down()


def smoke(net: LocalNetwork):
    return net.run_command([FEDCOMMITTEE, "--home", str(net.home), "smoke"], check=False)


def test_chaincode_as_a_service_serves_and_is_redialled(ccaas_network):
    net = ccaas_network
    status = net.run("status").stdout
    for n in (1, 2, 3):
        assert f"chaincode.org{n}: running" in status, status
    first = smoke(net)
    assert first.returncode == 0, first.stdout + first.stderr

    net.run("stop", "chaincode.org1")
    down = smoke(net)  # org1's gateway simulates on org1's chaincode first: it is gone
    assert down.returncode != 0
    assert "chaincode fedcommittee at 127.0.0.1:" in down.stderr and "unavailable" in down.stderr, down.stderr

    net.run("start", "chaincode.org1")
    again = smoke(net)
    assert again.returncode == 0, again.stdout + again.stderr
    flipped = {"GrantRole" in first.stdout, "GrantRole" in again.stdout}
    assert flipped == {True, False}, "both writes committed and read back"
