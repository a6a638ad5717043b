"""Protocol facts more than one role uses, so that no role imports another. (Score bounds, round
closing, scoring and aggregation are the policy's: ``fedcommittee/policy.py``.)"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from fedcommittee.experiment import Experiment
from fedcommittee.ledger.records import Model, Round, Standing, Update, UpdateStatus

__all__ = [
    "RESTART_CHECK_MARGIN_SECONDS",
    "choose_parents",
    "expected_providers",
    "final_candidates",
    "final_choice",
    "final_mix",
    "fresh",
    "generations",
    "model_rank",
    "parent_candidates",
    "rejected_or_unproven",
    "round_follows",
    "standing_after",
    "standing_marks",
]

# What a ledger record dated this long after an agent started cannot owe to an earlier run of that
# agent (before a restart): a verdict on an update submitted then, an update to a round opened then.
# Transaction timestamps come from the submitter's clock: the margin covers a small skew.
RESTART_CHECK_MARGIN_SECONDS = 5.0


def expected_providers(exp: Experiment, round_doc: Round) -> int:
    """How many updates a round can get: its allocated providers, or every configured one."""
    allocated = round_doc.get("allocated")
    return len(exp.providers) if allocated is None else len(allocated)


def round_follows(model: Model, r: int) -> bool:
    """Whether a round r + 1 can follow round ``r``: r is below the model's ``maxRounds`` (0 or
    absent: no limit). A stopping rule may still end the model earlier."""
    max_rounds = int((model.get("roundRules") or {}).get("maxRounds") or 0)
    return not max_rounds or r < max_rounds


def rejected_or_unproven(
    recent: Iterable[Iterable[Update]], earlier: Iterable[Iterable[Update]], providers: Iterable[str]
) -> tuple[list[bool], list[bool]]:
    """Per provider, (whether an update of its was rejected in one of the ``recent`` rounds, whether
    none of its updates was accepted in any of the ``earlier`` ones): what the effect rule's
    probation is decided on (``ml.ScoringRule.on_probation``). Both are lists of rounds' updates,
    read once the rounds are over, so that their statuses are final and every member reads the same."""
    caught = {u.get("provider") for lst in recent for u in lst if u.get("status") == UpdateStatus.REJECTED}
    proven = {u.get("provider") for lst in earlier for u in lst if u.get("status") == UpdateStatus.ACCEPTED}
    providers = list(providers)
    return [p in caught for p in providers], [p not in proven for p in providers]


def standing_marks(standing: Standing | None, rounds: int) -> tuple[bool, bool]:
    """For a gossip update, what ``ml.ScoringRule.on_probation`` takes, from the standing the contract
    recorded on it: (whether one of its provider's last ``rounds`` updates before it was rejected,
    whether any was accepted). Gossip has no rounds: a provider's own updates count instead. An update
    recorded before the contract kept standings has none and is judged at the lenient bars, as it was
    then (every member reads the same record, so the scores stay reproducible)."""
    if standing is None:
        return False, True
    ago = int(standing.get("lastRejectedAgo") or 0)
    return 0 < ago <= rounds, int(standing.get("accepted") or 0) > 0


def standing_after(previous: Update | None) -> Standing:
    """The standing the contract records on a provider's gossip update whose previous update is
    ``previous`` (final by then; None: the provider's first), as ``verify`` recomputes it."""
    if previous is None:
        return {"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}
    before = previous.get("standing") or {}
    status, ago = previous.get("status"), int(before.get("lastRejectedAgo") or 0)
    return {
        "previous": previous["id"],
        "earlier": int(before.get("earlier") or 0) + 1,
        "accepted": int(before.get("accepted") or 0) + (status == UpdateStatus.ACCEPTED),
        "lastRejectedAgo": 1 if status == UpdateStatus.REJECTED else ago + 1 if ago else 0,
    }


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


def generations(updates: Iterable[Update]) -> dict[str, int]:
    """Each gossip update's depth in the DAG: 0 for one built on the initial weights, else one more
    than its deepest parent among ``updates`` (the contract takes only accepted, earlier updates as
    parents, so the DAG has no cycle)."""
    ups = {u["id"]: u for u in updates}
    depth: dict[str, int] = {}

    def parents_of(uid: str) -> list[str]:
        return [p for p in ups[uid].get("parents") or [] if p in ups]

    for uid in ups:
        stack = [uid]  # depth first without recursion: a long DAG must not reach the recursion limit
        while stack:
            top = stack[-1]
            todo = [p for p in parents_of(top) if p not in depth]
            if todo:
                stack.extend(todo)
                continue
            depth[top] = 1 + max((depth[p] for p in parents_of(top)), default=-1)
            stack.pop()
    return depth


def fresh(accepted: Iterable[Update]) -> list[Update]:
    """The accepted models of the DAG's two newest generations. An older one is stale: its provider
    trained on a mix the others have since moved past, and a provider whose later updates were all
    rejected would otherwise keep its one accepted model in every mix."""
    accepted = list(accepted)
    depth = generations(accepted)
    newest = max(depth.values(), default=0)
    return [u for u in accepted if depth[u["id"]] >= newest - 1]


def parent_candidates(accepted: Iterable[Update], recency: int) -> list[Update]:
    """What a new gossip update may start from: the fresh accepted models, the newest ``recency``."""
    ordered = sorted(fresh(accepted), key=lambda u: (u.get("submittedAt") or 0, u["id"]))
    return ordered[-recency:]


# The least spread assumed among the quality of the providers' models: shard accuracies of honest
# models agree to about this much, so that a near tie does not make the bar below exclude one of them.
QUALITY_SPREAD_FLOOR = 0.02


def choose_parents(candidates: Iterable[Update], limit: int | None) -> list[str]:
    """The parents of a new gossip update: the best-ranked ``candidates`` (``model_rank``), at most
    one per provider, so that the mix averages different providers' models and one skewed provider's
    chain cannot fill it; ``limit`` None: every provider. A provider's best model whose measured
    quality lies more than 3 robust standard deviations (1.4826 x the median absolute deviation)
    below the median of the providers' bests is left out: an update the committee accepted but whose
    model it measured far worse than the others' (an attacker's that slipped through) must not take
    a provider's share of the mix. Returned sorted by id (the order the contract and ``gossip_base``
    use)."""
    best: dict[str, Update] = {}
    for u in sorted(candidates, key=model_rank, reverse=True):
        best.setdefault(u["provider"], u)
    ranked = [u for u in best.values() if not _far_below(u, best.values())]
    return sorted(u["id"] for u in ranked[:limit])


def _far_below(u: Update, peers: Iterable[Update]) -> bool:
    qualities = [p["medianQuality"] for p in peers if p.get("medianQuality") is not None]
    if u.get("medianQuality") is None or len(qualities) < 3:
        return False
    mid = statistics.median(qualities)
    spread = max(1.4826 * statistics.median(abs(q - mid) for q in qualities), QUALITY_SPREAD_FLOOR)
    return u["medianQuality"] < mid - 3 * spread


def final_mix(accepted: Iterable[Update]) -> list[str]:
    """The accepted updates whose mean ends a gossip run: the best fresh model of every provider (the
    parent rule, without a limit or a recency window). One provider's model carries the drift of its
    own last training; the mean of every provider's best averages it out, as a federated round does."""
    return choose_parents(fresh(accepted), limit=None)


# How many accepted updates a gossip model's final proposal names beside the mix (the contract's
# MaxFinalCandidates).
MAX_FINAL_CANDIDATES = 256


def final_candidates(accepted: Iterable[Update]) -> list[str]:
    """The accepted updates the committee judges beside the final mix: every accepted model (the
    best-ranked ``MAX_FINAL_CANDIDATES`` by ``model_rank`` where more), best first. A model's own
    quality can beat the mix's, e.g. where one provider's model stands far above the others."""
    ranked = sorted(accepted, key=model_rank, reverse=True)
    return [u["id"] for u in ranked[:MAX_FINAL_CANDIDATES]]


def final_choice(proposal: dict) -> tuple[str | None, list[float]]:
    """What a judged final proposal finishes on, as the contract decides it (``finishOnJudgments``):
    per entry (the mix, then each candidate) the median of the members' qualities; the highest wins,
    the mix on a tie, then the earlier candidate. Returns the winning candidate's id (None: the mix)
    and the medians."""
    judgments = proposal.get("judgments") or []
    n = 1 + len(proposal.get("candidates") or [])
    medians = [statistics.median(j["qualities"][i] for j in judgments) for i in range(n)]
    best = max(range(n), key=lambda i: (medians[i], -i))
    return (None if best == 0 else proposal["candidates"][best - 1]), medians
