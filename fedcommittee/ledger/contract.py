"""The fedcommittee chaincode's transactions as typed Python calls: the only road to the ledger.

Mirrors ``chaincode/fedcommittee`` (contract-api-go, one contract, so bare function names). Callers
pass keyword-friendly Python values (ids, numbers, the :mod:`.records` documents); the client builds
the strings and JSON the contract takes. Queries return the decoded records; every paged query has
an ``iter_*`` generator that follows the bookmarks. A refusal naming a record that does not exist
raises :class:`~.errors.NotFound`.

Every transaction method returns the :class:`SubmitResult` (txid, block, the contract's result
bytes) and carries the transaction's name as ``.transaction`` (``transaction_of``), so a caller that
wraps submits (the agents' retrying submit) can log which one it sent without spelling it out.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec

from .errors import CommitError
from .gateway import ChaincodeEvent, Contract, SubmitResult
from .records import (
    Account,
    AggregateCandidate,
    DataRegistration,
    Model,
    ModelState,
    ObjectRef,
    Page,
    Round,
    RoundStatus,
    Tx,
    Update,
    UpdateDoc,
    Verdict,
    VerdictDoc,
    VerdictItem,
)

__all__ = [
    "FedcommitteeClient",
    "decode_event",
    "retrying_conflicts",
    "submit_json",
    "transaction_of",
    "verdict_batches",
]

PAGE_SIZE = 200  # the contract's MaxPageSize: fewest round trips for the iter_* generators
# The contract's limits on one SubmitVerdicts (chaincode/fedcommittee: maxBatchVerdicts, MaxInputBytes).
MAX_BATCH_VERDICTS = 256
MAX_INPUT_BYTES = 64 * 1024

P = ParamSpec("P")
Args = Sequence[str]


def _json(value: Mapping[str, Any] | Sequence[Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def verdict_batches(verdicts: Sequence[VerdictItem]) -> list[list[VerdictItem]]:
    """``verdicts`` in order, split into the fewest ``submit_verdicts`` inputs the contract takes:
    at most MAX_BATCH_VERDICTS each, their JSON within MAX_INPUT_BYTES. A member of a round of
    1,000 updates otherwise sends one input the contract refuses whole."""
    envelope = len(_json({"verdicts": []}))
    batches: list[list[VerdictItem]] = []
    size = 0
    for v in verdicts:
        item = len(_json(v)) + 1  # and its comma
        if not batches or len(batches[-1]) == MAX_BATCH_VERDICTS or size + item > MAX_INPUT_BYTES - envelope:
            batches.append([])
            size = 0
        batches[-1].append(v)
        size += item
    return batches


def accepted_digest(update_ids: Sequence[str]) -> str:
    """How CloseRoundWithAggregate names an accepted set (the contract's ``acceptedDigest``): the
    sha256 of the update ids, sorted, each followed by a newline. A fixed size, where the ids of a
    1,000-provider round would pass the contract's input limit."""
    return hashlib.sha256("".join(f"{u}\n" for u in sorted(update_ids)).encode()).hexdigest()


def _num(value: int | str | None) -> str:
    return "" if value is None else str(value)


def decode_event(event: ChaincodeEvent) -> dict[str, Any]:
    """The JSON payload of a fedcommittee event (``type`` equals the event name)."""
    return json.loads(event.payload) if event.payload else {}


def submit_json(result: SubmitResult) -> Any:
    """The JSON a transaction returned (e.g. the stored record), or None if it returned nothing."""
    return json.loads(result.result) if result.result else None


def retrying_conflicts(
    send: Callable[..., SubmitResult], *args: Any, attempts: int = 5, **kwargs: Any
) -> SubmitResult:
    """``send(*args, **kwargs)`` (a :class:`FedcommitteeClient` transaction method), sent anew while a
    concurrent transaction invalidates it (``CommitError.conflict``: it had no effect); the last
    conflict is raised once ``attempts`` are spent. For one-off transactions (the CLI's rule changes)
    during a run, whose rounds write the records they read; agents use ``Agent.submit``."""
    for attempt in range(1, attempts):
        try:
            return send(*args, **kwargs)
        except CommitError as exc:
            if not exc.conflict:
                raise
            time.sleep(0.2 * attempt)
    return send(*args, **kwargs)  # the last try: a conflict now is raised


def transaction_of(send: Callable[..., Any]) -> str:
    """The transaction a :class:`FedcommitteeClient` method sends (its ``.transaction``)."""
    return str(getattr(send, "transaction", getattr(send, "__name__", repr(send))))


def _sends(
    tx: Tx,
) -> Callable[
    [Callable[Concatenate[FedcommitteeClient, P], Args]],
    Callable[Concatenate[FedcommitteeClient, P], SubmitResult],
]:
    """Makes a method that returns the wire arguments of ``tx`` into one that submits them."""

    def wrap(arguments: Callable[Concatenate[FedcommitteeClient, P], Args]):
        @functools.wraps(arguments)
        def send(self: FedcommitteeClient, /, *args: P.args, **kwargs: P.kwargs) -> SubmitResult:
            return self.contract.submit_transaction(str(tx), *arguments(self, *args, **kwargs))

        send.transaction = tx  # type: ignore[attr-defined]
        return send

    return wrap


class FedcommitteeClient:
    """Typed calls to the fedcommittee chaincode through a :class:`Contract`."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.reads = 0  # queries sent (Evaluate calls): each one is a peer's chaincode run
        self.reads_by_query: Counter[str] = Counter()  # the same, by contract function

    def _query(self, fn: str, *args: str) -> Any:
        self.reads += 1
        self.reads_by_query[fn] += 1
        raw = self.contract.evaluate(fn, *args)
        return json.loads(raw) if raw else None

    def _pages(self, list_page: Callable[[str], Page | None]) -> Iterator[Any]:
        bookmark = ""
        while True:
            page = list_page(bookmark) or {}
            items = page.get("items") or []
            yield from items
            bookmark = page.get("bookmark") or ""
            if not bookmark or not items:
                return

    # ------------------------------------------------------------ governance
    @_sends(Tx.GRANT_ROLE)
    def grant_role(self, identity: str, role: str) -> Args:
        return identity, role

    @_sends(Tx.REVOKE_ROLE)
    def revoke_role(self, identity: str, role: str) -> Args:
        return identity, role

    # ------------------------------------------------------------ models
    @_sends(Tx.PUBLISH_MODEL)
    def publish_model(self, spec: Mapping[str, Any]) -> Args:
        """Record a model proposal (``submit_json`` of the result: the stored model record)."""
        return (_json(spec),)

    @_sends(Tx.APPROVE_MODEL)
    def approve_model(self, model_id: str, score: float) -> Args:
        return model_id, repr(float(score))

    @_sends(Tx.REJECT_MODEL)
    def reject_model(self, model_id: str, reason: str) -> Args:
        return model_id, reason

    @_sends(Tx.FINISH_MODEL)
    def finish_model(self, model_id: str, update_id: str) -> Args:
        """Gossip: end the model, naming the update that becomes its final weights."""
        return model_id, update_id

    @_sends(Tx.PROPOSE_FINAL)
    def propose_final(
        self, model_id: str, mix: Sequence[str], candidates: Sequence[str], *, cid: str, sha256: str
    ) -> Args:
        """Gossip: put the model's possible final models before its committee: the mean of the
        accepted updates ``mix`` (stored as the object ``cid``) and the accepted ``candidates``."""
        doc = {"mix": list(mix), "cid": cid, "sha256": sha256, "candidates": list(candidates)}
        return model_id, _json(doc)

    @_sends(Tx.JUDGE_FINAL)
    def judge_final(self, model_id: str, qualities: Sequence[float]) -> Args:
        """Gossip: our shard's quality of the proposed mix, then of each candidate in order; the
        judgment that reaches quorum finishes the model on the best by median quality."""
        return model_id, _json({"qualities": [float(q) for q in qualities]})

    # ------------------------------------------------------------ updates, verdicts, rounds
    @_sends(Tx.SUBMIT_UPDATE)
    def submit_update(self, model_id: str, update: UpdateDoc) -> Args:
        """Record an update; its id is the id of the transaction that recorded it (``.txid``)."""
        return model_id, _json(update)

    @_sends(Tx.SUBMIT_VERDICT)
    def submit_verdict(self, update_id: str, verdict: VerdictDoc) -> Args:
        return update_id, _json(verdict)

    @_sends(Tx.SUBMIT_VERDICTS)
    def submit_verdicts(self, verdicts: Sequence[VerdictItem]) -> Args:
        """Several verdicts of ours in one transaction; its result (``submit_json``) says which were
        ``recorded`` and which ``skipped`` (the update was already final), each with a reason."""
        return (_json({"verdicts": list(verdicts)}),)

    @_sends(Tx.CLOSE_ROUND)
    def close_round(self, model_id: str, round: int) -> Args:
        return model_id, _num(round)

    @_sends(Tx.CLOSE_ROUND_WITH_AGGREGATE)
    def close_round_with_aggregate(
        self, model_id: str, round: int, *, cid: str, sha256: str, accepted: Sequence[str]
    ) -> Args:
        """Close the round and record our aggregate of it in one transaction; ``accepted`` (update ids)
        must be the set the round closes with, else the contract writes nothing."""
        doc = {"cid": cid, "sha256": sha256, "acceptedSha256": accepted_digest(accepted)}
        return model_id, _num(round), _json(doc)

    @_sends(Tx.RECORD_AGGREGATE)
    def record_aggregate(self, model_id: str, round: int, *, cid: str, sha256: str) -> Args:
        return model_id, _num(round), _json(ObjectRef(cid=cid, sha256=sha256))

    @_sends(Tx.CONFIRM_AGGREGATE)
    def confirm_aggregate(self, model_id: str, round: int, *, sha256: str, score: float) -> Args:
        """Confirm the candidate whose bytes hash to ``sha256``, with its score on our shard."""
        return model_id, _num(round), _json({"sha256": sha256, "score": float(score)})

    # ------------------------------------------------------------ protocol rules
    @_sends(Tx.REGISTER_DATA)
    def register_data(self, model_id: str, data: Mapping[str, Any]) -> Args:
        """Record (or replace) this provider's data metadata (``submit_json``: the stored record)."""
        return model_id, _json(data)

    @_sends(Tx.PROPOSE_RULE_CHANGE)
    def propose_rule_change(self, model_id: str, change: Mapping[str, Any]) -> Args:
        """Propose a run-time rule change; the proposal id is the transaction id (``.txid``)."""
        return model_id, _json(change)

    @_sends(Tx.VOTE_RULE_CHANGE)
    def vote_rule_change(self, proposal_id: str, approve: bool) -> Args:
        return proposal_id, "true" if approve else "false"

    # ------------------------------------------------------------ queries (evaluate, nothing ordered)
    def who_am_i(self) -> dict[str, Any]:
        return self._query("WhoAmI")

    def get_account(self, identity: str) -> Account:
        return self._query("GetAccount", identity)

    def get_model(self, model_id: str) -> Model:
        return self._query("GetModel", model_id)

    def get_model_state(self, model_id: str) -> ModelState:
        """The model, its current round and, while that round is closed, its candidate aggregates,
        in one query."""
        st = self._query("GetModelState", model_id)
        rd = st.get("round")
        closed = rd is not None and rd.get("status") == RoundStatus.CLOSED
        return ModelState(st["model"], rd, (st.get("aggregates") or []) if closed else None)

    def get_model_votes(self, model_id: str) -> list[dict[str, Any]]:
        return self._query("GetModelVotes", model_id) or []

    def get_round(self, model_id: str, round: int) -> Round:
        return self._query("GetRound", model_id, _num(round))

    def get_update(self, update_id: str) -> Update:
        return self._query("GetUpdate", update_id)

    def get_verdicts(self, update_id: str) -> list[Verdict]:
        return self._query("GetVerdicts", update_id) or []

    def get_parents(self, update_id: str) -> list[Update]:
        return self._query("GetParents", update_id) or []

    def get_aggregates(self, model_id: str, round: int) -> list[AggregateCandidate]:
        return self._query("GetAggregates", model_id, _num(round)) or []

    def get_leaderboard(self, model_id: str) -> Any:
        """At most the contract's MaxScan (1000) entries: ``leaderboard`` reads a model of any size."""
        return self._query("GetLeaderboard", model_id)

    def leaderboard(self, model_id: str) -> list[dict[str, Any]]:
        """Every identity's standing in a model, in GetLeaderboard's order (best net first, ties by
        identity), read page by page."""
        entries = list(self.iter_rewards(model_id))
        return sorted(entries, key=lambda e: (-int(e.get("net") or 0), e.get("identity") or ""))

    def get_history(self, kind: str, id: str) -> Any:
        return self._query("GetHistory", kind, id)

    def get_data_registration(self, model_id: str, provider: str) -> DataRegistration:
        return self._query("GetDataRegistration", model_id, provider)

    def get_allocation(self, model_id: str, round: int) -> dict[str, Any]:
        return self._query("GetAllocation", model_id, _num(round))

    def get_rotation(self, model_id: str, round: int) -> dict[str, Any]:
        return self._query("GetRotation", model_id, _num(round))

    def get_rule_change(self, proposal_id: str) -> dict[str, Any]:
        return self._query("GetRuleChange", proposal_id)

    # ------------------------------------------------------------ paged queries: one page, or all
    def list_role_holders(self, role: str, page_size: int | None = None, bookmark: str = "") -> Page:
        return self._query("ListRoleHolders", role, _num(page_size), bookmark)

    def iter_role_holders(self, role: str) -> Iterator[dict[str, Any]]:
        return self._pages(lambda b: self.list_role_holders(role, PAGE_SIZE, b))

    def list_models(self, page_size: int | None = None, bookmark: str = "") -> Page:
        return self._query("ListModels", _num(page_size), bookmark)

    def iter_models(self) -> Iterator[Model]:
        return self._pages(lambda b: self.list_models(PAGE_SIZE, b))

    def list_round_updates(
        self, model_id: str, round: int, page_size: int | None = None, bookmark: str = ""
    ) -> Page:
        return self._query("ListRoundUpdates", model_id, _num(round), _num(page_size), bookmark)

    def iter_round_updates(self, model_id: str, round: int) -> Iterator[Update]:
        """Every update of a round (gossip: round 0, every update of the model)."""
        return self._pages(lambda b: self.list_round_updates(model_id, round, PAGE_SIZE, b))

    def list_accepted_updates(
        self, model_id: str, round: int, page_size: int | None = None, bookmark: str = ""
    ) -> Page:
        return self._query("ListAcceptedUpdates", model_id, _num(round), _num(page_size), bookmark)

    def iter_accepted_updates(self, model_id: str, round: int) -> Iterator[Update]:
        return self._pages(lambda b: self.list_accepted_updates(model_id, round, PAGE_SIZE, b))

    def list_provider_updates(
        self, model_id: str, provider: str, page_size: int | None = None, bookmark: str = ""
    ) -> Page:
        return self._query("ListProviderUpdates", model_id, provider, _num(page_size), bookmark)

    def iter_provider_updates(self, model_id: str, provider: str) -> Iterator[Update]:
        return self._pages(lambda b: self.list_provider_updates(model_id, provider, PAGE_SIZE, b))

    def get_children(self, update_id: str, page_size: int | None = None, bookmark: str = "") -> Page:
        return self._query("GetChildren", update_id, _num(page_size), bookmark)

    def iter_children(self, update_id: str) -> Iterator[Update]:
        return self._pages(lambda b: self.get_children(update_id, PAGE_SIZE, b))

    def list_data_registrations(
        self, model_id: str, page_size: int | None = None, bookmark: str = ""
    ) -> Page:
        return self._query("ListDataRegistrations", model_id, _num(page_size), bookmark)

    def iter_data_registrations(self, model_id: str) -> Iterator[DataRegistration]:
        return self._pages(lambda b: self.list_data_registrations(model_id, PAGE_SIZE, b))

    def list_rule_changes(self, model_id: str, page_size: int | None = None, bookmark: str = "") -> Page:
        return self._query("ListRuleChanges", model_id, _num(page_size), bookmark)

    def iter_rule_changes(self, model_id: str) -> Iterator[dict[str, Any]]:
        return self._pages(lambda b: self.list_rule_changes(model_id, PAGE_SIZE, b))

    def list_rewards(self, model_id: str, page_size: int | None = None, bookmark: str = "") -> Page:
        return self._query("ListRewards", model_id, _num(page_size), bookmark)

    def iter_rewards(self, model_id: str) -> Iterator[dict[str, Any]]:
        return self._pages(lambda b: self.list_rewards(model_id, PAGE_SIZE, b))
