"""The agent processes of ``fedcommittee run``: one per agent, started, restarted and stopped here.

An agent that dies before the model is final is restarted (agents are idempotent: they reconcile
from the ledger), at most ``MAX_RESTARTS`` times. Each child's stdout/stderr goes to
``<run>/logs/<child>.out``; its JSON log (written by the agent itself) to ``<child>.jsonl``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedcommittee.experiment import Experiment
from fedcommittee.ledger import ModelStatus

MAX_RESTARTS = 3


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 (handed to the child)
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _agent_argv(home: Path, config: Path, model_id: str, role: str, *names: str) -> list[str]:
    argv = [sys.executable, "-m", "fedcommittee.cli", "--home", str(home), role, str(config)]
    argv += ["--model-id", model_id]
    for name in names:
        argv += ["--name", name]
    return argv


def provider_groups(exp: Experiment) -> list[tuple[str, list[str]]]:
    """(child name, provider names) per provider process: ``providers_per_process`` in each, in
    config order. A child hosting one provider is named after it, a group after its first and last."""
    names = [p.name for p in exp.providers]
    k = exp.providers_per_process
    groups = [names[i : i + k] for i in range(0, len(names), k)]
    return [(g[0] if len(g) == 1 else f"providers-{g[0]}..{g[-1]}", g) for g in groups]


def agent_children(exp: Experiment, config: Path, *, home: Path, logs: Path) -> list[Child]:
    """One child per committee member, per provider group, and the publisher (started last)."""
    model_id = exp.model_id
    assert model_id, "the experiment's model id is set before its agents are made"
    wanted = [(m.name, "committee", [m.name]) for m in exp.committee]
    wanted += [(child, "provider", names) for child, names in provider_groups(exp)]
    wanted.append(("publisher", "publish", []))
    return [
        Child(name, _agent_argv(home, config, model_id, role, *names), logs / f"{name}.out")
        for name, role, names in wanted
    ]


class Supervisor:
    """Starts the children, restarts one that exits before its work is done, stops them all."""

    def __init__(self, children: list[Child], *, gossip: bool, say: Callable[[str], None]) -> None:
        self.children = children
        self.gossip = gossip
        self.say = say
        # One thread each for torch: the agents share the machine's cores.
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def start_all(self) -> None:
        for c in self.children:
            c.start(self.env)

    def start(self, child: Child) -> None:
        child.start(self.env)

    def restart_exited(self, model: dict | None) -> None:
        """Restart each child that exited while its work remained (``model``: the latest record)."""
        for c in self.children:
            if c.proc is None or c.alive():
                continue
            code = c.proc.returncode
            if code == 0 and model is not None and model["status"] != ModelStatus.ACTIVE:
                continue
            if code == 0 and self.gossip and c.name != "publisher":
                continue  # a gossip provider that made all its updates
            c.exit_codes.append(code)
            c.proc = None
            if c.restarts < MAX_RESTARTS:
                c.restarts += 1
                self.say(f"{c.name} exited with {code}; restart {c.restarts}/{MAX_RESTARTS} (see {c.log})")
                c.start(self.env)
            else:
                self.say(f"{c.name} exited with {code}; no restarts left (see {c.log})")

    def wait_for_exit(self, seconds: float) -> None:
        """Give the agents a moment to see the final state and exit on their own."""
        deadline = time.time() + seconds
        while any(c.alive() for c in self.children) and time.time() < deadline:
            time.sleep(0.5)

    def stop_all(self) -> None:
        for c in self.children:
            c.stop()
