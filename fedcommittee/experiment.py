"""Experiment configuration: one YAML file describes a whole consortium run.

``load_experiment(path)`` parses and validates it; every error names the offending key (e.g.
``providers[2].behaviour``) and unknown keys are rejected. The same file is read by every agent, so
each one derives the same data split deterministically (a provider only ever *uses* its own partition,
the publisher only the validation set; in a real deployment each party would point at its own data).

See docs/agents.md for the reference of every key.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fedcommittee import layout
from fedcommittee.ledger.records import AcceptRule, AllocationRule, Mode
from fedcommittee.ml import registry
from fedcommittee.ml.schemes import get_scheme

__all__ = [
    "CommitteeConfig",
    "ConfigError",
    "DataConfig",
    "DPConfig",
    "Experiment",
    "LocalConfig",
    "ProviderConfig",
    "load_experiment",
    "parse_experiment",
]

# The ML choices (models, partitions, behaviours, scoring rules, aggregation strategies) and their
# parameters come from fedcommittee.ml.registry, which needs no torch; the protocol's own come from
# the ledger's record vocabulary (the contract's constants); of the contract's acceptance rules the
# agents offer threshold and majority.
ACCEPTANCE_RULES = (AcceptRule.THRESHOLD.value, AcceptRule.MAJORITY.value)
MODES = tuple(m.value for m in Mode)
_USER = re.compile(r"^org(\d+)-(user\d+|admin)$")
_MSP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
ALLOCATION_RULES = tuple(a.value for a in AllocationRule)
GOVERNANCE_POLICIES = ("majority", "all")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _crypto_config_users() -> dict[int, int] | None:
    """Client users per org a new network gets: FC_USERS_PER_ORG, else network/fabric/crypto-config.yaml."""
    if (n := os.environ.get("FC_USERS_PER_ORG", "").strip()).isdigit() and int(n) > 0:
        return {org: int(n) for org in layout.ORGS}
    config = Path(__file__).resolve().parent.parent / "network" / "fabric" / "crypto-config.yaml"
    try:
        return layout.users_per_org(config)
    except (OSError, SystemExit):
        return None  # not in a source checkout: the count cannot be known here


def users_per_org(home: Path | None = None) -> tuple[dict[int, int] | None, str]:
    """Client users per org, and where that count comes from: the network at ``home`` (its
    connection.yaml lists the identities it was made with, FC_USERS_PER_ORG included), else what a
    new network would get. ``(None, why)`` where neither can be read."""
    if home is None:
        from fedcommittee.endpoints import default_home

        home = default_home()
    profile = Path(home) / "connection.yaml"
    try:
        names = (yaml.safe_load(profile.read_text()) or {}).get("identities") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        names = {}
    counts = {org: 0 for org in layout.ORGS}
    for name in names:
        m = _USER.match(str(name))
        if m and m.group(2) != "admin" and int(m.group(1)) in counts:
            counts[int(m.group(1))] = max(counts[int(m.group(1))], int(m.group(2)[4:]))
    if any(counts.values()):
        return counts, f"as the network at {home} was made, see its connection.yaml"
    users = _crypto_config_users()
    if users is None:
        return None, "unknown"
    if os.environ.get("FC_USERS_PER_ORG"):
        return users, f"FC_USERS_PER_ORG for a new network; none runs at {home}"
    return users, (f"network/fabric/crypto-config.yaml for a new network, FC_USERS_PER_ORG changes it; "
                   f"none runs at {home}")  # fmt: skip


def msp_of(user: str) -> str:
    """The MSP id of a profile identity name (``org2-user3`` -> ``Org2MSP``)."""
    return f"Org{_USER.match(user).group(1)}MSP"


class ConfigError(ValueError):
    """The experiment file is invalid; ``key`` names where."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")

    def __reduce__(self):
        # Rebuilt from its three parts, so that a worker process can send it back (pickle would call
        # __init__ with the message alone).
        return type(self), (self.source, self.key, self.problem)


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"
    max_samples: int = 0  # 0 = all
    val_fraction: float = 0.2
    test_source: str = ""  # "" = hold out test_fraction of source instead
    test_samples: int = 1000
    test_fraction: float = 0.2
    # Providers register their data's metadata on chain; the label histogram only with this consent.
    share_histogram: bool = False


@dataclass(frozen=True)
class LocalConfig:
    steps: int = 20
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    logit_adjust: float = 0.0
    # Round r of a federated model trains at lr * lr_decay ** (r - 1): late rounds take smaller
    # steps, so the global model settles instead of swinging with each round's skewed updates.
    lr_decay: float = 1.0


