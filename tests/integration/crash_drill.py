"""The crash-recovery drill of test_agents.py and test_restart_all.py: agents SIGKILLed mid-run.

Handed to ``run_experiment(..., each_turn=KillDrill({...}))``: on the supervision turn when an
agent is due (seconds after the model left ``proposed``) it is killed once and started again by
the supervisor. Agents due on the same turn all die before any of them restarts, so a drill that
names every agent leaves the consortium with no live agent for a moment.
"""

from __future__ import annotations

import os
import signal
import time

from fedcommittee.ledger import ModelStatus
from fedcommittee.supervision import Supervisor


class KillDrill:
    def __init__(self, kill_after: dict[str, float]) -> None:
        self.kills = dict(kill_after)  # agent name -> seconds after the model became active
        self.active_since: float | None = None

    def __call__(self, sup: Supervisor, model: dict | None) -> None:
        now = time.time()
        if self.active_since is None:
            if model is not None and model["status"] != ModelStatus.PROPOSED:
                self.active_since = now
            return
        due = [
            c
            for c in sup.children
            if c.name in self.kills and now - self.active_since >= self.kills[c.name] and c.alive()
        ]
        for c in due:
            self.kills.pop(c.name)
            assert c.proc is not None
            os.killpg(c.proc.pid, signal.SIGKILL)
        for c in due:
            assert c.proc is not None
            c.proc.wait()
            sup.say(f"drill: killed {c.name}; restarting it")
        for c in due:
            sup.start(c)
