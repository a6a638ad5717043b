"""Storage layer against the REAL local Kubo node (fixture ``ipfs_api_url`` from conftest.py)."""

import base64
import hashlib
import os
import socket
import time

import pytest

from fedcommittee.storage import envelope
from fedcommittee.storage.errors import (
    IntegrityError,
    IpfsError,
    IpfsUnavailable,
    ObjectTooLarge,
)
from fedcommittee.storage.ipfs import IpfsClient, validate_cid
from fedcommittee.storage.store import ContentStore, sha256_hex

pytestmark = pytest.mark.integration


@pytest.fixture
def ipfs(ipfs_api_url):
    with IpfsClient(ipfs_api_url, timeout=30) as client:
        yield client


def test_node_answers(ipfs):
    assert ipfs.version()["Version"]
    assert ipfs.id()["ID"]


def test_add_cat_round_trip(ipfs):
    small = os.urandom(1000)
    cid = ipfs.add(small)
    assert cid.startswith("bafk")  # one raw block, CIDv1
    assert ipfs.cat(cid, len(small)) == small

    big = os.urandom(3 * 1024 * 1024 + 17)  # several 256 KiB chunks: a dag-pb root
    cid_big = ipfs.add(big)
    assert cid_big.startswith("bafy")
    validate_cid(cid_big)
    assert ipfs.cat(cid_big, len(big)) == big
    assert ipfs.add(big) == cid_big  # content addressing: same bytes, same CID


def test_pin_and_unpin(ipfs):
    cid = ipfs.add(os.urandom(4096), pin=False)
    assert not ipfs.is_pinned(cid)
    ipfs.pin(cid)
    assert ipfs.is_pinned(cid)
    ipfs.unpin(cid)
    assert not ipfs.is_pinned(cid)
    with pytest.raises(IpfsError, match="not pinned"):
        ipfs.unpin(cid)
    cid2 = ipfs.add(os.urandom(4096))  # pinned by default
    assert ipfs.is_pinned(cid2)


def _raw_cid(data: bytes) -> str:
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


def test_missing_object_error_is_surfaced(ipfs):
    # A valid CID of random bytes this private node has never seen: Kubo's own message comes back
    # (no garbage collection here, so other tests sharing the node are not disturbed).
    cid = validate_cid(_raw_cid(os.urandom(32)))
    with IpfsClient(ipfs.api_url, timeout=5) as quick:
        try:
            quick.cat(cid, 1000)
        except IpfsUnavailable:
            pytest.skip("node is online and searches the network for missing blocks")
        except IpfsError as exc:
            assert exc.message and exc.status == 500
            assert "not found" in exc.message
        else:
            pytest.fail("a never-added block was served")


def test_content_store_put_get(ipfs):
    store = ContentStore(ipfs)
    data = os.urandom(2 * 1024 * 1024)
    obj = store.put(data)
    assert obj.sha256_hex == sha256_hex(data) and obj.size == len(data)
    assert ipfs.is_pinned(obj.cid)
    assert store.get(obj.cid, obj.sha256_hex, len(data)) == data
    assert store.get_object(obj) == data


def test_wrong_sha256_is_refused(ipfs):
    store = ContentStore(ipfs)
    a = store.put(b"update from provider A " + os.urandom(16))
    b = store.put(b"update from provider B " + os.urandom(16))
    with pytest.raises(IntegrityError):
        store.get(a.cid, b.sha256_hex, 1000)  # the ledger says B's hash, IPFS serves A
    with pytest.raises(IntegrityError):
        store.get(a.cid, "f" * 64, 1000)


def test_over_limit_cat_is_refused(ipfs):
    data = os.urandom(5 * 1024 * 1024)
    cid = ipfs.add(data)
    with pytest.raises(ObjectTooLarge) as info:
        ipfs.cat(cid, 1024)
    assert info.value.limit == 1024
    store = ContentStore(ipfs)
    with pytest.raises(ObjectTooLarge):
        store.get(cid, sha256_hex(data), len(data) - 1)
    assert store.get(cid, sha256_hex(data), len(data)) == data


def test_unreachable_api_fails_clearly_within_timeout():
    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    timeout = 3.0
    start = time.monotonic()
    with pytest.raises(IpfsUnavailable) as info:
        IpfsClient(url, timeout=timeout).add(b"x")
    elapsed = time.monotonic() - start
    assert elapsed < timeout + 1.0
    assert url in str(info.value) and "unreachable" in str(info.value)


def test_sealed_shard_through_ipfs(ipfs):
    """End to end: seal a shard to a committee, store it, fetch verified, open as each member."""
    committee = [envelope.generate_keypair() for _ in range(3)] + [envelope.generate_keypair("p256")]
    registered = [envelope.public_key_to_pem(pub) for _, pub in committee]
    shard = os.urandom(256 * 1024)
    ctx = "fedcommittee/shard/model-int"
    blob = envelope.seal_for_registered(shard, registered, ctx)
    store = ContentStore(ipfs)
    obj = store.put(blob)
    fetched = store.get(obj.cid, obj.sha256_hex, obj.size)
    envelope.check_recipients(fetched, registered)
    for priv, _ in committee:
        assert envelope.open(fetched, priv, ctx) == shard
