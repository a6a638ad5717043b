"""The member's reference worker: one training per (round, global model), on a thread of its own,
one at a time, its result or its error handed to whoever waits."""

import threading

import pytest

from fedcommittee.roles.reference import ReferenceWorker


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[object] = []
        self.threads: list[str] = []
        self.logged: list[tuple[str, dict]] = []
        self.running = 0
        self.most_at_once = 0
        self.gate = gate
        self._lock = threading.Lock()

    def train(self, global_state):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append(global_state)
            self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(5)
        with self._lock:
            self.running -= 1
        if global_state == "bad":
            raise ValueError("shard is empty")
        return f"ref({global_state})"

    def log(self, event, **fields):
        self.logged.append((event, fields))


def test_one_training_per_key_on_its_own_thread():
    rec = Recorder()
    worker = ReferenceWorker(rec.train, rec.log)
    worker.start((2, "aa"), "g2")
    worker.start((2, "aa"), "g2")  # already under way: not trained twice
    assert worker.get((2, "aa"), "g2") == "ref(g2)"
    assert rec.calls == ["g2"] and rec.threads == ["reference-2"]
    assert worker.started_for() == (2, "aa")
    assert [(e, f["round"]) for e, f in rec.logged] == [("reference", 2)]
    assert rec.logged[0][1]["seconds"] >= 0


def test_another_global_model_is_trained_anew():
    rec = Recorder()
    worker = ReferenceWorker(rec.train, rec.log)
    assert worker.get((3, "ours"), "ours") == "ref(ours)"
    # The recorded global differs from the one we computed: its reference, not ours, is returned.
    assert worker.get((3, "theirs"), "theirs") == "ref(theirs)"
    assert rec.calls == ["ours", "theirs"]


def test_jobs_train_one_at_a_time():
    gate = threading.Event()
    rec = Recorder(gate)
    worker = ReferenceWorker(rec.train, rec.log)
    other_member = ReferenceWorker(rec.train, rec.log)  # hosted in the same process
    first = worker.start((4, "a"), "a")
    second = worker.start((4, "b"), "b")  # the first is still training: the second waits its turn
    third = other_member.start((4, "a"), "c")  # and so does another member's
    gate.set()
    assert first.result(5) == "ref(a)" and second.result(5) == "ref(b)" and third.result(5) == "ref(c)"
    assert rec.most_at_once == 1


def test_the_trainings_error_reaches_the_caller():
    rec = Recorder()
    worker = ReferenceWorker(rec.train, rec.log)
    with pytest.raises(ValueError, match="shard is empty"):
        worker.get((5, "x"), "bad")
    assert rec.logged == []  # nothing was trained, nothing logged as a reference
    # The member's next pass asks again: a failed training is tried again, not its error replayed.
    with pytest.raises(ValueError, match="shard is empty"):
        worker.get((5, "x"), "bad")
    assert rec.calls == ["bad", "bad"]
