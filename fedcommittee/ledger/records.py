"""The fedcommittee contract's vocabulary in Python: its status, mode, rule and role names, its
transaction names, and the shapes of the JSON records it takes and returns.

The names are ``enum.StrEnum``: a member equals the JSON string it stands for (``ModelStatus.ACTIVE
== "active"``), so records decoded from the ledger compare with them directly and a member can be
put in a JSON document as is. ``tests/unit/ledger/test_records.py`` holds each enum equal to the Go
constants of ``chaincode/fedcommittee``.

Records are ``typing.TypedDict`` rather than dataclasses: they are the contract's JSON as decoded,
so every reader (agents, the report, the dashboard, tests, fakes that build them by hand) keeps
plain dict access, fields the contract adds later pass through untouched, and nothing is copied.
The types document the fields and let a checker catch a misspelt key; they validate nothing at run
time (the contract is the validator). Most records are ``total=False``: the contract omits empty
optional fields (``omitempty``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, TypedDict

__all__ = [
    "AcceptRule",
    "EventType",
    "Account",
    "AggregateCandidate",
    "AllocationRule",
    "Confirmation",
    "DataRegistration",
    "Mode",
    "Model",
    "ModelState",
    "ModelStatus",
    "ObjectRef",
    "Page",
    "Role",
    "Round",
    "RoundStatus",
    "Standing",
    "StopReason",
    "Tx",
    "Update",
    "UpdateDoc",
    "UpdateStatus",
    "Verdict",
    "VerdictDoc",
    "VerdictItem",
]


class ModelStatus(StrEnum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    REJECTED = "rejected"
    FINISHED = "finished"

    @property
    def final(self) -> bool:
        """The model will not change any more: agents exit."""
        return self in (ModelStatus.FINISHED, ModelStatus.REJECTED)


class Mode(StrEnum):
    FEDERATED = "federated"
    GOSSIP = "gossip"


class AcceptRule(StrEnum):
    """How the committee's verdicts on an update become accepted or rejected."""

    THRESHOLD = "threshold"
    IMPROVEMENT = "improvement"
    MAJORITY = "majority"


class AllocationRule(StrEnum):
    """Who may submit in a round (partial participation)."""

    ALL = "all"  # any provider (default)
    RANDOM = "random"  # k registered providers drawn from the on-chain seed
    REPUTATION = "reputation"  # the top k registered providers by reputation


class StopReason(StrEnum):
    """Why a federated model finished (``stopReason``)."""

    TARGET = "target"
    PATIENCE = "patience"
    MAX_ROUNDS = "maxRounds"
    PUBLISHER = "publisher"


class UpdateStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RoundStatus(StrEnum):
    OPEN = "open"  # accepting updates
    CLOSED = "closed"  # accepted set fixed, waiting for a confirmed aggregate
    DONE = "done"  # aggregate confirmed, next round opened (or model finished)
    SKIPPED = "skipped"  # closed with no accepted update: the global model carried over


class Role(StrEnum):
    PUBLISHER = "publisher"
    PROVIDER = "provider"
    COMMITTEE = "committee"


class EventType(StrEnum):
    """The ``type`` of a chaincode event's payload: one event per transaction, named after its outcome."""

    ROLE_GRANTED = "RoleGranted"
    ROLE_REVOKED = "RoleRevoked"
    MODEL_PROPOSED = "ModelProposed"
    MODEL_VOTE = "ModelVote"  # an approval or rejection, no decision yet
    MODEL_ACTIVATED = "ModelActivated"
    MODEL_REJECTED = "ModelRejected"
    MODEL_FINISHED = "ModelFinished"
    FINAL_PROPOSED = "FinalProposed"  # gossip: a final model before the committee
    FINAL_JUDGED = "FinalJudged"  # one member's judgment of it, no quorum yet
    UPDATE_SUBMITTED = "UpdateSubmitted"
    VERDICT_SUBMITTED = "VerdictSubmitted"  # quorum not reached
    UPDATE_FINALIZED = "UpdateFinalized"
    VERDICTS_SUBMITTED = "VerdictsSubmitted"  # a batch
    ROUND_CLOSED = "RoundClosed"
    ROUND_OPENED = "RoundOpened"
    AGGREGATE_RECORDED = "AggregateRecorded"
    AGGREGATE_CONFIRMED = "AggregateConfirmed"  # one confirmation, no quorum yet
    DATA_REGISTERED = "DataRegistered"
    RULE_CHANGE_PROPOSED = "RuleChangeProposed"
    RULE_CHANGE_VOTED = "RuleChangeVoted"
    RULE_CHANGE_APPLIED = "RuleChangeApplied"
    RULE_CHANGE_REJECTED = "RuleChangeRejected"


