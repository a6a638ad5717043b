"""Fabric Gateway client for fedcommittee: identities, signing, proposals, submit/evaluate and events.

from fedcommittee.ledger import Gateway, load_profile
with Gateway.connect(load_profile(".fedcommittee/connection.yaml"), user="org1-user1") as gw:
    contract = gw.network().contract()
    contract.submit("RegisterModel", model_json)
"""

from .checkpoint import Checkpoint
from .contract import FedcommitteeClient, decode_event
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

__all__ = [
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
    "FedcommitteeClient",
    "Gateway",
    "GatewayConnectionError",
    "GatewayError",
    "Identity",
    "IdentityConfig",
    "Network",
    "PeerConfig",
    "ProfileError",
    "RetryPolicy",
    "Signer",
    "SubmitError",
    "SubmitResult",
    "Timeouts",
    "decode_event",
    "load_msp",
    "load_profile",
]
