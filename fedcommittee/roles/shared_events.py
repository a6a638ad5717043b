"""One chaincode event stream per peer and model for all the agents a process hosts.

An agent only needs events as wake-ups (agents are level-triggered, see ``runtime``). With one
stream per agent, 200 providers in a process held 200 streams that each brought, and decoded,
every event of the channel, and the peer read every block once per stream: at 1,000 agents that
is a million event deliveries for 1,000 updates. Here one :class:`~.runtime.EventPump` per
(peer, model) decodes each event once and hands the model's payloads to every hosted agent's
:class:`Feed`; an agent still wakes on any event of its model, as before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from fedcommittee.roles.runtime import EventPump, drain

__all__ = ["Feed", "SharedEvents", "feed_for"]


class Feed:
    """An agent's view of a :class:`SharedEvents`: what ``Agent.events`` expects (start, wait,
    close). Payloads arrive in batches, one batch per wake-up of the shared pump."""

    def __init__(self, source: SharedEvents) -> None:
        self._source = source
        self._batches: queue.Queue[list[dict]] = queue.Queue()

    def start(self) -> None:
        self._source.subscribe(self)

    def deliver(self, payloads: list[dict]) -> None:
        self._batches.put(payloads)

    def wait(self, timeout: float, model_id: str) -> list[dict]:
        """Block until the model's events arrive (or ``timeout``); all payloads queued by then.
        ``model_id`` is the shared pump's model already (the pump filtered by it)."""
        return [payload for batch in drain(self._batches, timeout) for payload in batch]

    def close(self) -> None:
        self._source.unsubscribe(self)


class SharedEvents:
    """One pump, fanned out to the feeds subscribed to it. The pump starts with the first
    subscriber and closes with the last; ``on_closed`` then forgets this instance."""

    def __init__(self, pump: EventPump, model_id: str, on_closed: Callable[[], None]) -> None:
        self._pump, self._model_id, self._on_closed = pump, model_id, on_closed
        self._lock = threading.Lock()
        self._feeds: set[Feed] = set()
        self._started = False
        self._stop = threading.Event()

    def subscribe(self, feed: Feed) -> None:
        with self._lock:
            self._feeds.add(feed)
            start, self._started = not self._started, True
        if start:
            self._pump.start()
            threading.Thread(target=self._fan_out, name=f"events-{self._model_id}", daemon=True).start()

    def unsubscribe(self, feed: Feed) -> None:
        with self._lock:
            self._feeds.discard(feed)
            last = not self._feeds
        if last:
            self._on_closed()
            self._stop.set()
            self._pump.close()

    def _fan_out(self) -> None:
        while not self._stop.is_set():
            payloads = self._pump.wait(1.0, self._model_id)
            if not payloads:
                continue
            with self._lock:
                feeds = list(self._feeds)
            for feed in feeds:
                feed.deliver(payloads)


_LOCK = threading.Lock()
_SHARED: dict[tuple[str, str], SharedEvents] = {}


def feed_for(endpoint: str, model_id: str, make_pump: Callable[[], EventPump]) -> Feed:
    """A feed of ``model_id``'s events from the peer at ``endpoint``: the process's shared pump for
    them, made with ``make_pump`` (the first agent's gateway and checkpoint) if there is none."""
    key = (endpoint, model_id)

    def forget() -> None:
        with _LOCK:
            if _SHARED.get(key) is shared:
                del _SHARED[key]

    with _LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = SharedEvents(make_pump(), model_id, forget)
    return Feed(shared)
