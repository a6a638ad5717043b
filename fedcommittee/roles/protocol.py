"""Protocol rules that more than one role uses, so that no role imports another.

TODO(lead): ``fedcommittee/policy.py`` (issue 16 item 2, branch wt-policy) is to own score bounds;
when it lands, take them from there and drop this module.
"""

from __future__ import annotations

from fedcommittee.experiment import Experiment
from fedcommittee.ledger.records import Round

__all__ = ["SCORE_MAX", "SCORE_MIN", "clamp_score", "expected_providers"]

# The range of a committee score: the publisher declares it in PublishModel's acceptance rule, and
# members clamp every score (and send SCORE_MIN for what they reject unseen) into it.
SCORE_MIN, SCORE_MAX = -1000.0, 1000.0


def clamp_score(x: float) -> float:
    """``x`` within [SCORE_MIN, SCORE_MAX]; NaN counts as the worst score."""
    if x != x:  # NaN
        return SCORE_MIN
    return max(SCORE_MIN, min(SCORE_MAX, float(x)))


def expected_providers(exp: Experiment, round_doc: Round) -> int:
    """How many updates a round can get: its allocated providers, or every configured one."""
    allocated = round_doc.get("allocated")
    return len(exp.providers) if allocated is None else len(allocated)
