"""Errors raised by the Fabric Gateway client.

Every error is a :class:`GatewayError`. Errors that come from a gRPC call carry the gRPC status code, the
status message and the ``gateway.ErrorDetail`` entries (address, MSP id, message) that the Fabric gateway
attaches to its status, so that a failure can be traced to the peer or orderer that caused it.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass

import grpc

__all__ = [
    "ChaincodeEventsError",
    "CommitError",
    "CommitStatusError",
    "ConnectionError",
    "ContractError",
    "EndorseContractError",
    "EndorseError",
    "ErrorDetail",
    "EvaluateError",
    "GatewayConnectionError",
    "GatewayError",
    "NotFound",
    "SubmitError",
    "chaincode_message",
    "contract_error",
]


@dataclass(frozen=True)
class ErrorDetail:
    """One ``gateway.ErrorDetail`` from a gRPC status: which node failed and why."""

    address: str
    msp_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.address} ({self.msp_id}): {self.message}"


class GatewayError(Exception):
    """Base class of all errors raised by :mod:`fedcommittee.ledger`."""

    def __init__(
        self,
        message: str,
        *,
        txid: str | None = None,
        code: grpc.StatusCode | None = None,
        details: tuple[ErrorDetail, ...] | list[ErrorDetail] = (),
    ) -> None:
        self.message = message
        self.txid = txid
        self.code = code
        self.details: tuple[ErrorDetail, ...] = tuple(details)
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.insert(0, f"[{self.code.name}]")
        if self.txid:
            parts.append(f"(txid {self.txid})")
        text = " ".join(parts)
        if self.details:
            text += "; details: " + "; ".join(str(d) for d in self.details)
        return text


class GatewayConnectionError(GatewayError, builtins.ConnectionError):
    """The gateway endpoint could not be reached (within the connect timeout, or mid-call)."""

    def __init__(self, message: str, *, endpoint: str, **kwargs) -> None:
        self.endpoint = endpoint
        super().__init__(message, **kwargs)


# The brief and callers use the short name; it is also a subclass of the built-in ConnectionError.
ConnectionError = GatewayConnectionError  # noqa: A001


class EvaluateError(GatewayError):
    """Evaluating a transaction failed for a reason other than the chaincode rejecting it."""


class EndorseError(GatewayError):
    """Endorsing a transaction proposal failed. The transaction was not submitted."""


class SubmitError(GatewayError):
    """Sending the endorsed, signed transaction to the ordering service failed."""


class CommitStatusError(GatewayError):
    """The commit status of a submitted transaction could not be obtained (it may still commit)."""


class ChaincodeEventsError(GatewayError):
    """The chaincode event stream failed and could not (or may not) be re-opened."""


# Validation codes of a transaction invalidated because another one changed what it read.
CONFLICT_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})


class CommitError(GatewayError):
    """The transaction was ordered into a block but failed validation (e.g. MVCC_READ_CONFLICT)."""

    def __init__(self, txid: str, validation_code: str, *, code_value: int, block_number: int) -> None:
        self.validation_code = validation_code
        self.code_value = code_value
        self.block_number = block_number
        super().__init__(
            f"transaction {txid} failed to commit in block {block_number} with status "
            f"{code_value} ({validation_code})",
            txid=txid,
        )

    @property
    def conflict(self) -> bool:
        """Invalidated by a concurrent transaction that changed what this one read (MVCC or phantom
        read conflict): it had no effect, so sending it anew is safe."""
        return self.validation_code in CONFLICT_CODES


# The contract starts a refusal that callers act on with a stable code: "NOT_FOUND: model m1".
_ERROR_CODE = re.compile(r"^([A-Z][A-Z_]*): ")


class ContractError(GatewayError):
    """The chaincode rejected the transaction; ``chaincode_message`` is the message the chaincode returned.

    ``stage`` is ``"evaluate"`` or ``"endorse"``. ``error_code`` is the contract's code at the start
    of the message (``NOT_FOUND`` in ``"NOT_FOUND: model m1"``), or None; it is not ``code``, which
    every :class:`GatewayError` uses for the gRPC status. A ContractError raised while endorsing is
    also an :class:`EndorseError`.
    """

    def __init__(self, message: str, *, chaincode_message: str, stage: str, status: int | None, **kwargs):
        self.chaincode_message = chaincode_message
        self.stage = stage
        self.status = status
        m = _ERROR_CODE.match(chaincode_message or "")
        self.error_code: str | None = m.group(1) if m else None
        super().__init__(message, **kwargs)


class EndorseContractError(ContractError, EndorseError):
    """The chaincode rejected the proposal while endorsing: both a ContractError and an EndorseError."""


class NotFound(ContractError):
    """The chaincode refused because a record the call names does not exist (``NOT_FOUND``)."""


class EndorseNotFound(NotFound, EndorseContractError):
    """A ``NOT_FOUND`` refusal while endorsing (a submit naming a record that does not exist)."""


def _not_found(chaincode_message: str) -> bool:
    if (_ERROR_CODE.match(chaincode_message) or [None, None])[1] == "NOT_FOUND":
        return True
    # Fallback for a contract that predates the NOT_FOUND code ("model m1 not found"): goes once
    # every deployed contract sends the code.
    return chaincode_message.endswith(" not found")


def contract_error(message: str, *, chaincode_message: str, stage: str, **kwargs) -> ContractError:
    """The ContractError for a chaincode refusal at ``stage``, of the class its code calls for."""
    endorse = stage == "endorse"
    if _not_found(chaincode_message or ""):
        cls: type[ContractError] = EndorseNotFound if endorse else NotFound
    else:
        cls = EndorseContractError if endorse else ContractError
    return cls(message, chaincode_message=chaincode_message, stage=stage, **kwargs)


# The gateway formats a chaincode error response as "chaincode response <status>, <message>"
# (fabric internal/pkg/gateway: responseStatus).
_CHAINCODE_RESPONSE = re.compile(r"chaincode response (\d+), (.*)", re.DOTALL)


def chaincode_message(texts: list[str]) -> tuple[int, str] | None:
    """Return (status, message) of the first chaincode error response found in ``texts``, else None."""
    for text in texts:
        m = _CHAINCODE_RESPONSE.search(text)
        if m:
            return int(m.group(1)), m.group(2)
    return None
