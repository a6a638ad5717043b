"""Session-wide real network for integration tests: brought up once, torn down at the end.

Node logs are printed when any integration test failed, and kept under
reports/network-logs/ for inspection. The drill summaries printed at the end of the run come from
the session hooks in tests/conftest.py: pytest loads this file only once collection reaches this
folder, after the session has started.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from fedcommittee.storage import ContentStore, IpfsClient
from tests.integration.network import ROOT, LocalNetwork


def pytest_collection_modifyitems(config, items):
    # Every test under tests/integration is marked, so `-m "not integration"` selects the unit suite.
    here = ROOT / "tests" / "integration"
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.session.config._fc_failed = True


@pytest.fixture(scope="session")
def local_network(tmp_path_factory, request):
    net = LocalNetwork(home=tmp_path_factory.mktemp("fc-network"))
    try:
        endpoints = net.up()
    except Exception:
        sys.stderr.write(net.log_tails())
        net.run("down", check=False)  # stop whatever did start before the failure
        raise
    yield {"network": net, **endpoints}
    if getattr(request.config, "_fc_failed", False):
        kept = ROOT / "reports" / "network-logs"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(net.home / "logs", kept)
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\nnode logs (kept in {kept}):\n{net.log_tails()}\n")
    net.down()


@pytest.fixture(scope="session")
def ipfs_api_url(local_network) -> str:
    return local_network["ipfs_api"]


@pytest.fixture(scope="session")
def store(ipfs_api_url):
    """A hash-verified content store on the session's IPFS node."""
    with IpfsClient(ipfs_api_url) as client:
        yield ContentStore(client)


@pytest.fixture(scope="session")
def fabric(local_network):
    """The Fabric part of the network; skipped, with the precise reason, where it cannot run."""
    state = local_network["fabric"]
    if not state.get("available"):
        pytest.skip(f"Fabric network unavailable on this machine: {state.get('reason')}")
    return state
