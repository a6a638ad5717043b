"""Protocol facts more than one role uses, so that no role imports another. (Score bounds, round
closing, scoring and aggregation are the policy's: ``fedcommittee/policy.py``.)"""

from __future__ import annotations

from fedcommittee.experiment import Experiment
from fedcommittee.ledger.records import Round

__all__ = ["expected_providers"]


def expected_providers(exp: Experiment, round_doc: Round) -> int:
    """How many updates a round can get: its allocated providers, or every configured one."""
    allocated = round_doc.get("allocated")
    return len(exp.providers) if allocated is None else len(allocated)
