"""Helpers for the privacy drills (tests/unit/roles/test_privacy_uploads.py and
tests/integration/test_privacy.py).

* :class:`LeakChecker`: does a payload contain a training sample? Every sample is looked for in every
  form the pipeline holds it (``sample_forms``), as a whole and as any 32-byte window.
* :func:`record_problems`: does an update record (the ``SubmitUpdate`` JSON) hold anything but ids,
  hashes, counts and scalar metrics?
* :class:`CapturingAgent`: the real :class:`fedcommittee.roles.runtime.Agent` (its ``put``, ``submit``,
  ``reader``, ``fetch_weights``) over an in-memory ledger, recording every object the role uploads and
  every transaction it submits, so the real ``Provider`` / publisher code runs unchanged.
* :class:`PrivacyTally`: the counts behind the summary the integration module prints.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedcommittee.ledger import FedcommitteeClient
from fedcommittee.ledger.gateway import SubmitResult
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.runtime import Agent, JsonLog
from fedcommittee.storage import validate_cid

WINDOW = 32  # bytes: 8 float32 pixels, 4 float64 pixels, 32 uint8 pixels

# ------------------------------------------------------------------------------------ sample forms


def sample_forms(x: Any) -> dict[str, np.ndarray]:
    """Every form in which the pipeline holds each sample, as rows of bytes (one row per sample).

    * ``float32``: the normalized tensor (``Dataset.x``, and the npz of a validation shard);
    * ``float64``: the normalized values before the cast (``load_digits`` divides float64 images);
    * ``float64 levels`` and ``uint8 levels``: the integer grey levels of the source, when the values
      are such levels (sklearn's digits hold 0..16 as float64; Fashion-MNIST's IDX files hold 0..255
      as uint8).
    """
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).reshape(len(x), -1)
    forms: dict[str, np.ndarray] = {"float32": a, "float64": a.astype(np.float64)}
    for scale in (16, 255):
        levels = a.astype(np.float64) * scale
        rounded = np.rint(levels)
        if np.abs(levels - rounded).max(initial=0.0) < 1e-3 and rounded.max(initial=0.0) <= 255:
            forms[f"float64 levels 0..{scale}"] = rounded
            forms[f"uint8 levels 0..{scale}"] = rounded.astype(np.uint8)
            break
    return {k: np.ascontiguousarray(v).view(np.uint8).reshape(len(a), -1) for k, v in forms.items()}


# ------------------------------------------------------------------------------------ the checker

_K = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5], np.uint64)


def _windows(rows: np.ndarray, width: int) -> np.ndarray:
    """All ``width``-byte windows of every row (any offset), as a contiguous (M, width) array."""
    if rows.shape[1] < width:
        return np.empty((0, width), np.uint8)
    w = np.lib.stride_tricks.sliding_window_view(rows, width, axis=1)
    return np.ascontiguousarray(w.reshape(-1, width))


def informative_bytes(rows: np.ndarray) -> np.ndarray:
    """Per row: how many bytes differ from the row's most common byte value. A window of zero pixels
    and one grey level has 2 (the other 30 bytes are zeros), and such windows also turn up by chance
    wherever a payload holds a run of zeros (an unused input's weights, a dead unit's row)."""
    s = np.sort(rows, axis=1)
    eq = s[:, 1:] == s[:, :-1]
    run = np.zeros(len(rows), np.int64)
    best = np.ones(len(rows), np.int64)
    for k in range(eq.shape[1]):
        run = (run + 1) * eq[:, k]
        np.maximum(best, run + 1, out=best)
    return rows.shape[1] - best


def _hash(windows: np.ndarray) -> np.ndarray:
    """A 64-bit hash per window (collisions only cost an exact comparison later)."""
    lanes = windows.view(np.uint64)  # (M, width / 8)
    h = np.zeros(len(windows), np.uint64)
    for i in range(lanes.shape[1]):
        h = (h ^ lanes[:, i]) * _K[i % 4]
        h ^= h >> np.uint64(29)
    return h


@dataclass(frozen=True)
class Finding:
    payload: str
    form: str
    sample: int
    how: str  # "whole sample" or f"{WINDOW}-byte window"
    offset: int  # where in the payload

    def __str__(self) -> str:
        return f"{self.payload}: sample {self.sample} ({self.form}) as a {self.how} at byte {self.offset}"


class LeakChecker:
    """Looks for each sample of ``forms`` in payloads: whole (every form) and by every ``window``-byte
    window at any offset.

    A window counts only if at least ``min_informative`` of its bytes differ from its most common byte
    (8: e.g. four grey pixels of eight in float32). Emptier windows (a run of blank pixels with a
    stroke's edge) carry a few bits each and match by chance wherever a payload has a run of zeros, as
    an honest delta does (inputs that are always blank, dead hidden units). They are skipped and
    counted; ``uncovered`` lists the samples left without any window (then only the whole-sample
    check covers them)."""

    def __init__(self, forms: dict[str, np.ndarray], window: int = WINDOW, min_informative: int = 8) -> None:
        if window % 8:
            raise ValueError("window must be a multiple of 8 bytes")
        self.window = window
        self.min_informative = min_informative
        self.forms = forms
        self.names = list(forms)
        self.n_samples = len(next(iter(forms.values())))
        self.windows_skipped = 0
        covered = np.zeros(self.n_samples, bool)
        self._whole = {name: informative_bytes(rows) >= min_informative for name, rows in forms.items()}
        wins, refs = [], []
        for fi, name in enumerate(self.names):
            rows = forms[name]
            w = _windows(rows, window)
            per_row = max(rows.shape[1] - window + 1, 0)
            sample = np.repeat(np.arange(len(rows)), per_row)
            offset = np.tile(np.arange(per_row), len(rows))
            keep = informative_bytes(w) >= min_informative if len(w) else np.zeros(0, bool)
            self.windows_skipped += int((~keep).sum())
            covered[sample[keep]] = True
            wins.append(w[keep])
            refs.append(np.stack([np.full(int(keep.sum()), fi), sample[keep], offset[keep]], axis=1))
        self.uncovered = [int(i) for i in np.flatnonzero(~covered)]
        self._win = np.concatenate(wins)
        self._ref = np.concatenate(refs)
        h = _hash(self._win)
        self._order = np.argsort(h, kind="stable")
        self._h = h[self._order]
        self.windows_indexed = len(self._win)
        self.payloads = 0
        self.bytes_scanned = 0

    def scan(self, payload: bytes, label: str = "payload") -> list[Finding]:
        """Every place a sample occurs in ``payload`` (an empty list: no sample in it)."""
        payload = bytes(payload)
        self.payloads += 1
        self.bytes_scanned += len(payload)
        found: list[Finding] = []
        for name in self.names:
            for i in np.flatnonzero(self._whole[name]):
                at = payload.find(self.forms[name][i].tobytes())
                if at >= 0:
                    found.append(Finding(label, name, int(i), "whole sample", at))
        if len(payload) >= self.window:
            pw = _windows(np.frombuffer(payload, np.uint8)[None, :], self.window)
            ph = _hash(pw)
            lo = np.searchsorted(self._h, ph, "left")
            hi = np.searchsorted(self._h, ph, "right")
            for pos in np.flatnonzero(hi > lo):
                for j in self._order[lo[pos] : hi[pos]]:
                    if np.array_equal(self._win[j], pw[pos]):
                        fi, sample, _ = self._ref[j]
                        how = f"{self.window}-byte window"
                        found.append(Finding(label, self.names[fi], int(sample), how, int(pos)))
        return found

    @staticmethod
    def leaked_samples(findings: list[Finding]) -> set[tuple[str, int]]:
        return {(f.form, f.sample) for f in findings}


# -------------------------------------------------------------------------------- update records

FEDERATED_KEYS = {"round", "baseCid", "baseSha256", "cid", "sha256", "numSamples", "metrics"}
GOSSIP_KEYS = {"parents", "cid", "sha256", "numSamples", "metrics"}
# What the provider reports (ml.train.local_train's metrics, plus DP's epsilon): scalars only.
METRIC_NAMES = {"train_loss", "steps", "samples_processed", "seconds", "samples_per_s", "epsilon"}
MAX_RECORD_BYTES = 2048
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _no_constants(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def record_problems(text: str) -> list[str]:
    """What is wrong with an update record, measured against "ids, hashes, counts and metrics only"."""
    problems: list[str] = []
    if len(text.encode()) > MAX_RECORD_BYTES:
        problems.append(f"record is {len(text.encode())} bytes, more than {MAX_RECORD_BYTES}")
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        return [*problems, f"not strict JSON: {exc}"]
    if not isinstance(doc, dict):
        return [*problems, "record is not a JSON object"]
    keys = set(doc)
    want = GOSSIP_KEYS if "parents" in doc else FEDERATED_KEYS
    if keys != want:
        problems.append(f"fields {sorted(keys)}; expected exactly {sorted(want)}")

    def check(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    for k in ("cid", "baseCid"):
        if k in doc:
            try:
                validate_cid(doc[k])
            except (ValueError, TypeError):
                problems.append(f"{k}: not a CID: {str(doc[k])[:80]!r}")
    for k in ("sha256", "baseSha256"):
        if k in doc:
            check(isinstance(doc[k], str) and bool(_HEX64.match(doc[k])), f"{k}: not a sha256 hex")
    if "round" in doc:
        check(type(doc["round"]) is int and doc["round"] >= 1, "round: not a positive integer")
    if "parents" in doc:
        p = doc["parents"]
        check(isinstance(p, list) and len(p) <= 16, "parents: not a short list")
        if isinstance(p, list):
            check(all(isinstance(u, str) and _HEX64.match(u) for u in p), "parents: not update ids")
    if "numSamples" in doc:
        check(type(doc["numSamples"]) is int and doc["numSamples"] >= 0, "numSamples: not a count")
    m = doc.get("metrics")
    if "metrics" in doc:
        if not isinstance(m, dict):
            problems.append("metrics: not an object")
        else:
            for name, v in m.items():
                if name not in METRIC_NAMES:
                    problems.append(f"metrics.{name}: not a known metric ({sorted(METRIC_NAMES)})")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    problems.append(f"metrics.{name}: not a finite number: {str(v)[:80]!r}")
    return problems


# --------------------------------------------------------------------------- capturing the roles


class CapturingStore:
    """Wraps a ContentStore (real IPFS or in memory); records every object put through it."""

    def __init__(self, store: Any) -> None:
        self.inner = store
        self.puts: list[tuple[Any, bytes]] = []

    def put(self, data: bytes):
        obj = self.inner.put(data)
        self.puts.append((obj, bytes(data)))
        return obj

    def get(self, *args, **kwargs) -> bytes:
        return self.inner.get(*args, **kwargs)


def memory_store():
    """The real ContentStore over the in-memory IPFS stand-in of the storage unit tests."""
    from fedcommittee.storage import ContentStore
    from tests.unit.storage.fakes import FakeIpfs

    return ContentStore(FakeIpfs())


class MemoryLedger(FedcommitteeClient):
    """The real client over the queries the provider and the publisher make, answered from dicts
    shaped like the chaincode's JSON; ``contract.submit_transaction`` records each transaction (the
    exact arguments that would be endorsed)."""

    def __init__(self, me: str, *, accept: bool = False) -> None:
        super().__init__(self)
        self.me = me
        self.accept = accept
        self.rounds: dict[int, dict] = {}
        self.updates: dict[str, dict] = {}
        self.submitted: list[tuple[str, tuple[str, ...]]] = []
        self.accounts: dict[str, dict] = {}
        self.registrations: dict[str, dict] = {}
        self.contract = self

    # queries
    def get_round(self, model_id: str, r: int) -> dict:
        return self.rounds[int(r)]

    def list_provider_updates(self, model_id: str, provider: str, page_size=200, bookmark=""):
        items = [u for u in self.updates.values() if u["provider"] == provider]
        return {"items": items, "bookmark": ""}

    def list_accepted_updates(self, model_id: str, r=0, page_size=200, bookmark=""):
        return {"items": [u for u in self.updates.values() if u["status"] == "accepted"], "bookmark": ""}

    def get_update(self, uid: str) -> dict:
        return self.updates[uid]

    def list_round_updates(self, model_id: str, r: int, page_size=200, bookmark=""):
        return {"items": [u for u in self.updates.values() if u["round"] == int(r)], "bookmark": ""}

    def get_account(self, key: str) -> dict:
        return self.accounts.get(key, {"roles": []})

    def get_data_registration(self, model_id: str, who: str) -> dict:
        return self.registrations.get(who, {})

    def list_data_registrations(self, model_id: str, page_size=200, bookmark=""):
        items = [dict(doc, provider=who) for who, doc in sorted(self.registrations.items())]
        return {"items": items, "bookmark": ""}

    # the contract
    def submit_transaction(self, fn: str, *args: str) -> SubmitResult:
        self.submitted.append((fn, args))
        txid = hashlib.sha256(repr((fn, args, len(self.submitted))).encode()).hexdigest()
        if fn == "RegisterData":
            self.registrations[self.me] = json.loads(args[1])
        if fn == "SubmitUpdate":
            doc = json.loads(args[1])
            self.updates[txid] = {
                "id": txid,
                "modelId": args[0],
                "provider": self.me,
                "round": doc.get("round", 0),
                "status": "accepted" if self.accept else "pending",
                "medianScore": 0.0,
                "submittedAt": len(self.submitted),
                **{k: doc[k] for k in ("cid", "sha256", "numSamples", "metrics")},
            }
        return SubmitResult(result=b"", txid=txid, block_number=len(self.submitted))


class CapturingAgent(Agent):
    """The real Agent without Fabric: an in-memory ledger, the given store, no event stream.
    Everything the role uploads is in ``uploads`` and everything it submits in ``submitted``."""

    def __init__(self, exp, *, name: str, role: str, backing_store: Any, accept_updates: bool = False,
                 profile: Any = None, **_ignored: Any) -> None:  # fmt: skip
        me = f"Org1MSP/{name}"
        super().__init__(exp, name, role, client=MemoryLedger(me, accept=accept_updates),
                         store=CapturingStore(backing_store), me=me,
                         log=JsonLog(None, name, role, echo=False), profile=profile)  # fmt: skip
        self.accept_updates = accept_updates

    @property
    def uploads(self) -> list[tuple[Any, bytes]]:
        return self.store.puts

    @property
    def submitted(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.client.submitted


def open_round(agent: CapturingAgent, round_no: int, global_obj, fields: dict | None = None) -> dict:
    """Make round ``round_no`` open with ``global_obj`` as its global weights; return the model record
    (with ``fields`` added: e.g. the committee seats and publisher of :class:`Recipients`)."""
    agent.client.rounds[round_no] = {
        "status": "open",
        "global": {"cid": global_obj.cid, "sha256": global_obj.sha256_hex},
    }
    model = {"id": agent.model_id, "mode": "federated", "status": "active", "currentRound": round_no}
    return {**model, **(fields or {})}


# ----------------------------------------------------------------------------- Fabric-like keys


@dataclass
class FakeIdentity:
    msp_id: str
    certificate: x509.Certificate


@dataclass
class FakeIdentityConfig:
    ident: FakeIdentity

    def load(self):
        return self.ident, None


@dataclass
class FakeProfile:
    """``profile.identity(user).load()`` as the publisher calls it, for enrolled-like identities."""

    identities: dict[str, FakeIdentity] = field(default_factory=dict)

    def identity(self, user: str) -> FakeIdentityConfig:
        return FakeIdentityConfig(self.identities[user])


def enrolled_identity(user: str):
    """A P-256 key and a certificate shaped like a Fabric enrollment certificate of ``user``
    (``org2-user3`` -> ``User3@org2.fc.local``, ``Org2MSP``): (private key, FakeIdentity)."""
    org, who = user.split("-")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{who.capitalize()}@{org}.fc.local"),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{org}.fc.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, FakeIdentity(f"{org.capitalize()}MSP", cert)


@dataclass
class Recipients:
    """Fabric-like identities of a model's publisher and committee (and any extra users), and the ledger
    fields naming them: who a provider seals its update to under ``encrypt_updates``."""

    exp: Any
    keys: dict[str, tuple[Any, FakeIdentity]]  # profile user -> (private key, identity)

    @property
    def profile(self) -> FakeProfile:
        return FakeProfile({u: ident for u, (_, ident) in self.keys.items()})

    def identity(self, user: str) -> str:
        ident = self.keys[user][1]
        return identity_key(ident.msp_id, ident.certificate)

    @property
    def users(self) -> list[str]:
        """The update recipients: the publisher and every committee member."""
        return [self.exp.publisher, *(m.user for m in self.exp.committee)]

    def key_ids(self) -> list[str]:
        from fedcommittee.storage import envelope

        return sorted(envelope.key_id(self.keys[u][1].certificate.public_key()) for u in self.users)

    def model_fields(self) -> dict:
        seats = [
            {"member": self.identity(m.user), "shardCid": "", "shardSha256": ""} for m in self.exp.committee
        ]
        return {"publisher": self.identity(self.exp.publisher), "committee": seats}

    def open(self, blob: bytes, user: str | None = None) -> bytes:
        from fedcommittee.roles.envelopes import update_context
        from fedcommittee.storage import envelope

        key = self.keys[user or self.exp.publisher][0]
        return envelope.open_envelope(blob, key, update_context(self.exp.model_id))


def model_recipients(exp, extra_users: tuple[str, ...] = ()) -> Recipients:
    users = [exp.publisher, *(m.user for m in exp.committee), *extra_users]
    return Recipients(exp, {u: enrolled_identity(u) for u in dict.fromkeys(users)})


def grant_committee(agent: CapturingAgent, ident: FakeIdentity) -> str:
    key = identity_key(ident.msp_id, ident.certificate)
    agent.client.accounts[key] = {"roles": ["committee"]}
    return key


# ------------------------------------------------------------------------------- drill set-ups

PROVIDERS = [
    {"name": "honest1", "user": "org1-user3"},
    {"name": "honest2", "user": "org2-user3"},
    {"name": "flipper", "user": "org3-user3", "behaviour": "label_flip"},
    {"name": "signflip", "user": "org1-user4", "behaviour": "sign_flip"},
    {"name": "noisy", "user": "org2-user4", "behaviour": "gaussian_noise", "params": {"sigma": 0.05}},
    {"name": "scaler", "user": "org3-user4", "behaviour": "scaling", "params": {"factor": 3}},
    {"name": "freerider", "user": "org1-user5", "behaviour": "free_rider"},
    {"name": "dp-low", "user": "org2-user5", "dp": {"enabled": True, "noise_multiplier": 0.5}},
    {"name": "dp-mid", "user": "org3-user5", "dp": {"enabled": True, "noise_multiplier": 1.0}},
    {"name": "dp-high", "user": "org1-user6", "dp": {"enabled": True, "noise_multiplier": 2.0}},
]


def config_has(cls_name: str, field_name: str) -> bool:
    """Whether the experiment config (fedcommittee/experiment.py) has this field (features in flight)."""
    import dataclasses

    from fedcommittee import experiment

    cls = getattr(experiment, cls_name, None)
    return cls is not None and field_name in {f.name for f in dataclasses.fields(cls)}


if config_has("ProviderConfig", "compression"):  # providers may send ml.compress encodings
    PROVIDERS += [
        {"name": "half", "user": "org2-user6", "compression": "float16"},
        {"name": "sparse", "user": "org3-user6", "compression": "int8+topk:0.1"},
    ]


def upload_scheme(provider) -> str:
    """The encoding a Provider sends its delta in (plain float32 before compression existed)."""
    return getattr(provider, "scheme", None) or "float32"


def upload_size(exp, provider) -> int:
    """The exact size of any delta of the architecture in the provider's encoding."""
    from fedcommittee.ml import compress

    return compress.encoded_size(exp.model, upload_scheme(provider))


