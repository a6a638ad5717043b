"""The agent runtime every role runs on: an :class:`Agent` (its ledger client, content store, identity
and log, all injected), the JSON-lines log, the chaincode event pump, the idempotent retrying submit,
the runtime every role's logic calls (``driver`` runs the roles on it).

Agents are *level-triggered*: a chaincode event only wakes an agent up; it then reads the ledger state
and does whatever is still missing for it (and nothing that is already on the ledger). A restarted
agent therefore just reconciles and carries on; an event seen twice or missed costs nothing.

``driver.connect_agent`` builds an Agent from a network's endpoints (Fabric gateway, IPFS); a test
builds one from fakes with the constructor.
"""

from __future__ import annotations

import functools
import json
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcommittee.experiment import Experiment
from fedcommittee.ledger import (
    Checkpoint,
    CommitError,
    ContractError,
    FedcommitteeClient,
    Gateway,
    GatewayError,
    NotFound,
    transaction_of,
)
from fedcommittee.ledger.errors import CONFLICT_CODES
from fedcommittee.ledger.records import AggregateCandidate, Model, Round
from fedcommittee.logs import expected_race
from fedcommittee.policy import Policy
from fedcommittee.roles.reader import Reader, RecentObjects
from fedcommittee.storage import ContentStore, IpfsUnavailable

__all__ = [
    "Agent",
    "AgentStopped",
    "EventPump",
    "JsonLog",
    "run_dir",
]

RETRY_CODES = CONFLICT_CODES | {"ENDORSEMENT_POLICY_FAILURE"}

# What a role's step may fail on and still be retried by the next pass: any ledger error (the
# ledger moved on, or the gateway peer is unreachable) and an unreachable IPFS API. Integrity
# errors are not here: a wrong hash is never retried into acceptance.
STEP_RETRYABLE = (GatewayError, IpfsUnavailable)


def conflict_backoff(attempt: int) -> float:
    """Seconds to wait before retrying a transaction that lost an MVCC race.

    The winner is already committed when we learn of the conflict, so the first retry can go almost
    at once: the common case is two members' verdicts on one update in the same block, and that wait
    sits on the round's critical path. It doubles after each further loss, and is jittered so that
    agents that collided do not collide again on the same schedule.
    """
    return min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.5)


def lag_backoff(attempt: int) -> float:
    """Seconds to wait before retrying a transaction an endorsing peer refused for a record our own
    peer already has: that peer is blocks behind (seen on Fabric with 1,000 providers, where commits
    took 7 s), so the waits are longer than a conflict's: 0.5, 1, 2, 4, then 8 s."""
    return min(0.5 * 2**attempt, 8.0)


class AgentStopped(Exception):
    """The model reached a final state (or the agent was asked to stop)."""


def run_dir(home: Path, model_id: str) -> Path:
    """Where a run keeps agent state and logs: ``$FC_HOME/runs/<model id>``."""
    return home / "runs" / model_id


class JsonLog:
    """One JSON object per line: ``{"ts", "agent", "role", "event", ...}``; also a short line on stderr.

    A warning that ``logs.expected_race`` recognizes (an MVCC conflict that will be retried, a verdict
    that came after quorum, a replay the contract refused) is written at info with a ``race`` field and
    the round, and counted: each round's counts go out as one ``races`` record when the agent moves on
    to the next round (``set_round``) and at ``close``. Warnings are left for what needs a person.
    """

    def __init__(self, path: Path | None, agent: str, role: str, echo: bool = True) -> None:
        self.agent, self.role, self.echo = agent, role, echo
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the agent)
        self._lock = threading.Lock()
        self.round: int | None = None  # the round the agent works on (Agent.model sets it)
        self._races: dict[str, int] = {}

    def set_round(self, round_no: int) -> None:
        """The agent now works on ``round_no``: the previous round's race counts are final."""
        if round_no != self.round:
            self.flush_races()
            self.round = round_no

    def flush_races(self) -> None:
        if not self._races:
            return
        counts, self._races = self._races, {}
        self("races", round=self.round, total=sum(counts.values()), **dict(sorted(counts.items())))

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        race = expected_race(event, fields) if level == "warning" else None
        if race is not None:
            level = "info"
            fields = {"race": race, **fields}
            if "round" not in fields and self.round is not None:
                fields["round"] = self.round
            self._races[race] = self._races.get(race, 0) + 1
        rec = {"ts": round(time.time(), 3), "agent": self.agent, "role": self.role, "event": event}
        if level != "info":
            rec["level"] = level
        rec.update(fields)
        line = json.dumps(rec, default=str, separators=(",", ":"))
        with self._lock:
            if self._fh is not None:
                self._fh.write(line + "\n")
            if self.echo:
                detail = " ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, (dict, list)))
                print(f"[{self.agent}] {event} {detail}"[:300], file=sys.stderr, flush=True)

    def close(self) -> None:
        self.flush_races()
        if self._fh is not None:
            self._fh.close()


