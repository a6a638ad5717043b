from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fabric_protos.gateway import gateway_pb2

from fedcommittee.ledger import (
    Checkpoint,
    ConnectionProfile,
    ErrorDetail,
    Gateway,
    ProfileError,
    load_profile,
)
from fedcommittee.ledger._status import encode_status, error_details
from fedcommittee.ledger.errors import chaincode_message

from .conftest import FAST_TIMEOUTS
from .fake_gateway import FakeServer

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "configs" / "connection-local.yaml"


# ------------------------------------------------------------------ profiles
def test_example_profile_loads(monkeypatch):
    monkeypatch.delenv("FEDCOMMITTEE_NETWORK_DIR", raising=False)
    p = load_profile(EXAMPLE)
    assert (p.channel, p.chaincode) == ("fedchannel", "fedcommittee")
    assert [(x.msp_id, x.endpoint) for x in p.peers.values()] == [
        ("Org1MSP", "127.0.0.1:7400"),
        ("Org2MSP", "127.0.0.1:7500"),
        ("Org3MSP", "127.0.0.1:7600"),
    ]
    state = (REPO / ".fedcommittee" / "fabric").resolve()
    assert p.state_dir == state
    peer = p.peer(msp_id="Org2MSP")
    assert peer.name == "peer0.org2.fc.local"
    assert peer.server_name_override is None
    assert (
        peer.tls_ca_file
        == state / "crypto/peerOrganizations/org2.fc.local/tlsca/tlsca.org2.fc.local-cert.pem"
    )
    ident = p.identity("org3-user1")
    assert ident.msp_dir == state / "crypto/peerOrganizations/org3.fc.local/users/User1@org3.fc.local/msp"
    assert ident.msp_id == "Org3MSP"
    assert p.identity().name == "org1-admin"


def test_profile_written_by_network_scripts_loads(tmp_path):
    # The scripts run fedcommittee/layout.py as a file with the system Python: do the same.
    fab = tmp_path / "fabric"
    crypto_config = REPO / "network" / "fabric" / "crypto-config.yaml"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "fedcommittee" / "layout.py"),
            "profile",
            str(fab),
            "7000",
            str(crypto_config),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tmp_path / "connection.yaml"
    path.write_text(out)
    p = load_profile(path)
    assert p.channel == "fedchannel"
    assert p.peer(msp_id="Org3MSP").endpoint == "127.0.0.1:7600"
    assert p.identity("org2-user1").msp_dir.is_relative_to(fab.resolve())
    # every client user cryptogen is asked for (`Users: {Count: N}` per org) is in the profile
    counts = [int(n) for n in re.findall(r"Users: \{Count: (\d+)\}", crypto_config.read_text())]
    assert len(counts) == 3
    for org, count in enumerate(counts, start=1):
        users = {k for k in p.identities if k.startswith(f"org{org}-user")}
        assert users == {f"org{org}-user{i}" for i in range(1, count + 1)}
    # the checked-in example names the same peers and identities as the generated profile
    example = load_profile(EXAMPLE, state_dir=fab)
    assert {k: (v.msp_id, v.endpoint, v.tls_ca_file) for k, v in example.peers.items()} == {
        k: (v.msp_id, v.endpoint, v.tls_ca_file) for k, v in p.peers.items()
    }
    for name, ident in example.identities.items():
        assert p.identities[name] == ident


def test_state_dir_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDCOMMITTEE_NETWORK_DIR", str(tmp_path / "env"))
    assert load_profile(EXAMPLE).state_dir == (tmp_path / "env").resolve()
    assert load_profile(EXAMPLE, state_dir=tmp_path / "arg").state_dir == (tmp_path / "arg").resolve()


def _base():
    return {
        "channel": "ch",
        "chaincode": "cc",
        "peers": {"p0": {"msp_id": "Org1MSP", "endpoint": "localhost:7051"}},
        "identities": {"u": {"msp_id": "Org1MSP", "msp_dir": "/abs/msp"}},
    }


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d.pop("channel"), "channel"),
        (lambda d: d.update(chaincode=""), "chaincode"),
        (lambda d: d.update(peers={}), "peers"),
        (lambda d: d["peers"]["p0"].update(endpoint="localhost"), "peers.p0.endpoint"),
        (lambda d: d["peers"]["p0"].update(endpoint="h:99999"), "peers.p0.endpoint"),
        (lambda d: d["peers"]["p0"].pop("msp_id"), "peers.p0.msp_id"),
        (lambda d: d["peers"]["p0"].update(tls_ca=1), "peers.p0.tls_ca"),
        (lambda d: d["identities"]["u"].pop("msp_dir"), "identities.u.msp_dir"),
        (lambda d: d.update(chanel="typo"), "chanel"),
        (lambda d: d.update(identities=[1]), "identities"),
    ],
)
def test_validation_names_the_bad_key(mutate, key):
    d = _base()
    mutate(d)
    with pytest.raises(ProfileError) as info:
        ConnectionProfile.from_dict(d, source="t.yaml")
    assert info.value.key == key
    assert f"t.yaml: {key}:" in str(info.value)


