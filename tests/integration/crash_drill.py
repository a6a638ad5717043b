"""The crash-recovery drill of test_agents.py and test_restart_all.py: agents SIGKILLed mid-run.

Handed to ``run_experiment(..., each_turn=KillDrill({...}))``: on the first supervision turn that
sees the model's current round at or past an agent's round (the model active), the agent is killed
once and started again by the supervisor. Agents due on the same turn all die before any of them
restarts, so a drill that names every agent leaves the consortium with no live agent for a moment.

``on_kill``, if given, is called with the model state of that turn just before the kills, in the
supervisor's thread, so a test can read the ledger as it stood at the kill (a watcher polling from
another thread can miss the moment: a busy machine once went from "unpublished" to round 3 between
two of its reads).

Kills are keyed on the round, not on seconds: rounds no longer wait out settle windows, and a drill
timed in seconds went off after a fast run had already finished.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from fedcommittee.ledger import ModelStatus
from fedcommittee.supervision import Supervisor


class KillDrill:
    def __init__(self, kill_in_round: dict[str, int], on_kill: Callable[[dict], None] | None = None) -> None:
        self.kills = dict(kill_in_round)  # agent name -> the round it is killed in (once it opens)
        self.on_kill = on_kill

    def __call__(self, sup: Supervisor, model: dict | None) -> None:
        if model is None or model["status"] != ModelStatus.ACTIVE:
            return
        now_round = int(model.get("currentRound") or 0)
        due = [
            c for c in sup.children if c.name in self.kills and now_round >= self.kills[c.name] and c.alive()
        ]
        if due and self.on_kill is not None:
            self.on_kill(model)
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
