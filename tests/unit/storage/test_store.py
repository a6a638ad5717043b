import hashlib

import pytest

from fedcommittee.storage.errors import IntegrityError, InvalidCid, ObjectTooLarge
from fedcommittee.storage.store import ContentStore, StoredObject, sha256_hex

from .fakes import FakeIpfs


@pytest.fixture
def fake():
    return FakeIpfs()


@pytest.fixture
def store(fake):
    return ContentStore(fake)


def test_put_returns_ledger_record(store, fake):
    data = b"weights" * 1000
    obj = store.put(data)
    assert isinstance(obj, StoredObject)
    assert obj.sha256_hex == hashlib.sha256(data).hexdigest()
    assert obj.size == len(data)
    assert obj.cid in fake.pins
    assert store.get(obj.cid, obj.sha256_hex, len(data)) == data
    assert store.get_object(obj) == data


def test_put_unpinned():
    fake = FakeIpfs()
    obj = ContentStore(fake, pin=False).put(b"x")
    assert obj.cid not in fake.pins


def test_tampered_content_is_refused(store, fake):
    obj = store.put(b"honest update")
    fake.blobs[obj.cid] = b"evil update!!"
    with pytest.raises(IntegrityError) as info:
        store.get(obj.cid, obj.sha256_hex, 1000)
    assert info.value.expected_sha256 == obj.sha256_hex
    assert info.value.actual_sha256 == sha256_hex(b"evil update!!")
    assert obj.cid in str(info.value)


def test_truncated_content_is_refused(store, fake):
    obj = store.put(b"0123456789")
    fake.blobs[obj.cid] = b"01234"
    with pytest.raises(IntegrityError):
        store.get(obj.cid, obj.sha256_hex, 1000)


def test_wrong_hash_is_refused(store):
    obj = store.put(b"abc")
    with pytest.raises(IntegrityError):
        store.get(obj.cid, "0" * 64, 10)


def test_wrong_recorded_size_is_refused(store):
    obj = store.put(b"abc")
    with pytest.raises(IntegrityError):
        store.get(obj.cid, obj.sha256_hex, 10, size=4)


def test_oversize_is_refused(store):
    obj = store.put(b"x" * 101)
    with pytest.raises(ObjectTooLarge) as info:
        store.get(obj.cid, obj.sha256_hex, 100)
    assert info.value.limit == 100
    assert store.get(obj.cid, obj.sha256_hex, 101) == b"x" * 101


def test_oversize_refused_even_if_backend_ignores_limit():
    fake = FakeIpfs(honour_limit=False)
    store = ContentStore(fake)
    obj = store.put(b"x" * 101)
    with pytest.raises(ObjectTooLarge):
        store.get(obj.cid, obj.sha256_hex, 100)


def test_recorded_size_over_limit_is_refused_without_fetching(store, fake):
    obj = store.put(b"x" * 50)
    with pytest.raises(ObjectTooLarge):
        store.get(obj.cid, obj.sha256_hex, 10, size=50)
    assert fake.cat_calls == []


@pytest.mark.parametrize("bad", ["ABC", "0" * 63, "0" * 65, "A" * 64, "g" * 64, None])
def test_bad_hash_argument(store, bad):
    obj = store.put(b"abc")
    with pytest.raises(ValueError, match="sha256"):
        store.get(obj.cid, bad, 10)


def test_bad_cid_is_refused_before_fetch(store, fake):
    with pytest.raises(InvalidCid):
        store.get("not-a-cid", "0" * 64, 10)
    assert fake.cat_calls == []


@pytest.mark.parametrize("limit", [-1, 1.5, True])
def test_bad_limit(store, limit):
    obj = store.put(b"abc")
    with pytest.raises(ValueError, match="max_bytes"):
        store.get(obj.cid, obj.sha256_hex, limit)


def test_empty_object(store):
    obj = store.put(b"")
    assert obj.size == 0
    assert store.get(obj.cid, obj.sha256_hex, 0) == b""


def test_put_rejects_non_bytes(store):
    with pytest.raises(TypeError):
        store.put("text")