def drain(q: queue.Queue, timeout: float) -> list:
    """The items of ``q``: blocks until the first arrives (or ``timeout``), then takes what is queued."""
    out = []
    try:
        out.append(q.get(timeout=timeout))
        while True:
            out.append(q.get_nowait())
    except queue.Empty:
        pass
    return out


# How often at most an agent process writes its event stream's position (Checkpoint ``every``).
CHECKPOINT_EVERY_SECONDS = 1.0


class EventPump:
    """Chaincode events pumped into a queue from a thread (checkpointed, so a restart resumes).
    The pump owns ``gateway`` and closes it: a pump shared by hosted agents must not run on one
    agent's gateway, or that agent stopping would end the stream the others wake on."""

    def __init__(self, gateway: Gateway, checkpoint: Path, name: str, log: JsonLog) -> None:
        self._gateway, self._checkpoint, self._name, self._log = gateway, checkpoint, name, log
        self._events: queue.Queue = queue.Queue()
        self._stream = None
        self._stop = threading.Event()

    def start(self) -> None:
        # An event only wakes the agents up (they read the ledger's state): the position is written
        # at most once a second, and a restart may see the last second's events again. A first start
        # begins at the next commit, not at block 0: the agents' first pass reads the state that
        # older events announced, and replaying a long-lived channel's history (every model's
        # events) held up each agent's start more with every run on the network.
        self._position = Checkpoint(self._checkpoint, every=CHECKPOINT_EVERY_SECONDS)
        self._stream = self._gateway.network().chaincode_events(checkpoint=self._position)

        def pump() -> None:
            try:
                for ev in self._stream:
                    self._events.put(ev)
            except Exception as exc:  # noqa: BLE001 (reported, and the main loop keeps polling)
                if not self._stop.is_set():
                    self._log("events_failed", level="warning", error=f"{type(exc).__name__}: {exc}")

        threading.Thread(target=pump, name=f"{self._name}-events", daemon=True).start()

    def wait(self, timeout: float, model_id: str) -> list[dict]:
        """Block until an event arrives (or ``timeout``); the payloads of all queued ones for our model."""
        payloads = []
        for ev in drain(self._events, timeout):
            try:
                p = json.loads(ev.payload) if ev.payload else {}
            except ValueError:
                continue
            if p.get("modelId") in (None, model_id):
                payloads.append(p)
        return payloads

    def close(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.close()
            self._position.flush()
        self._gateway.close()


@dataclass
class Agent:
    """What one agent works with: the experiment, its ledger client and content store, its identity
    key (``me``) and private key, its log. ``role`` is for logs only. ``profile`` (the connection
    profile) has the consortium's certificates, for sealing updates; ``events`` wakes the agent up
    (without one it polls every ``poll_seconds``)."""

    exp: Experiment
    name: str
    role: str
    client: FedcommitteeClient
    store: ContentStore
    me: str
    log: JsonLog
    private_key: Any = field(default=None, repr=False)
    profile: Any = None
    events: EventPump | None = None
    poll_seconds: float = 3.0
    current_round: int = 0  # the model's round at the last model() read; tags ledger and IPFS records
    closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    recent: RecentObjects | None = field(default=None, repr=False)  # objects read, served again
    # The current round and a closed round's candidate aggregates, as read with the model by the
    # last model() call: each served once, by round() and aggregates().
    _round_read: Round | None = field(default=None, repr=False)
    _aggregates_read: tuple[int, list[AggregateCandidate]] | None = field(default=None, repr=False)

    @property
    def model_id(self) -> str:
        return self.exp.model_id

    @functools.cached_property
    def policy(self) -> Policy:
        """The protocol policy, one per agent: a stateful aggregation keeps its state there."""
        return Policy.from_experiment(self.exp)

    # ------------------------------------------------------------------ lifecycle
    def start_events(self) -> None:
        if self.events is not None:
            self.events.start()

    def wait(
        self, timeout: float | None = None, wakes_on: Callable[[dict], bool] | None = None
    ) -> list[dict]:
        """Until an event for our model arrives that ``wakes_on`` (default: any) says is worth a pass,
        or ``timeout`` (default ``poll_seconds``) passes. Returns the events that arrived."""
        seconds = self.poll_seconds if timeout is None else timeout
        if self.events is None:
            time.sleep(seconds)
            return []
        until = time.monotonic() + seconds
        while True:
            payloads = self.events.wait(max(0.0, until - time.monotonic()), self.model_id)
            if not payloads or wakes_on is None or any(wakes_on(p) for p in payloads):
                return payloads
            if time.monotonic() >= until:
                return []

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
        for close in self.closers:
            close()
        self.log("stop")
        self.log.close()

    # ------------------------------------------------------------------ ledger
    def model(self, outage_seconds: float = 300.0) -> Model | None:
        """The model record, or None before it is published.

        Waits out a gateway peer that is unreachable (restarting, briefly down) for up to
        ``outage_seconds``: an agent should outlive its peer's outage, not exit on it.
        """
        deadline = time.monotonic() + outage_seconds
        while True:
            try:
                # One query: every pass reads the model and then, mostly, its round (and a closed
                # round's aggregates); on Fabric each query is a chaincode run on the peer.
                state = self.client.get_model_state(self.model_id)
                model, self._round_read = state.model, state.round
                self._aggregates_read = None
                if state.round is not None and state.aggregates is not None:
                    self._aggregates_read = (int(state.round["number"]), state.aggregates)
                # What this pass works on: its ledger and IPFS records are tagged with it (report).
                self.current_round = int(model.get("currentRound") or 0)
                self.log.set_round(self.current_round)
                return model
            except NotFound:
                return None
            except ContractError:
                raise
            except GatewayError as exc:
                if time.monotonic() > deadline:
                    raise
                self.log("ledger_unreachable", level="warning", error=str(exc)[:200])
                time.sleep(2.0)

    def round(self, r: int) -> Round:
        """Round ``r``: as read with the model at this pass's start when that was round ``r``, else
        read now. The record read with the model serves one call, so a second call in the same pass
        (after a transaction, say) reads the ledger again."""
        rd, self._round_read = self._round_read, None
        if rd is not None and int(rd["number"]) == r:
            return rd
        return self.client.get_round(self.model_id, r)

    def aggregates(self, r: int) -> list[AggregateCandidate]:
        """Round ``r``'s candidate aggregates: as read with the model at this pass's start when that
        was round ``r``, closed, else read now; served once, as ``round`` is."""
        read, self._aggregates_read = self._aggregates_read, None
        if read is not None and read[0] == r:
            return read[1]
        return self.client.get_aggregates(self.model_id, r)

    def step_failed(self, exc: Exception) -> None:
        """A step stopped on a ledger error (the ledger moved on, or the peer is briefly unreachable)
        or on an unreachable IPFS API. Agents are idempotent: the next pass reads the ledger again
        and reconciles."""
        reason = exc.chaincode_message if isinstance(exc, ContractError) else None
        self.log("step_refused", level="warning", reason=reason or str(exc)[:200])

    def submit(
        self,
        send: Callable[..., Any],
        *args: Any,
        done: Callable[[], bool] | None = None,
        attempts: int = 8,
        wait_for_peers: bool = False,
        checked: bool = False,
        recheck: Callable[[], bool] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``send(*args, **kwargs)`` (a :class:`FedcommitteeClient` transaction method) unless ``done()``
        says the ledger already has its effect; retries MVCC conflicts and unreachable peers.

        ``wait_for_peers``: the records the transaction names were read from our own peer, so an
        endorsing peer that answers NOT_FOUND has not caught up with it yet (Fabric endorses on
        other organizations' peers, each at its own height): wait and retry (``peer_lag``) rather
        than raise, until the attempts run out.

        ``checked``: the caller has just read the ledger and found the effect missing, so the first
        try skips asking ``done()`` again (one ledger read less per transaction; a retry still asks).

        ``recheck``: asked instead of ``done()`` where our effect is known to be missing (before the
        first try when ``checked``, and after a conflict: an invalidated transaction changed nothing),
        so it need only say whether the transaction is still wanted. After an unknown outcome (an
        unreachable peer) ``done()`` is asked.

        Returns the SubmitResult, or None when it was already done. A ContractError after a conflict or
        a restart is re-checked against ``done()`` before it is raised.
        """
        tx = transaction_of(send)
        ask = recheck if checked else done
        for attempt in range(attempts):
            if ask is not None and ask():
                self.log("skip_submit", tx=tx, reason="already on the ledger")
                return None
            ask = done
            started = time.perf_counter()
            try:
                result = send(*args, **kwargs)
            except CommitError as exc:
                code = getattr(exc, "validation_code", "")
                self.log("conflict", level="warning", tx=tx, code=code, attempt=attempt)
                if code in RETRY_CODES:
                    ask = recheck or done
                    time.sleep(conflict_backoff(attempt))
                    continue
                raise
            except ContractError as exc:
                if done is not None and done():
                    self.log("skip_submit", tx=tx, reason=f"already done ({exc.chaincode_message})")
                    return None
                lagging = isinstance(exc, NotFound) and exc.stage == "endorse"
                if wait_for_peers and lagging and attempt < attempts - 1:
                    self.log("peer_lag", level="warning", tx=tx, reason=exc.chaincode_message[:200],
                             attempt=attempt)  # fmt: skip
                    time.sleep(lag_backoff(attempt))
                    continue
                raise
            except GatewayError as exc:
                self.log("submit_retry", level="warning", tx=tx, error=str(exc)[:200], attempt=attempt)
                time.sleep(1.0 + attempt)
                continue
            self.log(
                "submitted",
                tx=tx,
                txid=result.txid,
                block=result.block_number,
                seconds=round(time.perf_counter() - started, 3),
                round=self.current_round,
            )
            return result
        # Retries are routine (logged at info); running out of them is not.
        self.log("submit_gave_up", level="warning", tx=tx, attempts=attempts, round=self.current_round)
        raise RuntimeError(f"{tx}: gave up after {attempts} attempts")

    # ------------------------------------------------------------------ objects
    @property
    def reader(self) -> Reader:
        """The one fetch-and-verify path (hash-checked, opened if sealed to us, decoded strictly)."""
        exp = self.exp
        return Reader(self.client, self.store, exp.model, exp.max_update_bytes,
                      private_key=self.private_key, model_id=self.model_id, on_io=self.log_io,
                      recent=self.recent)  # fmt: skip

    def log_io(self, op: str, size: int, seconds: float) -> None:
        """One IPFS put or hash-checked get, for the report's per-round breakdown."""
        self.log("ipfs", op=op, bytes=size, seconds=round(seconds, 4), round=self.current_round)

    def put(self, data: bytes):
        started = time.perf_counter()
        obj = self.store.put(data)
        self.log_io("put", len(data), time.perf_counter() - started)
        if self.recent is not None:  # what we wrote is read again (the publisher's next global)
            self.recent.put((obj.cid, obj.sha256_hex), data)
        return obj
