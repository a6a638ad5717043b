"""A committee member's reference update, trained on a thread of its own so that it can start before
the round it serves opens.

The reference (the member's own update on its shard, ``ml.reference_delta``) depends only on the
round's global model. A member knows that model as soon as it has computed the closed round's
aggregate itself, which it does to confirm the publisher's candidate, before that candidate is even
recorded. Trained on the member's main thread, the reference could only start after the member had
confirmed (the member cannot confirm while it trains), so it started after the providers' own
training and finished last. On its own thread it starts at once, on CPU that is otherwise idle while
the publisher records and the members confirm, and the main thread stays free to confirm and to
fetch the arriving updates. Scoring then waits for it (``get``).

What it is not: a cache of references across rounds (it keeps the latest job asked for), nor a
source of different results (the same global state gives the same reference on either thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

# (round, sha256 of that round's global model): what a reference is trained for.
Key = tuple[int, str]

# One reference training at a time in a process, whichever member's (members hosted together):
# a training seeds torch's global generator for its dropout masks, which two at once would share.
_ONE_AT_A_TIME = threading.Lock()


class ReferenceWorker:
    """Trains a member's reference on a thread of its own, keyed by the round and global model it is
    for. ``train(global_state)`` returns the reference; ``log`` hears ``reference`` with its seconds.

    Each job runs on a daemon thread: an agent that stops mid-training (its model final, its
    process exiting) is not held up by a reference nobody will use. Jobs train one at a time in
    the process (``_ONE_AT_A_TIME``).
    """

    def __init__(self, train: Callable[[Any], Any], log: Callable[..., None]) -> None:
        self._train = train
        self._log = log
        self._job: tuple[Key, Future] | None = None

    def started_for(self) -> Key | None:
        """The key of the latest job asked for (running or done), if any."""
        return None if self._job is None else self._job[0]

    def start(self, key: Key, global_state: Any) -> Future:
        """Begin training the reference for ``key`` unless that is the latest job already (and did
        not fail: a failed training is tried again, as the member's next pass would have before).
        A job for another key is forgotten (a running one cannot be stopped; it finishes unheard)."""
        kept = None if self._job is None or self._job[0] != key else self._job[1]
        if kept is not None and not (kept.done() and kept.exception() is not None):
            return kept
        job: Future = Future()
        job.set_running_or_notify_cancel()
        threading.Thread(
            target=self._run, args=(key, global_state, job), name=f"reference-{key[0]}", daemon=True
        ).start()
        self._job = (key, job)
        return job

    def get(self, key: Key, global_state: Any) -> Any:
        """The reference for ``key``: the job's result, waited for, started now if it was not (raises
        what the training raised)."""
        return self.start(key, global_state).result()

    def _run(self, key: Key, global_state: Any, job: Future) -> None:
        try:
            with _ONE_AT_A_TIME:
                started = time.perf_counter()
                ref = self._train(global_state)
        except BaseException as exc:  # noqa: BLE001 (handed to whoever waits for the result)
            job.set_exception(exc)
            return
        self._log("reference", round=key[0], seconds=round(time.perf_counter() - started, 3))
        job.set_result(ref)
