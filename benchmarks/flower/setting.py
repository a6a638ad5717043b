"""One benchmark setting, shared by the fedcommittee side and the Flower side.

A setting names the partition, the model, the local work, the rounds and the attackers. From it
``experiment_doc`` builds the fedcommittee experiment config, and both sides take their data from
that experiment's deterministic split (``fedcommittee.experiment.data_split``): the same providers
hold the same samples, the same test split scores both, and the initial weights are the same.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

# Benchmark partitions -> (fedcommittee partition name, its parameters).
PARTITIONS = {
    "dominant": ("dominant_class", {"share": 0.8}),
    "onecls": ("one_class_per_client", {}),
    "dir0.1": ("dirichlet", {"alpha": 0.1}),
    "dir0.5": ("dirichlet", {"alpha": 0.5}),
}
ORGS = ("org1", "org2", "org3")
# The fedcommittee side's committee: name -> (scoring rule, its parameters beyond the setting's
# reference training). `trust` is the rule before issue 17 (the comparison's first runs);
# `effect_mainjob` the main job's bars before probation, `effect_probation` its bars before trust had
# to be earned, `effect_probation_start` the committee before the guard,
# `effect_probation_start_sym1_guard3` the committee before the near-copy screen,
# `effect_probation_start_sym1_guard3_twin20` configs/default.yaml's committee (held equal to it by a test).
COMMITTEES = {
    "trust": ("trust", {}),
    "effect_mainjob": ("effect", {"cos_floor": -0.05, "sym_se": 10.0}),
    # The main job's bars made lenient (cos_floor -0.2) for providers in good standing, with
    # effect's own 0.01 for one rejected in the last round (docs/ml.md, "Probation").
    "effect_probation": (
        "effect",
        {
            "cos_floor": -0.2,
            "sym_se": 10.0,
            "probation_rounds": 1,
            "probation_cos_floor": 0.01,
            "probation_sym_se": 10.0,
        },
    ),
}
# The same, with a provider also on probation until one of its updates has been accepted
# (docs/ml.md, "Trust earned at the tight bars"): configs/default.yaml's committee.
COMMITTEES["effect_probation_start"] = (
    "effect",
    {**COMMITTEES["effect_probation"][1], "probation_until_accepted": True},
)
# The same with sym_se 1 on probation and the point of the test guarded (guard_se 3; docs/ml.md, "The
# backdoor's stall"): configs/default.yaml's committee until near-copies were screened.
COMMITTEES["effect_probation_start_sym1_guard3"] = (
    "effect",
    {**COMMITTEES["effect_probation_start"][1], "probation_sym_se": 1.0, "guard_se": 3.0},
)
# That with near-copies of an earlier update of the round rejected (twin_ratio 0.2; docs/ml.md,
# "Near-copies"): configs/default.yaml's committee.
COMMITTEES["effect_probation_start_sym1_guard3_twin20"] = (
    "effect",
    {**COMMITTEES["effect_probation_start_sym1_guard3"][1], "twin_ratio": 0.2},
)
# fedcommittee's aggregation: FedAvg, or FedAvg with server momentum (Hsu et al. 2019), the
# configured `aggregation: {name: fedavgm}`; Flower's FedAvgM strategy takes the same momentum.
AGGREGATIONS = ("fedavg", "fedavgm")
SERVER_MOMENTUM = 0.9


@dataclass(frozen=True)
class Setting:
    partition: str = "dominant"
    model: str = "cnn-small"
    providers: int = 10
    members: int = 3
    rounds: int = 30
    steps: int = 20
    batch_size: int = 32
    lr: float = 0.03
    momentum: float = 0.9
    max_samples: int = 24000
    test_samples: int = 10000
    seed: int = 0
    attack: str = "honest"
    attack_fraction: float = 0.0
    committee: str = "trust"  # fedcommittee only: a COMMITTEES name (result files before it: trust)
    aggregation: str = "fedavg"  # fedcommittee only: an AGGREGATIONS name
    providers_per_process: int = 1  # fedcommittee only: providers hosted per agent process
    # fedcommittee only: a round closes when every provider's update is judged, or when no update came
    # for settle_seconds (nothing pending), or at the deadline. Scale runs raise both so that a round
    # waits for every allocated provider.
    settle_seconds: float = 10.0
    deadline_seconds: int = 300

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise ValueError(f"unknown partition {self.partition!r} (have {sorted(PARTITIONS)})")
        if self.committee not in COMMITTEES:
            raise ValueError(f"unknown committee {self.committee!r} (have {sorted(COMMITTEES)})")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r} (have {', '.join(AGGREGATIONS)})")
        if not 0.0 <= self.attack_fraction < 1.0:
            raise ValueError(f"attack_fraction must be in [0, 1), got {self.attack_fraction}")
        if not 0 < self.settle_seconds <= self.deadline_seconds:
            bound = f"(0, deadline_seconds={self.deadline_seconds}]"
            raise ValueError(f"settle_seconds must be in {bound}, got {self.settle_seconds}")

    @property
    def n_attackers(self) -> int:
        return 0 if self.attack == "honest" else round(self.attack_fraction * self.providers)

    def attackers(self) -> list[int]:
        """Indices of the malicious providers: a seeded draw, the same on both sides."""
        rng = np.random.default_rng(self.seed + 99)
        return sorted(rng.choice(self.providers, size=self.n_attackers, replace=False).tolist())

    def behaviours(self) -> list[str]:
        bad = set(self.attackers())
        return [self.attack if i in bad else "honest" for i in range(self.providers)]

    def clean(self) -> Setting:
        return replace(self, attack="honest", attack_fraction=0.0)

    def tag(self) -> str:
        t = f"{self.partition}-{self.model}-p{self.providers}-m{self.members}-r{self.rounds}-s{self.steps}"
        if self.n_attackers:
            t += f"-{self.attack}{round(100 * self.attack_fraction)}"
        if self.providers_per_process > 1:
            t += f"-pp{self.providers_per_process}"
        if (self.settle_seconds, self.deadline_seconds) != (10.0, 300):
            t += f"-w{self.settle_seconds:g}d{self.deadline_seconds}"
        # Suffixes only off the first runs' values, so that their result files keep their names.
        if self.committee != "trust":
            t += f"-{self.committee}"
        if self.aggregation != "fedavg":
            t += f"-{self.aggregation}"
        if self.seed:
            t += f"-seed{self.seed}"
        return t

    def without_committee(self) -> Setting:
        """The setting as Flower sees it: its strategy names its aggregation, and it has no committee
        (one Flower result serves every committee and aggregation of fedcommittee)."""
        return replace(self, committee=Setting.committee, aggregation=Setting.aggregation)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Setting:
        return cls(**json.loads(text))


def provider_name(i: int) -> str:
    return f"p{i:03d}"


def experiment_doc(s: Setting, name: str = "bench") -> dict:
    """The fedcommittee experiment config of a setting (a mapping ready for YAML)."""
    pname, params = PARTITIONS[s.partition]
    behaviours = s.behaviours()
    # Users: the publisher is orgN-user1 of org1, member k is user2 of its org (then user3.. for a
    # second member of the same org), providers take the following users round-robin over the orgs.
    next_user = {org: 2 for org in ORGS}
    committee = []
    for k in range(s.members):
        org = ORGS[k % len(ORGS)]
        committee.append({"name": f"member-{k}", "user": f"{org}-user{next_user[org]}"})
        next_user[org] += 1
    providers = []
    for i in range(s.providers):
        org = ORGS[i % len(ORGS)]
        providers.append(
            {"name": provider_name(i), "user": f"{org}-user{next_user[org]}", "behaviour": behaviours[i]}
        )
        next_user[org] += 1
    return {
        "name": name,
        "seed": s.seed,
        "model": s.model,
        "mode": "federated",
        "rounds": s.rounds,
        "min_accepted": 2,
        "deadline_seconds": s.deadline_seconds,
        # Rounds close as soon as every provider is final; the settle window only bounds the wait for
        # a missing one. 10 s keeps a provider slowed by a busy machine in its round.
        "settle_seconds": s.settle_seconds,
        "providers_per_process": s.providers_per_process,
        "quorum": s.members // 2 + 1,
        "data": {
            "source": "fashion-mnist:train",
            "max_samples": s.max_samples,
            "val_fraction": 0.1,
            "test_source": "fashion-mnist:test",
            "test_samples": s.test_samples,
        },
        "partition": {"name": pname, "params": params},
        "local": {
            "steps": s.steps,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "optimizer": "sgd",
            "momentum": s.momentum,
        },
        "scoring": scoring_doc(s),
        "acceptance": "threshold",
        "aggregation": aggregation_doc(s),
        "publisher": "org1-user1",
        "committee": committee,
        "providers": providers,
    }


def scoring_doc(s: Setting) -> dict:
    """The committee's scoring config: its rule and bars, the reference trained like the providers."""
    rule, params = COMMITTEES[s.committee]
    return {"rule": rule, "metric": "loss", "reference_steps": s.steps, "reference_lr": s.lr, **params}


def aggregation_doc(s: Setting) -> str | dict:
    if s.aggregation == "fedavgm":
        return {"name": "fedavgm", "params": {"momentum": SERVER_MOMENTUM}}
    return s.aggregation


def users_needed(s: Setting) -> int:
    """Client users per org the setting's identities need (``FC_USERS_PER_ORG``): the highest user
    number its config names (members and providers are dealt round-robin, so orgs differ)."""
    doc = experiment_doc(s)
    users = [doc["publisher"]] + [m["user"] for m in doc["committee"]] + [p["user"] for p in doc["providers"]]
    return max(int(u.rsplit("user", 1)[1]) for u in users)


def rounds_to(acc: list[float], target: float) -> int | None:
    """First round (1-based) whose accuracy reaches ``target``; ``acc[0]`` is round 1."""
    return next((i + 1 for i, a in enumerate(acc) if a >= target), None)