class Tx(StrEnum):
    """Transactions the agents submit (the names in the ``tx`` field of their ``submitted`` logs)."""

    GRANT_ROLE = "GrantRole"
    REVOKE_ROLE = "RevokeRole"
    PUBLISH_MODEL = "PublishModel"
    APPROVE_MODEL = "ApproveModel"
    REJECT_MODEL = "RejectModel"
    FINISH_MODEL = "FinishModel"
    PROPOSE_FINAL = "ProposeFinal"
    JUDGE_FINAL = "JudgeFinal"
    SUBMIT_UPDATE = "SubmitUpdate"
    SUBMIT_VERDICT = "SubmitVerdict"
    SUBMIT_VERDICTS = "SubmitVerdicts"
    CLOSE_ROUND = "CloseRound"
    CLOSE_ROUND_WITH_AGGREGATE = "CloseRoundWithAggregate"
    RECORD_AGGREGATE = "RecordAggregate"
    CONFIRM_AGGREGATE = "ConfirmAggregate"
    REGISTER_DATA = "RegisterData"
    PROPOSE_RULE_CHANGE = "ProposeRuleChange"
    VOTE_RULE_CHANGE = "VoteRuleChange"


# ------------------------------------------------------------------------------ what agents send


class ObjectRef(TypedDict):
    """An IPFS object as the ledger names it: its CID and the sha256 of its bytes."""

    cid: str
    sha256: str


class UpdateDoc(TypedDict, total=False):
    """SubmitUpdate's document: federated updates name their round and base, gossip ones parents."""

    round: int
    baseCid: str
    baseSha256: str
    parents: list[str]
    cid: str
    sha256: str
    numSamples: int
    metrics: dict[str, float]


class VerdictDoc(TypedDict, total=False):
    score: float
    accept: bool
    reason: str
    quality: float  # the member's shard accuracy of the model the update yields (gossip ranks by it)


class VerdictItem(VerdictDoc, total=False):
    """One verdict of a SubmitVerdicts batch."""

    updateId: str


# ------------------------------------------------------------------------------ what the contract returns


class Page(TypedDict):
    items: list[Any]
    bookmark: str


class Account(TypedDict, total=False):
    identity: str
    mspId: str
    roles: list[str]
    rewards: int
    penalties: int
    accepted: int
    rejected: int
    verdicts: int
    reputation: float


# Functional form: the contract's JSON has a field named "global", a Python keyword.
Model = TypedDict(
    "Model",
    {
        "id": str,
        "publisher": str,
        "architecture": dict[str, str],
        "specSha256": str,
        "initialWeights": ObjectRef,
        "acceptance": dict[str, Any],
        "quorum": int,
        "committee": list[dict[str, str]],  # seats: member, shardCid, shardSha256
        "mode": str,  # a Mode
        "roundRules": dict[str, int],
        "status": str,  # a ModelStatus
        "currentRound": int,
        "global": ObjectRef,
        "final": ObjectRef,
        "finalUpdate": str,  # gossip: the accepted update that is the final model (FinishModel)
        "finalMix": list[str],  # gossip: the accepted updates whose mean is the final model
        # gossip, from ProposeFinal on: mix, cid, sha256, candidates, judgments (member, qualities:
        # the mix first), medians (at quorum), proposedAt
        "finalProposal": dict[str, Any],
        "best": dict[str, Any],
        "stopReason": str,
        "allocation": dict[str, Any],
        "allocationSeed": str,
        "governance": dict[str, Any],
        "profile": dict[str, Any],
        "updatedAt": int,
    },
    total=False,
)

Round = TypedDict(
    "Round",
    {
        "modelId": str,
        "number": int,
        "status": str,  # a RoundStatus
        "global": ObjectRef,
        "openedAt": int,
        "deadline": int,
        "accepted": list[str],
        "aggregate": ObjectRef,
        "allocated": list[str],
    },
    total=False,
)


class Update(TypedDict, total=False):
    id: str
    modelId: str
    mode: str
    round: int
    parents: list[str]
    baseCid: str
    baseSha256: str
    provider: str
    cid: str
    sha256: str
    numSamples: int
    metrics: dict[str, float]
    status: str  # an UpdateStatus
    medianScore: float
    medianQuality: float  # set when every deciding verdict carried a quality
    submittedAt: int
    refusal: str  # set when the contract rejected the update at submission (a replay), without verdicts
    standing: Standing  # gossip: the provider's record in the model when it submitted this update


class Standing(TypedDict, total=False):
    """A gossip provider's earlier updates of the model as they stood when it submitted an update (all
    final then: the contract refuses a gossip update while its provider's previous one is pending)."""

    previous: str  # the provider's update before this one (absent for its first)
    earlier: int  # its updates of the model before this one
    accepted: int  # ... of which accepted
    lastRejectedAgo: int  # 1: the previous one was rejected, 2: the one before it, ...; 0: none


class Verdict(TypedDict, total=False):
    updateId: str
    modelId: str
    member: str
    score: float
    accept: bool
    reason: str
    quality: float


class Confirmation(TypedDict, total=False):
    member: str
    score: float
    txId: str


class AggregateCandidate(TypedDict, total=False):
    modelId: str
    round: int
    cid: str
    sha256: str
    recordedBy: str
    confirmations: list[Confirmation]


class DataRegistration(TypedDict, total=False):
    modelId: str
    provider: str
    numSamples: int
    dataType: str
    format: str
    shareHistogram: bool
    labelHistogram: dict[str, int]
    registeredAt: int


class ModelState(NamedTuple):
    """``GetModelState`` decoded: the model, its current round (None before round 1 and in gossip
    mode) and, while that round is closed, its candidate aggregates (None otherwise: not read)."""

    model: Model
    round: Round | None
    aggregates: list[AggregateCandidate] | None