@dataclass(frozen=True)
class DPConfig:
    enabled: bool = False
    clip: float = 1.0
    noise_multiplier: float = 0.5
    target_delta: float = 1e-5


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    user: str
    behaviour: str = "honest"
    params: dict[str, float | bool | str] = field(default_factory=dict)
    dp: DPConfig | None = None  # None = the experiment's dp
    compression: str | None = None  # None = the experiment's compression


@dataclass(frozen=True)
class CommitteeConfig:
    name: str
    user: str


@dataclass(frozen=True)
class ScoringConfig:
    rule: str = "trust"
    metric: str = "loss"
    threshold: float | None = None
    damping: float = 10.0
    max_norm_ratio: float = 3.0
    peer_fraction: float = 0.25
    reference_steps: int = 20
    reference_lr: float = 0.05
    # The effect rule's tests (ml.scoring): the cosine floor and the standard-error margins.
    cos_floor: float = 0.01
    rescue_se: float = 1.0
    sym_se: float = 1.0
    loo_se: float | None = None  # None: no leave-one-out test
    guard_se: float | None = None  # None: the point of the test is never rebuilt
    twin_ratio: float = 0.0  # near-copies of an earlier update of the round are rejected (0: off)
    # Probation: the bars for a provider rejected in one of the last probation_rounds rounds (gossip:
    # among its last probation_rounds updates; 0: off).
    probation_rounds: int = 0
    probation_cos_floor: float = 0.01
    probation_sym_se: float = 1.0
    probation_rescue_se: float = 1.0
    probation_until_accepted: bool = False  # also on probation: a provider with no update accepted yet


@dataclass(frozen=True)
class RewardsConfig:
    accept_reward: int = 10
    reject_penalty: int = 2
    verdict_reward: int = 1


@dataclass(frozen=True)
class GossipConfig:
    updates_per_provider: int = 3
    max_parents: int = 2
    recency: int = 10  # only the newest N accepted updates are parent candidates
    # A provider's next update waits until its parents come from this many providers (its own
    # model counts), or settle_seconds: an update built on one provider's model alone keeps that
    # provider's skew, and the run's final mix then averages less.
    min_parents: int = 1


@dataclass(frozen=True)
class AllocationConfig:
    rule: str = AllocationRule.ALL  # all | random (verifiable draw from an on-chain seed) | reputation
    k: int = 0  # providers per round (random, reputation)


@dataclass(frozen=True)
class StoppingConfig:
    """Stop on the committee's median shard accuracy of the confirmed aggregate."""

    target: float | None = None
    patience: int = 0
    min_delta: float = 0.0


@dataclass(frozen=True)
class GovernanceConfig:
    policy: str = "majority"  # majority | all of the orgs' admins
    orgs: tuple[str, ...] = ()  # MSP ids; () = every org of the publisher, committee and providers


@dataclass(frozen=True)
class ProfileConfig:
    """What the publisher declares for the committee's approval check (purpose, data, sizes)."""

    purpose: str = ""
    training_samples: int = 0  # 0 = what the providers hold under this config


