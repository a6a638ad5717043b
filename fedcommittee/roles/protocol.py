"""Protocol facts more than one role uses, so that no role imports another. (Score bounds, round
closing, scoring and aggregation are the policy's: ``fedcommittee/policy.py``.)"""

from __future__ import annotations

from collections.abc import Iterable

from fedcommittee.experiment import Experiment
from fedcommittee.ledger.records import Model, Round, Update

__all__ = ["choose_parents", "expected_providers", "final_mix", "model_rank", "round_follows"]


def expected_providers(exp: Experiment, round_doc: Round) -> int:
    """How many updates a round can get: its allocated providers, or every configured one."""
    allocated = round_doc.get("allocated")
    return len(exp.providers) if allocated is None else len(allocated)


def round_follows(model: Model, r: int) -> bool:
    """Whether a round r + 1 can follow round ``r``: r is below the model's ``maxRounds`` (0 or
    absent: no limit). A stopping rule may still end the model earlier."""
    max_rounds = int((model.get("roundRules") or {}).get("maxRounds") or 0)
    return not max_rounds or r < max_rounds


def model_rank(u: Update) -> tuple:
    """How good the model an accepted gossip update yields is, by the committee's measure, as a sort
    key (larger is better): the median of the members' shard accuracy (``medianQuality``) where
    every deciding verdict measured it, then the median score; newer, then the id, break ties.

    A score says what an update did to its own base, so an early update on a weak base can outscore
    a later, better model: ranking models by it picked a final model far below later ones.
    """
    quality = u.get("medianQuality")
    return (
        quality is not None,
        quality or 0.0,
        u.get("medianScore") or 0.0,
        u.get("submittedAt") or 0,
        u["id"],
    )


def choose_parents(candidates: Iterable[Update], limit: int | None) -> list[str]:
    """The parents of a new gossip update: the best-ranked ``candidates`` (``model_rank``), at most
    one per provider, so that the mix averages different providers' models and one skewed provider's
    chain cannot fill it; ``limit`` None: every provider. Returned sorted by id (the order the
    contract and ``gossip_base`` use)."""
    chosen: dict[str, str] = {}
    for u in sorted(candidates, key=model_rank, reverse=True):
        if limit is not None and len(chosen) >= limit:
            break
        chosen.setdefault(u["provider"], u["id"])
    return sorted(chosen.values())


def final_mix(accepted: Iterable[Update]) -> list[str]:
    """The accepted updates whose mean ends a gossip run: the best model of every provider (the same
    rule as parents, without a limit). One provider's model carries the drift of its own last
    training; the mean of every provider's best averages it out, as a federated round does."""
    return choose_parents(accepted, limit=None)
