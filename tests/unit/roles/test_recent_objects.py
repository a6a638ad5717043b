"""A member's second read of an object (checking the aggregate after scoring) comes from memory."""

from __future__ import annotations

from fedcommittee import ml
from fedcommittee.roles.reader import Reader, RecentObjects
from tests.privacy import memory_store

MODEL = "mlp"


def test_a_second_read_is_served_from_memory_and_not_logged_as_an_ipfs_get():
    store = memory_store()
    obj = store.put(ml.dumps(ml.initial_state(MODEL, 1)))
    gets: list[int] = []
    recent = RecentObjects()
    reader = Reader(None, store, MODEL, on_io=lambda op, size, s: gets.append(size), recent=recent)
    first = reader.fetch_weights(obj.cid, obj.sha256_hex)
    second = reader.fetch_weights(obj.cid, obj.sha256_hex)
    assert len(gets) == 1
    assert first is not second and all((first[k] == second[k]).all() for k in first)  # own copies
    # Without it, every read goes to IPFS.
    Reader(None, store, MODEL, on_io=lambda op, size, s: gets.append(size)).fetch(obj.cid, obj.sha256_hex)
    assert len(gets) == 2


def test_the_oldest_objects_leave_once_the_budget_is_spent():
    recent = RecentObjects(budget=10)
    recent.put(("a", "1"), b"xxxx")
    recent.put(("b", "2"), b"yyyy")
    assert recent.get(("a", "1")) == b"xxxx"  # a is now the newest read
    recent.put(("c", "3"), b"zzzz")
    assert recent.get(("b", "2")) is None and recent.get(("a", "1")) == b"xxxx"
    assert recent.size == 8
    recent.put(("d", "4"), b"w" * 11)  # larger than the whole budget: not kept
    assert recent.get(("d", "4")) is None and recent.size == 8