@dataclass(frozen=True)
class Experiment:
    name: str
    model: str
    providers: tuple[ProviderConfig, ...]
    committee: tuple[CommitteeConfig, ...]
    publisher: str
    model_id: str = ""
    seed: int = 0
    mode: str = Mode.FEDERATED
    rounds: int = 3
    min_accepted: int = 2
    deadline_seconds: int = 300
    quorum: int = 0  # 0 = majority of the committee
    settle_seconds: float = 20.0
    aggregation: str = "fedavg"  # a strategy of ml.registry.STRATEGIES ...
    aggregation_params: dict[str, float | bool] = field(default_factory=dict)  # ... and its keywords
    acceptance: str = AcceptRule.THRESHOLD
    data: DataConfig = field(default_factory=DataConfig)
    partition: str = "iid"
    partition_params: dict[str, float] = field(default_factory=dict)
    local: LocalConfig = field(default_factory=LocalConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    stopping: StoppingConfig | None = None
    governance: GovernanceConfig | None = None
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    compression: str = "float32"
    # Providers seal each update to the model's committee and publisher (roles.envelopes.update_recipients).
    encrypt_updates: bool = False
    max_update_bytes: int = 64 << 20
    # `fedcommittee run` hosts this many providers per process (threads): each process imports torch
    # once (~0.3 GB here), so 100 providers fit on a small machine. 1 = one process per provider.
    providers_per_process: int = 1
    source: str = "<config>"

    # ------------------------------------------------------------------ derived
    @property
    def effective_quorum(self) -> int:
        return self.quorum or len(self.committee) // 2 + 1

    def provider(self, name: str) -> ProviderConfig:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(f"no provider named {name!r} (have {[p.name for p in self.providers]})")

    def provider_compression(self, name: str) -> str:
        return self.provider(name).compression or self.compression

    def governance_orgs(self) -> tuple[str, ...]:
        """MSP ids whose admins vote on rule changes (config, else every participating org)."""
        if self.governance is None:
            return ()
        if self.governance.orgs:
            return self.governance.orgs
        users = [self.publisher] + [m.user for m in self.committee] + [p.user for p in self.providers]
        return tuple(sorted({msp_of(u) for u in users}))

    def provider_index(self, name: str) -> int:
        return [p.name for p in self.providers].index(name)

    def member(self, name: str) -> CommitteeConfig:
        for m in self.committee:
            if m.name == name:
                return m
        raise KeyError(f"no committee member named {name!r} (have {[m.name for m in self.committee]})")

    def train_config(self, seed: int, round_no: int = 1):
        """A provider's local training in round ``round_no`` (federated; gossip updates use 1)."""
        from fedcommittee import ml

        c = self.local
        return ml.TrainConfig(
            steps=c.steps,
            batch_size=c.batch_size,
            lr=c.lr * c.lr_decay ** (round_no - 1),
            optimizer=c.optimizer,
            momentum=c.momentum,
            logit_adjust=c.logit_adjust,
            seed=seed,
        )

    def with_model_id(self, model_id: str) -> Experiment:
        return replace(self, model_id=model_id)

    def digest(self) -> str:
        """Short hash of the configuration (for logs and reports)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------- parsing


class _Reader:
    def __init__(self, source: str, users: dict[int, int] | None = None, users_from: str = "") -> None:
        self.source = source
        self.users = users  # client users per org where known (users_per_org), else None
        self.users_from = users_from

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def mapping(self, value: Any, key: str, allowed: set[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key or "<top level>", f"must be a mapping, got {type(value).__name__}")
        for k in value:
            if k not in allowed:
                where = f"{key}.{k}" if key else str(k)
                raise self.fail(where, f"unknown key (allowed: {sorted(allowed)})")
        return value

    def num(self, d: Mapping, k: str, key: str, default, *, kind=float, lo=None, hi=None, lo_open=False):
        if k not in d or d[k] is None:
            return default
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            raise self.fail(key, f"must be {'an integer' if kind is int else 'a number'}, got {v!r}")
        if not math.isfinite(v):
            raise self.fail(key, f"must be a finite number, got {v!r}")
        below = lo is not None and (v <= lo if lo_open else v < lo)
        if lo is not None and hi is not None and (below or v > hi):  # name the whole range
            raise self.fail(key, f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")
        if below:
            raise self.fail(key, f"must be {'>' if lo_open else '>='} {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise self.fail(key, f"must be <= {hi}, got {v!r}")
        return kind(v)

    def text(self, d: Mapping, k: str, key: str, default: str | None, choices=None) -> str:
        if k not in d or d[k] is None:
            if default is None:
                raise self.fail(key, "is required")
            return default
        v = d[k]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"must be a non-empty string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.fail(key, f"must be one of {list(choices)}, got {v!r}")
        return v.strip()

    def flag(self, d: Mapping, k: str, key: str, default: bool) -> bool:
        if k not in d or d[k] is None:
            return default
        if not isinstance(d[k], bool):
            raise self.fail(key, f"must be true or false, got {d[k]!r}")
        return d[k]

    def user(self, d: Mapping, k: str, key: str) -> str:
        u = self.text(d, k, key, None)
        m = _USER.match(u)
        orgs = ", ".join(f"org{n}" for n in layout.ORGS)
        if not m:
            raise self.fail(key, f"must name a profile identity like 'org2-user3' or 'org1-admin' "
                                 f"(orgs: {orgs}), got {u!r}")  # fmt: skip
        org = int(m.group(1))
        if org not in layout.ORGS:
            raise self.fail(key, f"{u!r}: there is no org{org} in the network (orgs: {orgs})")
        if m.group(2) != "admin":
            number = int(m.group(2)[4:])
            count = (self.users or {}).get(org)
            if number < 1 or (count is not None and number > count):
                valid = f"org{org}-user1 .. org{org}-user{count}" if count else f"org{org}-user1 and up"
                why = f" ({count} client users in org{org}: {self.users_from})" if count else ""
                raise self.fail(key, f"{u!r} does not exist: org{org} has {valid} and org{org}-admin{why}")
        return u

    def choice_params(self, value: Any, key: str, schema: dict, what: str) -> dict[str, float | bool]:
        """The ``params`` of a registry choice, checked against its schema (``ml.registry``)."""
        if value is not None and not isinstance(value, Mapping):
            raise self.fail(key, "must be a mapping of parameter name to value")
        params = {str(k): v for k, v in (value or {}).items()}
        if bad := registry.params_problem(schema, params):
            name, problem = bad
            raise self.fail(f"{key}.{name}", f"{problem} ({what})")
        return params

    def data_source(self, d: Mapping, k: str, key: str, default: str) -> str:
        v = self.text(d, k, key, default)
        if problem := registry.source_problem(v):  # names the valid sources (registry.DATA_SOURCES)
            raise self.fail(key, problem)
        return v

    def dp(self, value: Any, key: str) -> DPConfig:
        d = self.mapping(value, key, {"enabled", "clip", "noise_multiplier", "target_delta"})
        base = DPConfig()
        cfg = DPConfig(
            enabled=self.flag(d, "enabled", f"{key}.enabled", base.enabled),
            clip=self.num(d, "clip", f"{key}.clip", base.clip, lo=0, lo_open=True),
            noise_multiplier=self.num(d, "noise_multiplier", f"{key}.noise_multiplier", 0.5, lo=0),
            target_delta=self.num(d, "target_delta", f"{key}.target_delta", 1e-5, lo=0, hi=1, lo_open=True),
        )
        if cfg.enabled and cfg.noise_multiplier == 0:
            # Clipping alone is no differential privacy: epsilon would be infinite.
            raise self.fail(
                f"{key}.noise_multiplier", "must be > 0 when dp is enabled (0 gives epsilon = inf)"
            )
        return cfg


_TOP = {
    "name", "model_id", "seed", "model", "mode", "rounds", "min_accepted", "deadline_seconds", "quorum",
    "settle_seconds", "aggregation", "acceptance", "data", "partition", "local", "scoring", "dp", "rewards",
    "gossip", "publisher", "committee", "providers", "max_update_bytes", "allocation", "stopping",
    "governance", "profile", "compression", "encrypt_updates", "providers_per_process",
}  # fmt: skip


def parse_experiment(
    data: Any, source: str = "<config>", *, users: dict[int, int] | None = None, users_from: str = ""
) -> Experiment:
    """Validate a parsed YAML document into an :class:`Experiment` (one reader per config block below).

    ``users`` (client users per org, see :func:`users_per_org`) bounds the user numbers identities
    may have; None checks only that each identity's org exists."""
    r = _Reader(source, users, users_from)
    top = r.mapping(data, "", _TOP)
    if not top:
        raise r.fail("<top level>", "empty configuration")
    name = r.text(top, "name", "name", None)
    model_id = r.text(top, "model_id", "model_id", "") if top.get("model_id") is not None else ""
    if model_id and not _MODEL_ID.match(model_id):
        raise r.fail("model_id", f"must be 1-64 of [A-Za-z0-9._-], got {model_id!r}")
    model = r.text(top, "model", "model", None, choices=registry.MODELS)
    data_cfg = _data(r, top)
    partition, partition_params = _named_choice(r, top, "partition", "iid", registry.PARTITIONS)
    aggregation, aggregation_params = _named_choice(r, top, "aggregation", "fedavg", registry.STRATEGIES)
    exp = Experiment(  # the blocks are read in this order, so the first bad key is named
        name=name,
        model=model,
        model_id=model_id,
        data=data_cfg,
        partition=partition,
        partition_params=partition_params,
        aggregation=aggregation,
        aggregation_params=aggregation_params,
        local=_local(r, top),
        scoring=_scoring(r, top),
        rewards=_rewards(r, top),
        gossip=_gossip(r, top),
        dp=r.dp(top.get("dp"), "dp"),
        allocation=_allocation(r, top),
        stopping=_stopping(r, top),
        governance=_governance(r, top),
        profile=_profile(r, top),
        compression=_scheme(r, top.get("compression"), "compression") or "float32",
        publisher=r.user(top, "publisher", "publisher"),
        committee=_committee(r, top),
        providers=_providers(r, top),
        source=source,
        **_protocol(r, top),
    )
    _check_consistency(exp, r)
    return exp


def _protocol(r: _Reader, top: Mapping) -> dict[str, Any]:
    """The top-level scalars: rounds, their closing rules, acceptance, sizes."""
    return dict(
        seed=r.num(top, "seed", "seed", 0, kind=int, lo=0),
        mode=r.text(top, "mode", "mode", Mode.FEDERATED, choices=MODES),
        rounds=r.num(top, "rounds", "rounds", 3, kind=int, lo=1, hi=10000),
        min_accepted=r.num(top, "min_accepted", "min_accepted", 2, kind=int, lo=1),
        deadline_seconds=r.num(top, "deadline_seconds", "deadline_seconds", 300, kind=int, lo=1),
        quorum=r.num(top, "quorum", "quorum", 0, kind=int, lo=0),
        settle_seconds=r.num(top, "settle_seconds", "settle_seconds", 20.0, lo=0),
        acceptance=r.text(top, "acceptance", "acceptance", AcceptRule.THRESHOLD, choices=ACCEPTANCE_RULES),
        encrypt_updates=r.flag(top, "encrypt_updates", "encrypt_updates", False),
        max_update_bytes=r.num(top, "max_update_bytes", "max_update_bytes", 64 << 20, kind=int, lo=1024),
        providers_per_process=r.num(
            top, "providers_per_process", "providers_per_process", 1, kind=int, lo=1, hi=1000
        ),
    )


def _named_choice(
    r: _Reader, top: Mapping, key: str, default: str, table: dict[str, dict[str, registry.Param]]
) -> tuple[str, dict[str, float | bool]]:
    """A registry choice written as ``key: name`` or ``key: {name: ..., params: {...}}``."""
    value = top.get(key, default)
    if isinstance(value, str):
        value = {"name": value}
    d = r.mapping(value, key, {"name", "params"})
    name = r.text(d, "name", f"{key}.name", default, choices=tuple(table))
    return name, r.choice_params(d.get("params"), f"{key}.params", table[name], f"{key} {name!r}")


def _data(r: _Reader, top: Mapping) -> DataConfig:
    d = r.mapping(top.get("data"), "data", {
        "source", "max_samples", "val_fraction", "test_source", "test_samples", "test_fraction",
        "share_histogram"})  # fmt: skip
    dflt = DataConfig()
    return DataConfig(
        source=r.data_source(d, "source", "data.source", dflt.source),
        max_samples=r.num(d, "max_samples", "data.max_samples", 0, kind=int, lo=0),
        val_fraction=r.num(
            d, "val_fraction", "data.val_fraction", dflt.val_fraction, lo=0, hi=0.9, lo_open=True
        ),
        test_source=r.data_source(d, "test_source", "data.test_source", "") if d.get("test_source") else "",
        test_samples=r.num(d, "test_samples", "data.test_samples", dflt.test_samples, kind=int, lo=1),
        test_fraction=r.num(d, "test_fraction", "data.test_fraction", 0.2, lo=0, hi=0.9, lo_open=True),
        share_histogram=r.flag(d, "share_histogram", "data.share_histogram", False),
    )


def _local(r: _Reader, top: Mapping) -> LocalConfig:
    keys = {"steps", "batch_size", "lr", "optimizer", "momentum", "logit_adjust", "lr_decay"}
    lc = r.mapping(top.get("local"), "local", keys)
    return LocalConfig(
        steps=r.num(lc, "steps", "local.steps", 20, kind=int, lo=1),
        batch_size=r.num(lc, "batch_size", "local.batch_size", 32, kind=int, lo=1),
        lr=r.num(lc, "lr", "local.lr", 0.05, lo=0, lo_open=True),
        optimizer=r.text(lc, "optimizer", "local.optimizer", "sgd", choices=("sgd", "adam")),
        momentum=r.num(lc, "momentum", "local.momentum", 0.0, lo=0, hi=1),
        logit_adjust=r.num(lc, "logit_adjust", "local.logit_adjust", 0.0, lo=0, hi=4),
        lr_decay=r.num(lc, "lr_decay", "local.lr_decay", 1.0, lo=0, hi=1, lo_open=True),
    )


def _scoring(r: _Reader, top: Mapping) -> ScoringConfig:
    sc = r.mapping(top.get("scoring"), "scoring", {
        "rule", "metric", "threshold", "damping", "max_norm_ratio", "peer_fraction", "reference_steps",
        "reference_lr", "cos_floor", "rescue_se", "sym_se", "loo_se", "guard_se", "twin_ratio",
        "probation_rounds", "probation_cos_floor", "probation_sym_se", "probation_rescue_se",
        "probation_until_accepted"})  # fmt: skip
    return ScoringConfig(
        rule=r.text(sc, "rule", "scoring.rule", "trust", choices=registry.SCORING_RULES),
        metric=r.text(sc, "metric", "scoring.metric", "loss", choices=registry.SCORING_METRICS),
        threshold=r.num(sc, "threshold", "scoring.threshold", None),
        damping=r.num(sc, "damping", "scoring.damping", 10.0, lo=0, lo_open=True),
        max_norm_ratio=r.num(sc, "max_norm_ratio", "scoring.max_norm_ratio", 3.0, lo=0, lo_open=True),
        peer_fraction=r.num(sc, "peer_fraction", "scoring.peer_fraction", 0.25, lo=0, hi=1),
        reference_steps=r.num(sc, "reference_steps", "scoring.reference_steps", 20, kind=int, lo=1),
        reference_lr=r.num(sc, "reference_lr", "scoring.reference_lr", 0.05, lo=0, lo_open=True),
        cos_floor=r.num(sc, "cos_floor", "scoring.cos_floor", 0.01, lo=-1, hi=1),
        rescue_se=r.num(sc, "rescue_se", "scoring.rescue_se", 1.0, lo=0),
        sym_se=r.num(sc, "sym_se", "scoring.sym_se", 1.0, lo=0),
        loo_se=r.num(sc, "loo_se", "scoring.loo_se", None, lo=0),
        guard_se=r.num(sc, "guard_se", "scoring.guard_se", None, lo=0),
        # Past 0.4 of the median pairwise distance honest updates come near: the nearest honest pair
        # of the committee grid's clean rounds sat at 0.43 (docs/ml.md, "Near-copies").
        twin_ratio=r.num(sc, "twin_ratio", "scoring.twin_ratio", 0.0, lo=0, hi=0.4),
        probation_rounds=r.num(sc, "probation_rounds", "scoring.probation_rounds", 0, kind=int, lo=0),
        probation_cos_floor=r.num(sc, "probation_cos_floor", "scoring.probation_cos_floor", 0.01, lo=-1),
        probation_sym_se=r.num(sc, "probation_sym_se", "scoring.probation_sym_se", 1.0, lo=0),
        probation_rescue_se=r.num(sc, "probation_rescue_se", "scoring.probation_rescue_se", 1.0, lo=0),
        probation_until_accepted=r.flag(
            sc, "probation_until_accepted", "scoring.probation_until_accepted", False
        ),
    )


def _rewards(r: _Reader, top: Mapping) -> RewardsConfig:
    rw = r.mapping(top.get("rewards"), "rewards", {"accept_reward", "reject_penalty", "verdict_reward"})
    return RewardsConfig(
        accept_reward=r.num(rw, "accept_reward", "rewards.accept_reward", 10, kind=int, lo=0),
        reject_penalty=r.num(rw, "reject_penalty", "rewards.reject_penalty", 2, kind=int, lo=0),
        verdict_reward=r.num(rw, "verdict_reward", "rewards.verdict_reward", 1, kind=int, lo=0),
    )


def _gossip(r: _Reader, top: Mapping) -> GossipConfig:
    gs = r.mapping(
        top.get("gossip"), "gossip", {"updates_per_provider", "max_parents", "recency", "min_parents"}
    )
    return GossipConfig(
        updates_per_provider=r.num(
            gs, "updates_per_provider", "gossip.updates_per_provider", 3, kind=int, lo=1
        ),
        max_parents=r.num(gs, "max_parents", "gossip.max_parents", 2, kind=int, lo=1, hi=16),
        recency=r.num(gs, "recency", "gossip.recency", 10, kind=int, lo=1),
        min_parents=r.num(gs, "min_parents", "gossip.min_parents", 1, kind=int, lo=1, hi=16),
    )


def _allocation(r: _Reader, top: Mapping) -> AllocationConfig:
    al = r.mapping(top.get("allocation"), "allocation", {"rule", "k"})
    return AllocationConfig(
        rule=r.text(al, "rule", "allocation.rule", AllocationRule.ALL, choices=ALLOCATION_RULES),
        k=r.num(al, "k", "allocation.k", 0, kind=int, lo=0),
    )


def _stopping(r: _Reader, top: Mapping) -> StoppingConfig | None:
    if top.get("stopping") is None:
        return None
    st = r.mapping(top["stopping"], "stopping", {"target", "patience", "min_delta"})
    stopping = StoppingConfig(
        target=r.num(st, "target", "stopping.target", None, lo=0, hi=1),
        patience=r.num(st, "patience", "stopping.patience", 0, kind=int, lo=0),
        min_delta=r.num(st, "min_delta", "stopping.min_delta", 0.0, lo=0, hi=1),
    )
    if stopping.target is None and not stopping.patience:
        raise r.fail("stopping", "give a target (shard accuracy in (0, 1]), a patience (rounds), or both")
    return stopping


def _governance(r: _Reader, top: Mapping) -> GovernanceConfig | None:
    if top.get("governance") is None:
        return None
    gv = r.mapping(top["governance"], "governance", {"policy", "orgs"})
    orgs = gv.get("orgs") or []
    if not isinstance(orgs, list) or not all(isinstance(o, str) and _MSP.match(o) for o in orgs):
        raise r.fail("governance.orgs", f"must be a list of MSP ids like 'Org1MSP', got {orgs!r}")
    msps = [layout.msp_id(n) for n in layout.ORGS]
    for i, o in enumerate(orgs):
        if o not in msps:  # its admins do not exist: no vote of that org could ever be cast
            raise r.fail(f"governance.orgs[{i}]", f"no org {o!r} in the network (orgs: {msps})")
    return GovernanceConfig(
        policy=r.text(gv, "policy", "governance.policy", "majority", choices=GOVERNANCE_POLICIES),
        orgs=tuple(orgs),
    )


def _profile(r: _Reader, top: Mapping) -> ProfileConfig:
    pf = r.mapping(top.get("profile"), "profile", {"purpose", "training_samples"})
    return ProfileConfig(
        purpose=r.text(pf, "purpose", "profile.purpose", ""),
        training_samples=r.num(pf, "training_samples", "profile.training_samples", 0, kind=int, lo=0),
    )


def _committee(r: _Reader, top: Mapping) -> tuple[CommitteeConfig, ...]:
    comm_raw = top.get("committee")
    if not isinstance(comm_raw, list) or not comm_raw:
        raise r.fail("committee", "must be a non-empty list of members")
    committee = []
    for i, m in enumerate(comm_raw):
        key = f"committee[{i}]"
        mm = r.mapping(m, key, {"name", "user"})
        user = r.user(mm, "user", f"{key}.user")
        committee.append(CommitteeConfig(name=r.text(mm, "name", f"{key}.name", f"member{i + 1}"), user=user))
    return tuple(committee)


def _providers(r: _Reader, top: Mapping) -> tuple[ProviderConfig, ...]:
    prov_raw = top.get("providers")
    if not isinstance(prov_raw, list) or not prov_raw:
        raise r.fail("providers", "must be a non-empty list of providers")
    providers = []
    for i, pr in enumerate(prov_raw):
        key = f"providers[{i}]"
        pm = r.mapping(pr, key, {"name", "user", "behaviour", "params", "dp", "compression"})
        behaviour = r.text(pm, "behaviour", f"{key}.behaviour", "honest", choices=tuple(registry.BEHAVIOURS))
        schema = registry.BEHAVIOURS[behaviour]
        providers.append(
            ProviderConfig(
                name=r.text(pm, "name", f"{key}.name", f"provider{i + 1}"),
                user=r.user(pm, "user", f"{key}.user"),
                behaviour=behaviour,
                params=r.choice_params(pm.get("params"), f"{key}.params", schema, f"behaviour {behaviour!r}"),
                dp=r.dp(pm["dp"], f"{key}.dp") if pm.get("dp") is not None else None,
                compression=_scheme(r, pm.get("compression"), f"{key}.compression"),
            )
        )
    return tuple(providers)


def _scheme(r: _Reader, value: Any, key: str) -> str | None:
    """A compression scheme name (``float16``, ``int8+topk:0.1``, ...) in canonical form, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise r.fail(key, f"must be a scheme name like 'float16' or 'int8+topk:0.1', got {value!r}")
    try:
        return get_scheme(value).name
    except ValueError as exc:
        raise r.fail(key, str(exc)) from None


def _check_probation(exp: Experiment, r: _Reader) -> None:
    """Probation is the effect rule's, and its bars may only be stricter than the others. (In gossip
    mode ``probation_rounds`` counts the provider's own updates: the contract records its standing.)"""
    sc = exp.scoring
    if not sc.probation_rounds:
        if sc.probation_until_accepted:
            raise r.fail("scoring.probation_until_accepted", "needs scoring.probation_rounds (1 or more)")
        return
    if sc.rule != "effect":
        raise r.fail("scoring.probation_rounds", f"probation is the effect rule's, not {sc.rule!r}'s")
    for key, mine, base, at_least in (
        ("probation_cos_floor", sc.probation_cos_floor, sc.cos_floor, True),
        ("probation_sym_se", sc.probation_sym_se, sc.sym_se, False),
        ("probation_rescue_se", sc.probation_rescue_se, sc.rescue_se, True),
    ):
        if mine < base if at_least else mine > base:
            plain, bound = key.removeprefix("probation_"), "at least" if at_least else "at most"
            raise r.fail(
                f"scoring.{key}",
                f"{mine} is looser than scoring.{plain} ({base}): on probation a provider must meet bars "
                f"at least as strict ({bound} {base})",
            )


def _check_consistency(exp: Experiment, r: _Reader) -> None:
    names = [p.name for p in exp.providers]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise r.fail(f"providers[{i}].name", f"duplicate provider name {n!r}")
    users = [p.user for p in exp.providers]
    for i, u in enumerate(users):
        if users.index(u) != i:
            raise r.fail(f"providers[{i}].user", f"identity {u!r} already used by another provider")
    members = [m.user for m in exp.committee]
    for i, u in enumerate(members):
        if members.index(u) != i:
            raise r.fail(f"committee[{i}].user", f"identity {u!r} listed twice")
        if u in users:
            raise r.fail(
                f"committee[{i}].user", f"identity {u!r} is also a provider (it may not judge itself)"
            )
    mnames = [m.name for m in exp.committee]
    for i, n in enumerate(mnames):
        if mnames.index(n) != i:
            raise r.fail(f"committee[{i}].name", f"duplicate member name {n!r}")
    classes = exp.partition_params.get("classes")
    if isinstance(classes, list) and len(classes) != len(exp.providers):
        raise r.fail(
            "partition.params.classes",
            f"names {len(classes)} dominant classes for {len(exp.providers)} providers (one per provider)",
        )
    if exp.quorum > len(exp.committee):
        raise r.fail("quorum", f"{exp.quorum} exceeds the committee size {len(exp.committee)}")
    if exp.min_accepted > len(exp.providers):
        raise r.fail(
            "min_accepted", f"{exp.min_accepted} exceeds the number of providers {len(exp.providers)}"
        )
    _check_probation(exp, r)
    if exp.scoring.guard_se is not None and exp.scoring.rule != "effect":
        raise r.fail(
            "scoring.guard_se",
            f"the guarded point of the test is the effect rule's, not {exp.scoring.rule!r}'s",
        )
    if exp.scoring.twin_ratio and exp.scoring.rule != "effect":
        raise r.fail(
            "scoring.twin_ratio", f"the near-copy screen is the effect rule's, not {exp.scoring.rule!r}'s"
        )
    if exp.gossip.max_parents > 16:
        raise r.fail("gossip.max_parents", "at most 16")
    if exp.gossip.min_parents > exp.gossip.max_parents:
        raise r.fail(
            "gossip.min_parents",
            f"{exp.gossip.min_parents} exceeds gossip.max_parents ({exp.gossip.max_parents})",
        )
    compressed = exp.compression != "float32" or any(
        p.compression not in (None, "float32") for p in exp.providers
    )
    federated_only = {"allocation": exp.allocation.rule != AllocationRule.ALL,
                      "stopping": exp.stopping is not None, "compression": compressed,
                      "local.lr_decay": exp.local.lr_decay != 1.0}  # fmt: skip
    for key, used in federated_only.items():
        if used and exp.mode != Mode.FEDERATED:
            raise r.fail(key, "only federated models have rounds (remove it for gossip mode)")
    a = exp.allocation
    if a.rule == AllocationRule.ALL and a.k:
        raise r.fail("allocation.k", "not used by rule 'all' (every provider trains)")
    if a.rule != AllocationRule.ALL:
        if not a.k:
            raise r.fail("allocation.k", f"rule {a.rule!r} needs k >= 1 providers per round")
        if a.k < exp.min_accepted:
            raise r.fail(
                "allocation.k", f"{a.k} is below min_accepted {exp.min_accepted}: no round could close early"
            )
    if exp.stopping is not None and exp.stopping.patience > exp.rounds:
        raise r.fail("stopping.patience", f"{exp.stopping.patience} exceeds rounds {exp.rounds}")


def load_experiment(path: str | Path, *, model_id: str | None = None, home: Path | None = None) -> Experiment:
    """Read and validate an experiment file. Identities are checked against the users of the
    network at ``home`` (default: $FC_HOME, else ./.fedcommittee), else those a new one would get."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), "<file>", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "<yaml>", f"not valid YAML: {exc}") from None
    users, users_from = users_per_org(home)
    exp = parse_experiment(data, source=str(path), users=users, users_from=users_from)
    if model_id:
        if not _MODEL_ID.match(model_id):
            raise ConfigError(str(path), "model_id", f"must be 1-64 of [A-Za-z0-9._-], got {model_id!r}")
        exp = exp.with_model_id(model_id)
    return exp


# ------------------------------------------------------------------------------------ data split


@dataclass(frozen=True)
class DataSplit:
    train: Any  # ml.Dataset pooled across providers
    val: Any  # the publisher's validation set (split into committee shards)
    test: Any  # held-out test set for reports / audit accuracy
    partition: list  # index arrays into train, one per provider


_SPLITS: dict[str, DataSplit] = {}
_SPLITS_LOCK = threading.Lock()  # providers hosted in one process share one split


def _split(exp: Experiment) -> DataSplit:
    import numpy as np

    from fedcommittee import ml

    d = exp.data
    full = ml.load_dataset(d.source)
    rng = np.random.default_rng(exp.seed)
    if d.test_source:
        pool = full
        test = ml.load_dataset(d.test_source)
    else:
        pool, test = ml.train_val_split(full, d.test_fraction, exp.seed + 7)
    if d.max_samples and len(pool) > d.max_samples:
        pool = pool.subset(np.sort(rng.choice(len(pool), d.max_samples, replace=False)))
    if len(test) > d.test_samples:
        test = test.subset(np.sort(rng.choice(len(test), d.test_samples, replace=False)))
    train, val = ml.train_val_split(pool, d.val_fraction, exp.seed + 1)
    partition = ml.make_partition(
        exp.partition, train.y.numpy(), len(exp.providers), exp.seed + 2, **exp.partition_params
    )
    return DataSplit(train=train, val=val, test=test, partition=partition)


def data_split(exp: Experiment) -> DataSplit:
    """The experiment's deterministic split: same config, same split, in every process."""
    key = repr(replace(exp, model_id="", source=""))
    with _SPLITS_LOCK:
        if key not in _SPLITS:
            _SPLITS[key] = _split(exp)
        return _SPLITS[key]