def test_unknown_names(tmp_path):
    p = ConnectionProfile.from_dict(_base())
    with pytest.raises(KeyError, match="no peer named 'x'"):
        p.peer("x")
    with pytest.raises(KeyError, match="no identity named 'x'"):
        p.identity("x")


def test_bad_yaml(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("peers: [unclosed")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(f)


def test_connect_from_profile_over_tls(fake, org, tmp_path):
    srv = FakeServer(fake, tls=org.tls_server)
    try:
        (tmp_path / "tlsca.pem").write_bytes(org.tls_ca_pem)
        profile = tmp_path / "profile.yaml"
        profile.write_text(
            f"""
channel: fedchannel
chaincode: fedcommittee
peers:
  peer0.org1.example.com:
    msp_id: Org1MSP
    endpoint: {srv.endpoint}
    tls_ca_file: tlsca.pem
    server_name_override: peer0.org1.example.com
identities:
  org1-user1:
    msp_id: Org1MSP
    msp_dir: {org.msp_dir}
"""
        )
        with Gateway.connect(profile, user="org1-user1", timeouts=FAST_TIMEOUTS) as gw:
            contract = gw.network().contract()  # channel and chaincode from the profile
            assert contract.submit("Put", "m", b"w") == b"w"
            assert contract.evaluate("WhoAmI") == b"Org1MSP"
    finally:
        srv.stop()


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_persists_and_reloads(tmp_path):
    path = tmp_path / "sub" / "cp.json"
    cp = Checkpoint(path)
    assert cp.position() == (None, "")
    cp.save(5, "tx5")
    assert json.loads(path.read_text()) == {"block_number": 5, "txid": "tx5"}
    assert Checkpoint(path).position() == (5, "tx5")
    cp.checkpoint_block(5)
    assert Checkpoint(path).position() == (6, "")
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"]  # no temporary files left


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "cp.json"
    cp = Checkpoint(path)
    cp.save(3, "a")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        cp.save(4, "b")
    assert Checkpoint(path).position() == (3, "a")  # old content intact
    assert cp.position() == (3, "a")  # in-memory state not advanced either
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]


def test_checkpoint_in_memory_and_corrupt(tmp_path):
    cp = Checkpoint()
    cp.save(1, "x")
    assert cp.position() == (1, "x")
    with pytest.raises(ValueError):
        cp.save(-1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"block_number": "seven"}')
    with pytest.raises(ValueError, match="corrupt"):
        Checkpoint(bad)


def test_checkpoint_every_writes_at_most_that_often_and_flush_catches_up(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("fedcommittee.ledger.checkpoint.time.monotonic", lambda: clock[0])
    path = tmp_path / "cp.json"
    cp = Checkpoint(path, every=1.0)
    cp.save(3, "a")  # the first save is written at once
    assert Checkpoint(path).position() == (3, "a")
    clock[0] += 0.4
    cp.save(4, "b")
    cp.save(5, "c")
    assert cp.position() == (5, "c")  # in memory at once
    assert Checkpoint(path).position() == (3, "a")  # the file within the second: unchanged
    clock[0] += 0.7
    cp.save(6, "d")  # a second after the last write
    assert Checkpoint(path).position() == (6, "d")
    clock[0] += 0.1
    cp.save(7, "")
    cp.flush()  # the stream's close: the last position reaches the file
    assert Checkpoint(path).position() == (7, "")
    mtime = path.stat().st_mtime_ns
    cp.flush()  # nothing new: not written again
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="every"):
        Checkpoint(path, every=-1)


# ------------------------------------------------------------------ status details
class _FakeRpcError(grpc.RpcError):
    def __init__(self, trailers):
        self._trailers = trailers

    def trailing_metadata(self):
        return self._trailers


def test_error_details_parsing_is_robust():
    good = encode_status(
        grpc.StatusCode.ABORTED,
        "m",
        [gateway_pb2.ErrorDetail(address="a:1", msp_id="Org2MSP", message="chaincode response 500, no")],
    )
    assert error_details(_FakeRpcError((("grpc-status-details-bin", good),))) == (
        ErrorDetail("a:1", "Org2MSP", "chaincode response 500, no"),
    )
    assert error_details(_FakeRpcError((("grpc-status-details-bin", b"\xff\xff garbage"),))) == ()
    assert error_details(_FakeRpcError(None)) == ()
    assert chaincode_message(["nothing here", "chaincode response 403, not a committee member"]) == (
        403,
        "not a committee member",
    )
    assert chaincode_message(["plain failure"]) is None
