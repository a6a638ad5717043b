"""The crash-recovery drill of test_agents.py and test_restart_all.py: agents SIGKILLed mid-run.

Handed to ``run_experiment(..., each_turn=KillDrill({...}))``: on the first supervision turn that
sees the model's current round at or past an agent's round (the model active), the agent is killed
once and started again by the supervisor. Agents due on the same turn all die before any of them
restarts, so a drill that names every agent leaves the consortium with no live agent for a moment.

Kills are keyed on the round, not on seconds: rounds no longer wait out settle windows, and a drill
timed in seconds went off after a fast run had already finished.
"""

from __future__ import annotations

import os
import signal

from fedcommittee.ledger import ModelStatus
from fedcommittee.supervision import Supervisor


class KillDrill:
    def __init__(self, kill_in_round: dict[str, int]) -> None:
        self.kills = dict(kill_in_round)  # agent name -> the round it is killed in (once it opens)

    def __call__(self, sup: Supervisor, model: dict | None) -> None:
        if model is None or model["status"] != ModelStatus.ACTIVE:
            return
        now_round = int(model.get("currentRound") or 0)
        due = [
            c for c in sup.children if c.name in self.kills and now_round >= self.kills[c.name] and c.alive()
        ]
        for c in due:
            self.kills.pop(c.name)
            assert c.proc is not None
            os.killpg(c.proc.pid, signal.SIGKILL)
        for c in due:
            assert c.proc is not None
            c.proc.wait()
            sup.say(f"drill: killed {c.name} in round {now_round}; restarting it")
        for c in due:
            sup.start(c)