def privacy_experiment(**overrides: Any):
    """A small consortium on sklearn's digits with the 64-64-10 MLP (every behaviour, three DP levels)."""
    from fedcommittee.experiment import parse_experiment

    doc = {
        "name": "privacy",
        "model_id": "privacy-drill",
        "seed": 0,
        "model": "mlp",
        "data": {"source": "digits", "val_fraction": 0.25},
        "partition": {"name": "dominant_class", "params": {"share": 0.5}},
        "local": {"steps": 20, "batch_size": 32, "lr": 0.1},
        "publisher": "org1-user1",
        "committee": [
            {"name": "member1", "user": "org1-user2"},
            {"name": "member2", "user": "org2-user2"},
            {"name": "member3", "user": "org3-user2"},
        ],
        "providers": PROVIDERS,
    }
    doc.update(overrides)
    return parse_experiment(doc, source="<privacy drill>")


def provider_agent(exp, name: str, store) -> CapturingAgent:
    return CapturingAgent(exp=exp, user=name, role="provider", name=name, home=Path("."), backing_store=store)


def run_federated(exp, name: str, store, rounds: int = 2, prior_updates: int = 0, recipients=None):
    """The real ``Provider.federated_step`` for rounds 1..``rounds``; the next round's global is the
    previous one plus this provider's delta (stored directly, not as the provider's upload).
    ``prior_updates`` pretends the ledger already holds that many updates of this provider.
    ``recipients`` (:class:`Recipients`): the model's publisher and committee on the ledger and in
    the profile, for ``encrypt_updates`` (a sealed upload is opened with the publisher's key).
    Returns (agent, provider, [update record JSON per round])."""
    from fedcommittee import ml
    from fedcommittee.ml import compress
    from fedcommittee.ml import state as st
    from fedcommittee.roles.provider import Provider
    from fedcommittee.storage import envelope

    agent = provider_agent(exp, name, store)
    if recipients is not None:
        agent.profile = recipients.profile
    for i in range(prior_updates):
        uid = hashlib.sha256(f"{name}/prior/{i}".encode()).hexdigest()
        agent.client.updates[uid] = {"id": uid, "provider": agent.me, "round": 0, "status": "accepted"}
    provider = Provider(agent, name)
    global_state = ml.initial_state(exp.model, exp.seed)
    records = []
    for r in range(1, rounds + 1):
        fields = recipients.model_fields() if recipients is not None else None
        model = open_round(agent, r, store.put(ml.dumps(global_state)), fields)
        before = len(agent.uploads)
        provider.federated_step(model)
        assert len(agent.uploads) == before + 1, f"{name} round {r}: {len(agent.uploads) - before} uploads"
        fn, args = agent.submitted[-1]
        assert fn == "SubmitUpdate" and args[0] == exp.model_id
        records.append(args[1])
        sent = agent.uploads[-1][1]
        if envelope.is_envelope(sent):
            sent = recipients.open(sent)
        global_state = st.add_scaled(global_state, compress.decompress(sent, exp.model))
    assert len(agent.submitted) == rounds
    return agent, provider, records


