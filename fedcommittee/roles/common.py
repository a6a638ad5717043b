"""What every agent shares: ledger + IPFS connections, JSON-lines logs, the event pump, careful submits,
and the few pieces of protocol every role must compute the same way (identity keys, shard encoding,
the aggregate of a round).

Agents are *level-triggered*: a chaincode event only wakes an agent up; it then reads the ledger state
and does whatever is still missing for it (and nothing that is already on the ledger). A restarted
agent therefore just reconciles and carries on; an event seen twice or missed costs nothing.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcommittee.endpoints import Endpoints
from fedcommittee.experiment import Experiment
from fedcommittee.ledger import (
    Checkpoint,
    CommitError,
    ContractError,
    FedcommitteeClient,
    Gateway,
    GatewayError,
    load_profile,
)
from fedcommittee.logs import expected_race
from fedcommittee.policy import Policy
from fedcommittee.storage import ContentStore, IpfsClient, IpfsUnavailable, envelope
from fedcommittee.storage.errors import EncryptedObject, EnvelopeError, KeyFormatError

__all__ = [
    "Agent",
    "AgentStopped",
    "JsonLog",
    "Reader",
    "identity_key",
    "load_private_key",
    "paged",
    "run_dir",
    "update_context",
    "update_recipients",
]

RETRY_CODES = {"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT", "ENDORSEMENT_POLICY_FAILURE"}


# What a role's step may fail on and still be retried by the next pass: any ledger error (the
# ledger moved on, or the gateway peer is unreachable) and an unreachable IPFS API. Integrity
# errors are not here: a wrong hash is never retried into acceptance.
STEP_RETRYABLE = (GatewayError, IpfsUnavailable)


class AgentStopped(Exception):
    """The model reached a final state (or the agent was asked to stop)."""


def run_dir(home: Path, model_id: str) -> Path:
    """Where a run keeps agent state and logs: ``$FC_HOME/runs/<model id>``."""
    return home / "runs" / model_id


def identity_key(msp_id: str, cert) -> str:
    """The chaincode's identity key for a certificate: ``<MSP>/base64("x509::<subject>::<issuer>")``.

    Same as fabric-chaincode-go's ``cid.GetID`` (Go's pkix.Name.String() is RFC 4514 order)."""
    raw = f"x509::{cert.subject.rfc4514_string()}::{cert.issuer.rfc4514_string()}"
    return f"{msp_id}/{base64.b64encode(raw.encode()).decode()}"


def profile_certificate(profile, user: str) -> tuple[str, Any]:
    """(identity key, certificate) of a connection-profile user: to be checked against the ledger."""
    ident, _ = profile.identity(user).load()
    return identity_key(ident.msp_id, ident.certificate), ident.certificate


def load_private_key(id_cfg):
    """The private key of a profile identity: the key in its MSP keystore that matches its certificate.
    Members open their shards with it, and every update recipient its sealed updates."""
    from cryptography.hazmat.primitives import serialization

    ident, _ = id_cfg.load()
    for path in sorted((id_cfg.msp_dir / "keystore").glob("*")):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if key.public_key() == ident.certificate.public_key():
            return key
    raise RuntimeError(f"no private key for {id_cfg.name} in {id_cfg.msp_dir}/keystore")


def paged(fetch: Callable[[str], dict], limit: int = 100_000) -> Iterator[dict]:
    """All items of a paged query (``fetch(bookmark) -> {"items","bookmark"}``)."""
    bookmark, seen = "", 0
    while True:
        page = fetch(bookmark) or {}
        items = page.get("items") or []
        yield from items
        seen += len(items)
        bookmark = page.get("bookmark") or ""
        if not bookmark or not items or seen >= limit:
            return


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


@dataclass
class Agent:
    """Connections and helpers one agent process needs. ``role`` is for logs only."""

    exp: Experiment
    user: str
    role: str
    name: str
    home: Path
    endpoints: Endpoints | None = None
    poll_seconds: float = 3.0
    current_round: int = 0  # the model's round at the last model() read; tags ledger and IPFS records
    log: JsonLog = field(init=False)
    client: FedcommitteeClient = field(init=False)
    store: ContentStore = field(init=False)
    # This identity's private key (from its MSP keystore): opens our shard and updates sealed to us.
    private_key: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        if not self.exp.model_id:
            raise ValueError("the experiment has no model id (give --model-id or set model_id in the config)")
        self.endpoints = self.endpoints or Endpoints.load(self.home)
        if not self.endpoints.fabric_available:
            from fedcommittee.endpoints import NetworkNotRunning

            raise NetworkNotRunning(f"Fabric is not available: {self.endpoints.fabric_reason}")
        self.dir = run_dir(self.home, self.exp.model_id)
        self.state_dir = self.dir / "agents" / self.name
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = JsonLog(self.dir / "logs" / f"{self.name}.jsonl", self.name, self.role)
        self.profile = load_profile(self.endpoints.connection_profile)
        self.id_cfg = self.profile.identity(self.user)
        ident, _ = self.id_cfg.load()
        self.me = identity_key(ident.msp_id, ident.certificate)
        self.private_key = load_private_key(self.id_cfg)
        peer = self.profile.peer(msp_id=ident.msp_id)
        self.gateway = Gateway.connect(self.profile, user=self.user, peer=peer.name)
        self.client = FedcommitteeClient(self.gateway.network().contract())
        self._ipfs = IpfsClient(self.endpoints.ipfs_api, timeout=60)
        self.store = ContentStore(self._ipfs)
        self._events: queue.Queue = queue.Queue()
        self._stream = None
        self._stop = threading.Event()
        self.log(
            "start",
            user=self.user,
            identity=self.me[:24],
            model=self.exp.model_id,
            pid=os.getpid(),
            ledger=self.endpoints.backend,
        )

    @property
    def model_id(self) -> str:
        return self.exp.model_id

    @functools.cached_property
    def policy(self) -> Policy:
        """The protocol policy, one per agent: a stateful aggregation keeps its state there."""
        return Policy.from_experiment(self.exp)

    # ------------------------------------------------------------------ events
    def start_events(self) -> None:
        """Pump chaincode events into a queue from a thread (checkpointed under the state dir)."""
        cp = Checkpoint(self.state_dir / "events.json")
        self._stream = self.gateway.network().chaincode_events(start_block=0, checkpoint=cp)

        def pump() -> None:
            try:
                for ev in self._stream:
                    self._events.put(ev)
            except Exception as exc:  # noqa: BLE001 (reported, and the main loop keeps polling)
                if not self._stop.is_set():
                    self.log("events_failed", level="warning", error=f"{type(exc).__name__}: {exc}")

        threading.Thread(target=pump, name=f"{self.name}-events", daemon=True).start()

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until an event for our model arrives (or ``timeout``); return all queued ones."""
        out = []
        try:
            ev = self._events.get(timeout=self.poll_seconds if timeout is None else timeout)
            out.append(ev)
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        payloads = []
        for ev in out:
            try:
                p = json.loads(ev.payload) if ev.payload else {}
            except ValueError:
                continue
            if p.get("modelId") in (None, self.model_id):
                payloads.append(p)
        return payloads

    def close(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.close()
        self.gateway.close()
        self._ipfs.close()
        self.log("stop")
        self.log.close()

    # ------------------------------------------------------------------ ledger
    def model(self, outage_seconds: float = 300.0) -> dict | None:
        """The model record, or None before it is published.

        Waits out a gateway peer that is unreachable (restarting, briefly down) for up to
        ``outage_seconds``: an agent should outlive its peer's outage, not exit on it.
        """
        deadline = time.monotonic() + outage_seconds
        while True:
            try:
                model = self.client.get_model(self.model_id)
                # What this pass works on: its ledger and IPFS records are tagged with it (report).
                self.current_round = int(model.get("currentRound") or 0)
                self.log.set_round(self.current_round)
                return model
            except ContractError as exc:
                if "not found" in str(exc.chaincode_message or exc):
                    return None
                raise
            except GatewayError as exc:
                if time.monotonic() > deadline:
                    raise
                self.log("ledger_unreachable", level="warning", error=str(exc)[:200])
                time.sleep(2.0)

    def step_failed(self, exc: Exception) -> None:
        """A step stopped on a ledger error (the ledger moved on, or the peer is briefly unreachable)
        or on an unreachable IPFS API. Agents are idempotent: the next pass reads the ledger again
        and reconciles."""
        reason = exc.chaincode_message if isinstance(exc, ContractError) else None
        self.log("step_refused", level="warning", reason=reason or str(exc)[:200])

    def submit(self, fn: str, *args: str, done: Callable[[], bool] | None = None, attempts: int = 8) -> Any:
        """Submit ``fn`` unless ``done()`` says the ledger already has its effect; retry MVCC conflicts.

        Returns the SubmitResult, or None when it was already done. A ContractError after a conflict or
        a restart is re-checked against ``done()`` before it is raised.
        """
        for attempt in range(attempts):
            if done is not None and done():
                self.log("skip_submit", tx=fn, reason="already on the ledger")
                return None
            started = time.perf_counter()
            try:
                result = self.client.contract.submit_transaction(fn, *args)
            except CommitError as exc:
                code = getattr(exc, "validation_code", "")
                self.log("conflict", level="warning", tx=fn, code=code, attempt=attempt)
                if code in RETRY_CODES:
                    # Jittered: agents that collided would collide again on the same schedule (100
                    # providers registering data at once kept conflicting on the model's counter).
                    time.sleep((0.3 + 0.4 * attempt) * random.uniform(0.5, 1.5))
                    continue
                raise
            except ContractError as exc:
                if done is not None and done():
                    self.log("skip_submit", tx=fn, reason=f"already done ({exc.chaincode_message})")
                    return None
                raise
            except GatewayError as exc:
                self.log("submit_retry", level="warning", tx=fn, error=str(exc)[:200], attempt=attempt)
                time.sleep(1.0 + attempt)
                continue
            self.log(
                "submitted",
                tx=fn,
                txid=result.txid,
                block=result.block_number,
                seconds=round(time.perf_counter() - started, 3),
                round=self.current_round,
            )
            return result
        # Retries are routine (logged at info); running out of them is not.
        self.log("submit_gave_up", level="warning", tx=fn, attempts=attempts)
        raise RuntimeError(f"{fn}: gave up after {attempts} attempts")

    # ------------------------------------------------------------------ objects
    @property
    def reader(self) -> Reader:
        exp = self.exp
        return Reader(self.client, self.store, exp.model, exp.max_update_bytes,
                      private_key=self.private_key, model_id=self.model_id, on_io=self.log_io)  # fmt: skip

    def log_io(self, op: str, size: int, seconds: float) -> None:
        """One IPFS put or hash-checked get, for the report's per-round breakdown."""
        self.log("ipfs", op=op, bytes=size, seconds=round(seconds, 4), round=self.current_round)

    def fetch(self, cid: str, sha256: str, max_bytes: int | None = None) -> bytes:
        started = time.perf_counter()
        data = self.store.get(cid, sha256, max_bytes=max_bytes or self.exp.max_update_bytes)
        self.log_io("get", len(data), time.perf_counter() - started)
        return data

    def fetch_weights(self, cid: str, sha256: str, update: bool = False):
        return self.reader.fetch_weights(cid, sha256, update=update)

    def fetch_delta(self, cid: str, sha256: str):
        return self.reader.fetch_delta(cid, sha256)

    def put(self, data: bytes):
        started = time.perf_counter()
        obj = self.store.put(data)
        self.log_io("put", len(data), time.perf_counter() - started)
        return obj


UPDATE_HOLDERS = "the model's committee members and its publisher; in gossip mode its providers too"


@dataclass
class Reader:
    """Read-only access to what a model's records point at: enough for auditing and aggregation.

    With ``private_key`` (and the ``model_id`` the update context names) it opens updates sealed to
    that key; without one, a sealed update is hash-checked and then refused with ``EncryptedObject``.
    """

    client: FedcommitteeClient
    store: ContentStore
    model_name: str
    max_bytes: int = 64 << 20
    private_key: Any = field(default=None, repr=False)
    model_id: str = ""
    on_io: Callable[[str, int, float], None] | None = field(default=None, repr=False)

    def fetch(self, cid: str, sha256: str) -> bytes:
        """The object's bytes as stored (hash-checked): for a sealed update, the envelope."""
        started = time.perf_counter()
        data = self.store.get(cid, sha256, max_bytes=self.max_bytes)
        if self.on_io is not None:
            self.on_io("get", len(data), time.perf_counter() - started)
        return data

    def open_update(self, blob: bytes, require=(), what: str = "update object") -> bytes:
        """An update's content: ``blob`` itself when it is not sealed, else the envelope opened with
        our key under the model's update context. ``require``: key ids the envelope must be sealed to
        (every party that aggregates the model), else ``EnvelopeError``."""
        if not envelope.is_envelope(blob):
            return blob
        recipients = envelope.envelope_recipients(blob)
        missing = sorted(set(require) - set(recipients))
        if missing:
            raise EnvelopeError(
                f"{what} is not sealed to {len(missing)} of the model's update recipients (key ids "
                f"{', '.join(k[:16] for k in missing)}): not everyone who aggregates could open it"
            )
        ctx = update_context(self.model_id)
        try:
            mine = None if self.private_key is None else envelope.key_id(self.private_key.public_key())
        except KeyFormatError:  # a key type envelopes do not use (e.g. Ed25519): no recipient key
            mine = None
        if mine not in recipients:
            raise EncryptedObject(what, recipients, ctx, key_id=mine, holders=UPDATE_HOLDERS)
        return envelope.open_envelope(blob, self.private_key, ctx)

    def fetch_update(self, cid: str, sha256: str) -> bytes:
        """An update's content (hash-checked as stored, then opened if sealed)."""
        return self.open_update(self.fetch(cid, sha256), what=f"update object {cid}")

    def decode_weights(self, data: bytes):
        from fedcommittee import ml

        return ml.loads(data, self.model_name, max_bytes=self.max_bytes)

    def decode_delta(self, data: bytes):
        """A federated update's delta as sent: plain float32 weights or any compressed encoding
        (``ml.compress``), validated as strictly as weights; what it decodes to is what counts."""
        from fedcommittee.ml.compress import decompress

        return decompress(data, self.model_name, max_bytes=self.max_bytes)

    def fetch_weights(self, cid: str, sha256: str, update: bool = False):
        """Weights: the initial ones, a global/aggregate, or (``update``) a gossip update, which may be
        sealed. Only update objects are ever opened: a sealed aggregate is refused as malformed."""
        data = self.fetch_update(cid, sha256) if update else self.fetch(cid, sha256)
        return self.decode_weights(data)

    def fetch_delta(self, cid: str, sha256: str):
        """A federated update's delta (opened first if sealed)."""
        return self.decode_delta(self.fetch_update(cid, sha256))


# ------------------------------------------------------------------------------- shared protocol


def encode_dataset(ds) -> bytes:
    """A Dataset as an .npz (x float32, y int64): no pickle."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=ds.x.numpy().astype(np.float32), y=ds.y.numpy().astype(np.int64))
    return buf.getvalue()


def decode_dataset(data: bytes, n_classes: int):
    import numpy as np
    import torch

    from fedcommittee.ml.data import Dataset

    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    if x.dtype != np.float32 or y.dtype != np.int64 or x.ndim != 4 or len(x) != len(y):
        raise ValueError("validation shard: expected x float32 NCHW and y int64 of equal length")
    if not np.isfinite(x).all() or (y < 0).any() or (y >= n_classes).any():
        raise ValueError("validation shard: non-finite inputs or labels out of range")
    return Dataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), n_classes)


def data_kind(model_name: str) -> tuple[str, str]:
    """(dataType, format) of the data an architecture consumes, as declared and registered on chain."""
    from fedcommittee import ml

    c, h, w = ml.get_spec(model_name).input_shape
    return "image", f"float32-{c}x{h}x{w}"


def declared_profile(exp: Experiment) -> dict:
    """The publisher's declaration (``profile`` in PublishModel) that the committee approves against."""
    from fedcommittee.experiment import data_split
    from fedcommittee.ml.models import num_parameters

    data_type, fmt = data_kind(exp.model)
    # By default the least data a round can close with: the min_accepted smallest providers' data.
    # Declaring everyone's would make one slow-starting provider block the model's approval.
    sizes = sorted(len(p) for p in data_split(exp).partition)
    samples = exp.profile.training_samples or sum(sizes[: exp.min_accepted])
    purpose = exp.profile.purpose or f"{exp.name}: {exp.model} trained on {exp.data.source}"
    return {
        "purpose": purpose,
        "dataType": data_type,
        "dataFormat": fmt,
        "trainingSamples": int(samples),
        "parameters": int(num_parameters(exp.model)),
    }


def data_registration(exp: Experiment, labels, n_classes: int) -> dict:
    """A provider's RegisterData document: counts and kind only; the label histogram only with consent."""
    import numpy as np

    data_type, fmt = data_kind(exp.model)
    doc = {"numSamples": int(len(labels)), "dataType": data_type, "format": fmt,
           "shareHistogram": exp.data.share_histogram}  # fmt: skip
    if exp.data.share_histogram:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
        doc["labelHistogram"] = {str(i): int(c) for i, c in enumerate(counts) if c}
    return doc


def expected_providers(exp: Experiment, round_doc: dict) -> int:
    """How many updates a round can get: its allocated providers, or every configured one."""
    allocated = round_doc.get("allocated")
    return len(exp.providers) if allocated is None else len(allocated)


def shard_context(model_id: str) -> str:
    return f"fedcommittee/shard/{model_id}"


def update_context(model_id: str) -> str:
    """The envelope context of a sealed update: binds it to its model (another model's context fails)."""
    return f"fedcommittee/update/{model_id}"


def update_recipients(agent: Agent, model: dict) -> list[tuple[str, Any]]:
    """Who an update of ``model`` is sealed to, as (identity key, certificate) sorted by identity key:
    every committee seat on the ledger and the model's publisher (it aggregates); in gossip mode also
    the providers registered for the model (each builds on the others' accepted updates).

    The certificates come from the connection profile (the config's publisher, committee and, in
    gossip mode, provider users) and each is accepted only if its identity key is one the ledger
    record names, as ``publisher.member_certificate`` does for shards: a recipient key never comes
    from anybody's say-so. A ledger recipient without a certificate there is an error (an update is
    never sealed to fewer than all of them)."""
    exp = agent.exp
    wanted = {s["member"] for s in model.get("committee") or []} | {model["publisher"]}
    users = [exp.publisher, *(m.user for m in exp.committee)]
    if model.get("mode") == "gossip":
        regs = paged(lambda b: agent.client.list_data_registrations(model["id"], 200, b))
        wanted |= {g["provider"] for g in regs}
        users += [p.user for p in exp.providers]
    found: dict[str, Any] = {}
    for user in dict.fromkeys(users):
        key, cert = profile_certificate(agent.profile, user)
        if key in wanted:
            found[key] = cert
    missing = sorted(wanted - set(found))
    if missing:
        raise RuntimeError(
            f"no certificate in the connection profile for {len(missing)} update recipient(s) the ledger "
            f"names ({', '.join(k[:24] + '...' for k in missing)}); tried the config's users {users}"
        )
    return sorted(found.items())


def recipient_key_ids(agent: Agent, model: dict) -> set[str]:
    """Envelope key ids (sha256 of the raw public key) of :func:`update_recipients`."""
    return {envelope.key_id(cert.public_key()) for _, cert in update_recipients(agent, model)}


def round_updates(agent: Agent, round_no: int) -> list[dict]:
    return list(paged(lambda b: agent.client.list_round_updates(agent.model_id, round_no, 200, b)))


def round_inputs(reader: Reader, model: dict, round_doc: dict) -> tuple[Any, list]:
    """A round's global state and its accepted updates as (delta, num_samples), hash-verified."""
    g = round_doc["global"]
    global_state = reader.fetch_weights(g["cid"], g["sha256"])
    pairs = []
    for uid in round_doc.get("accepted") or []:
        u = reader.client.get_update(uid)
        if u.get("status") != "accepted" or u.get("modelId") != model["id"]:
            raise ValueError(f"update {uid} in the accepted set is {u.get('status')} for {u.get('modelId')}")
        pairs.append((reader.fetch_delta(u["cid"], u["sha256"]), int(u["numSamples"])))
    return global_state, pairs


def compute_aggregate(reader: Reader, policy: Policy, model: dict, round_doc: dict) -> tuple[bytes, Any]:
    """The round's aggregate from the ledger: the policy's strategy over ``round.accepted`` from
    ``round.global`` (a stateful strategy replays the earlier rounds it has not seen, read the same
    way). Deterministic: every honest party gets the same bytes."""
    from fedcommittee import ml

    def earlier(k: int):
        return round_inputs(reader, model, reader.client.get_round(model["id"], k))

    global_state, pairs = round_inputs(reader, model, round_doc)
    new_state = policy.aggregate(int(round_doc["number"]), global_state, pairs, earlier)
    return ml.dumps(new_state), new_state


def mean_state(states: list) -> dict:
    """Element-wise mean in float64 over states given in a canonical order (cast back once)."""
    import torch

    out = {}
    for k in sorted(states[0]):
        acc = torch.zeros_like(states[0][k], dtype=torch.float64)
        for s in states:
            acc += s[k].double()
        out[k] = (acc / len(states)).to(states[0][k].dtype).contiguous()
    return out


def gossip_base(reader: Reader, model: dict, parent_ids: list[str]):
    """What a gossip update starts from: the mean of its parents (sorted by id), else the initial weights."""
    if not parent_ids:
        m = model["initialWeights"]
        return reader.fetch_weights(m["cid"], m["sha256"])
    states = []
    for pid in sorted(parent_ids):
        u = reader.client.get_update(pid)
        if u.get("status") != "accepted" or u.get("modelId") != model["id"]:
            raise ValueError(f"parent {pid} is {u.get('status')} for {u.get('modelId')}")
        states.append(reader.fetch_weights(u["cid"], u["sha256"], update=True))
    return mean_state(states)
