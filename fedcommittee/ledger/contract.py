"""A thin typed wrapper over the fedcommittee chaincode's transactions.

Mirrors ``chaincode/fedcommittee`` (contract-api-go, one contract, so bare function names): every argument is
a string on the wire; JSON documents may be given as dicts; queries return decoded JSON. Anything not wrapped
here is still reachable with ``client.contract.submit(name, *args)`` / ``evaluate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .gateway import ChaincodeEvent, Contract, SubmitResult

__all__ = ["FedcommitteeClient", "decode_event"]

Doc = Mapping[str, Any] | str


def _doc(value: Doc) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _num(value: int | str | None) -> str:
    return "" if value is None else str(value)


def decode_event(event: ChaincodeEvent) -> dict[str, Any]:
    """The JSON payload of a fedcommittee event (``type`` equals the event name)."""
    return json.loads(event.payload) if event.payload else {}


class FedcommitteeClient:
    """Typed calls to the fedcommittee chaincode through a :class:`Contract`."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract

    # ------------------------------------------------------------ plumbing
    def _submit(self, fn: str, *args: str) -> SubmitResult:
        return self.contract.submit_transaction(fn, *args)

    def _query(self, fn: str, *args: str) -> Any:
        raw = self.contract.evaluate(fn, *args)
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------ governance
    def grant_role(self, identity: str, role: str) -> SubmitResult:
        return self._submit("GrantRole", identity, role)

    def revoke_role(self, identity: str, role: str) -> SubmitResult:
        return self._submit("RevokeRole", identity, role)

    # ------------------------------------------------------------ models
    def publish_model(self, spec: Doc) -> dict:
        """Record a model proposal; returns the stored model record (the chaincode's JSON result)."""
        return json.loads(self._submit("PublishModel", _doc(spec)).result)

    def approve_model(self, model_id: str, score: float | str) -> SubmitResult:
        return self._submit("ApproveModel", model_id, str(score))

    def reject_model(self, model_id: str, reason: str) -> SubmitResult:
        return self._submit("RejectModel", model_id, reason)

    def finish_model(self, model_id: str, update_id: str) -> SubmitResult:
        return self._submit("FinishModel", model_id, update_id)

    # ------------------------------------------------------------ updates, verdicts, rounds
    def submit_update(self, model_id: str, update: Doc) -> str:
        """Record an update; returns its id, which is the id of the transaction that recorded it."""
        return self._submit("SubmitUpdate", model_id, _doc(update)).txid

    def submit_verdict(self, update_id: str, verdict: Doc) -> SubmitResult:
        return self._submit("SubmitVerdict", update_id, _doc(verdict))

    def submit_verdicts(self, verdicts: list[dict]) -> SubmitResult:
        """Several verdicts of ours (each ``{"updateId", "score", "accept", "reason"}``) in one
        transaction; its result says which were recorded and which skipped (already final)."""
        return self._submit("SubmitVerdicts", _doc({"verdicts": verdicts}))

    def close_round(self, model_id: str, round: int | str) -> SubmitResult:
        return self._submit("CloseRound", model_id, _num(round))

    def record_aggregate(self, model_id: str, round: int | str, aggregate: Doc) -> SubmitResult:
        return self._submit("RecordAggregate", model_id, _num(round), _doc(aggregate))

    def confirm_aggregate(self, model_id: str, round: int | str, aggregate: Doc) -> SubmitResult:
        return self._submit("ConfirmAggregate", model_id, _num(round), _doc(aggregate))

    # ------------------------------------------------------------ protocol rules
    def register_data(self, model_id: str, data: Doc) -> dict:
        """Record (or replace) this provider's data metadata for a model; returns the stored record."""
        return json.loads(self._submit("RegisterData", model_id, _doc(data)).result)

    def propose_rule_change(self, model_id: str, change: Doc) -> str:
        """Propose a run-time rule change; returns the proposal id (the transaction id)."""
        return self._submit("ProposeRuleChange", model_id, _doc(change)).txid

    def vote_rule_change(self, proposal_id: str, approve: bool) -> SubmitResult:
        return self._submit("VoteRuleChange", proposal_id, "true" if approve else "false")

    # ------------------------------------------------------------ queries (evaluate, nothing ordered)
    def who_am_i(self) -> dict[str, Any]:
        return self._query("WhoAmI")

    def get_account(self, identity: str) -> dict[str, Any]:
        return self._query("GetAccount", identity)

    def list_role_holders(
        self, role: str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListRoleHolders", role, _num(page_size), bookmark)

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self._query("GetModel", model_id)

    def list_models(self, page_size: int | None = None, bookmark: str = "") -> dict[str, Any]:
        return self._query("ListModels", _num(page_size), bookmark)

    def get_model_votes(self, model_id: str) -> Any:
        return self._query("GetModelVotes", model_id)

    def get_round(self, model_id: str, round: int | str) -> dict[str, Any]:
        return self._query("GetRound", model_id, _num(round))

    def get_update(self, update_id: str) -> dict[str, Any]:
        return self._query("GetUpdate", update_id)

    def get_verdicts(self, update_id: str) -> Any:
        return self._query("GetVerdicts", update_id)

    def list_round_updates(
        self, model_id: str, round: int | str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListRoundUpdates", model_id, _num(round), _num(page_size), bookmark)

    def list_accepted_updates(
        self, model_id: str, round: int | str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListAcceptedUpdates", model_id, _num(round), _num(page_size), bookmark)

    def list_provider_updates(
        self, model_id: str, provider: str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListProviderUpdates", model_id, provider, _num(page_size), bookmark)

    def get_parents(self, update_id: str) -> Any:
        return self._query("GetParents", update_id)

    def get_children(
        self, update_id: str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("GetChildren", update_id, _num(page_size), bookmark)

    def get_aggregates(self, model_id: str, round: int | str) -> Any:
        return self._query("GetAggregates", model_id, _num(round))

    def get_leaderboard(self, model_id: str) -> Any:
        return self._query("GetLeaderboard", model_id)

    def get_history(self, kind: str, id: str) -> Any:
        return self._query("GetHistory", kind, id)

    def get_data_registration(self, model_id: str, provider: str) -> dict[str, Any]:
        return self._query("GetDataRegistration", model_id, provider)

    def list_data_registrations(
        self, model_id: str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListDataRegistrations", model_id, _num(page_size), bookmark)

    def get_allocation(self, model_id: str, round: int | str) -> dict[str, Any]:
        return self._query("GetAllocation", model_id, _num(round))

    def get_rotation(self, model_id: str, round: int | str) -> dict[str, Any]:
        return self._query("GetRotation", model_id, _num(round))

    def get_rule_change(self, proposal_id: str) -> dict[str, Any]:
        return self._query("GetRuleChange", proposal_id)

    def list_rule_changes(
        self, model_id: str, page_size: int | None = None, bookmark: str = ""
    ) -> dict[str, Any]:
        return self._query("ListRuleChanges", model_id, _num(page_size), bookmark)
