"""Fabric Gateway client for fedcommittee: identities, signing, proposals, submit/evaluate and events.

from fedcommittee.ledger import Gateway, load_profile
with Gateway.connect(load_profile(".fedcommittee/connection.yaml"), user="org1-user1") as gw:
    client = FedcommitteeClient(gw.network().contract())
    for update in client.iter_round_updates("m1", 1):
        print(update["id"], update["status"] == UpdateStatus.ACCEPTED)

``FedcommitteeClient`` (contract.py) is the one road to the ledger; ``records`` holds the contract's
status/mode/role/transaction names (StrEnum) and the shapes of its records.
"""

from .checkpoint import Checkpoint
from .contract import (
    FedcommitteeClient,
    decode_event,
    retrying_conflicts,
    submit_json,
    transaction_of,
    verdict_batches,
)
from .errors import (
    ChaincodeEventsError,
    CommitError,
    CommitStatusError,
    ConnectionError,
    ContractError,
    EndorseContractError,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    GatewayConnectionError,
    GatewayError,
    NotFound,
    SubmitError,
)
from .gateway import (
    ChaincodeEvent,
    ChaincodeEventStream,
    Contract,
    Gateway,
    Network,
    RetryPolicy,
    SubmitResult,
    Timeouts,
)
from .identity import Identity, Signer, load_msp
from .profile import ConnectionProfile, IdentityConfig, PeerConfig, ProfileError, load_profile
from .records import (
    AcceptRule,
    AllocationRule,
    EventType,
    Mode,
    ModelStatus,
    Role,
    RoundStatus,
    StopReason,
    Tx,
    UpdateStatus,
)

__all__ = [
    "AcceptRule",
    "AllocationRule",
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "ChaincodeEventsError",
    "Checkpoint",
    "CommitError",
    "CommitStatusError",
    "ConnectionError",
    "ConnectionProfile",
    "Contract",
    "ContractError",
    "EndorseContractError",
    "EndorseError",
    "ErrorDetail",
    "EvaluateError",
    "EventType",
    "FedcommitteeClient",
    "Gateway",
    "GatewayConnectionError",
    "GatewayError",
    "Identity",
    "IdentityConfig",
    "Mode",
    "ModelStatus",
    "Network",
    "NotFound",
    "PeerConfig",
    "ProfileError",
    "RetryPolicy",
    "Role",
    "RoundStatus",
    "Signer",
    "StopReason",
    "SubmitError",
    "SubmitResult",
    "Timeouts",
    "Tx",
    "UpdateStatus",
    "decode_event",
    "load_msp",
    "load_profile",
    "retrying_conflicts",
    "submit_json",
    "verdict_batches",
    "transaction_of",
]