def publish_spec(exp, store):
    """The real ``publisher.build_spec`` with Fabric-like identities for the committee (and for the
    publisher and one provider, as non-members). Returns (spec, agent, {user: (private key, identity)})."""
    from fedcommittee.roles.publisher import build_spec

    users = [exp.publisher, *(m.user for m in exp.committee), exp.providers[0].user]
    keys = {u: enrolled_identity(u) for u in users}
    agent = CapturingAgent(
        exp=exp,
        user=exp.publisher,
        role="publisher",
        name="publisher",
        home=Path("."),
        backing_store=store,
        profile=FakeProfile({u: ident for u, (_, ident) in keys.items()}),
    )
    for m in exp.committee:
        grant_committee(agent, keys[m.user][1])
    return build_spec(agent), agent, keys


# ------------------------------------------------------------------------------------- the tally


@dataclass
class PrivacyTally:
    """Counts for the privacy summary (planted leaks are the negative controls, not leaks)."""

    samples: set[tuple[str, int]] = field(default_factory=set)
    payloads: int = 0
    bytes_scanned: int = 0
    records: int = 0
    keys_tried: int = 0
    opens_refused: int = 0
    opens_ok: int = 0
    planted: int = 0
    planted_caught: int = 0
    leaks: int = 0
    epsilons: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    sealed_updates: int = 0
    update_keys_tried: int = 0
    update_opens_refused: int = 0
    update_opens_ok: int = 0
    sealed_sizes: list[tuple[int, int]] = field(default_factory=list)  # (plain, sealed) bytes

    def add_samples(self, kind: str, n: int) -> None:
        self.samples.update((kind, i) for i in range(n))

    def scanned(self, label: str, payload: bytes, findings: list[Finding]) -> None:
        self.payloads += 1
        self.bytes_scanned += len(payload)
        self.leaks += len(LeakChecker.leaked_samples(findings))
        state = "clean" if not findings else f"LEAK: {findings[0]}"
        self.lines.append(f"  {label}: {len(payload)} bytes, {state}")

    def summary(self) -> str:
        eps = f" DP epsilons reported: {', '.join(self.epsilons)}." if self.epsilons else ""
        if self.sealed_updates:
            sizes = sorted({f"{p} -> {c}" for p, c in self.sealed_sizes})
            eps += (
                f" Sealed updates: {self.sealed_updates} fetched raw, {self.update_keys_tried} opens tried, "
                f"{self.update_opens_refused} opens refused, {self.update_opens_ok} opened by their "
                f"recipients (plain -> sealed bytes: {', '.join(sizes)})."
            )
        return (
            f"privacy drills: {len(self.samples)} samples checked (every form, whole and by every "
            f"{WINDOW}-byte window) in {self.payloads} payloads ({self.bytes_scanned} bytes fetched back "
            f"raw from IPFS), {self.records} update records checked; {self.keys_tried} keys tried on "
            f"sealed shards, {self.opens_refused} opens refused, {self.opens_ok} opened by their member; "
            f"planted leaks caught: {self.planted_caught} of {self.planted}; leaks found: {self.leaks}.{eps}"
        )

    def write(self, root: Path, name: str = "privacy-summary.txt") -> Path:
        out = root / "reports" / name
        out.parent.mkdir(exist_ok=True)
        out.write_text(self.summary() + "\n" + "\n".join(self.lines) + "\n")
        return out
