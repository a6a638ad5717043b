"""How an agent process runs a role: ``connect_agent`` builds its :class:`~.runtime.Agent` on the
running network, ``run_role`` drives the role's step in the level-triggered loop every role shares,
and ``run_roles`` hosts several agents in one process (``providers_per_process``).

The CLI calls these with a role object (``Publisher``, ``Provider``, ``Member``): the role files hold
protocol logic only, and the loop that runs them lives here, once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fedcommittee.endpoints import Endpoints
from fedcommittee.experiment import Experiment
from fedcommittee.ledger import (
    ConnectionProfile,
    FedcommitteeClient,
    Gateway,
    ModelStatus,
    Role,
    load_profile,
)
from fedcommittee.ledger.records import Model
from fedcommittee.roles.envelopes import identity_key, load_private_key
from fedcommittee.roles.reader import RecentObjects
from fedcommittee.roles.runtime import STEP_RETRYABLE, Agent, EventPump, JsonLog, run_dir
from fedcommittee.roles.shared_events import feed_for
from fedcommittee.storage import ContentStore, IpfsClient

__all__ = ["RoleStep", "connect_agent", "run_role", "run_roles"]


class RoleStep(Protocol):
    """A role's protocol logic, run by :func:`run_role`."""

    def step(self, model: Model | None) -> int | None:
        """One level-triggered pass over the ledger's state (``model``: None before it is published):
        do what is missing. Returns an exit code to stop the agent, or None to go on."""

    def final_fields(self, model: Model) -> dict[str, Any]:
        """Extra fields of the ``model_finished`` / ``model_rejected`` record."""

    def wait_seconds(self) -> float | None:
        """How long to wait for an event before the next pass (None: the agent's poll interval)."""

    def wakes_on(self, event: dict) -> bool:
        """Whether an event of our model (its payload) is worth a pass over the ledger."""


def connect_agent(
    exp: Experiment,
    *,
    user: str,
    role: str,
    name: str,
    home: Path,
    endpoints: Endpoints | None = None,
    profile: ConnectionProfile | None = None,
) -> Agent:
    """An Agent on the running network at ``home``: ``user``'s gateway (its org's peer), IPFS, its
    log and event checkpoint under ``run_dir``. ``profile``: the network's connection profile, when
    the caller has it already (agents hosted in one process share it)."""
    import torch

    torch.set_num_threads(1)
    if not exp.model_id:
        raise ValueError("the experiment has no model id (give --model-id or set model_id in the config)")
    endpoints = endpoints or Endpoints.load(home)
    if not endpoints.fabric_available:
        from fedcommittee.endpoints import NetworkNotRunning

        raise NetworkNotRunning(f"Fabric is not available: {endpoints.fabric_reason}")
    state_dir = run_dir(home, exp.model_id) / "agents" / name
    state_dir.mkdir(parents=True, exist_ok=True)
    log = JsonLog(run_dir(home, exp.model_id) / "logs" / f"{name}.jsonl", name, role)
    profile = profile or load_profile(endpoints.connection_profile)
    id_cfg = profile.identity(user)
    ident, _ = id_cfg.load()
    # Agents hosted in one process share one gRPC channel to their peer (each signs its own calls).
    peer = profile.peer(msp_id=ident.msp_id).name
    gateway = Gateway.connect(profile, user=user, peer=peer, share_channel=True)
    ipfs = IpfsClient(endpoints.ipfs_api, timeout=60)
    agent = Agent(
        exp,
        name,
        role,
        FedcommitteeClient(gateway.network().contract()),
        ContentStore(ipfs),
        me=identity_key(ident.msp_id, ident.certificate),
        log=log,
        private_key=load_private_key(id_cfg),
        profile=profile,
        # One event stream per peer and model in the process, fanned out to its agents.
        events=feed_for(
            gateway.endpoint, exp.model_id, lambda: shared_pump(profile, user, peer, name, state_dir, log)
        ),
        closers=[gateway.close, ipfs.close],
        poll_seconds=poll_seconds(),
        # A member reads a round's global model and updates to score them, then again to check the
        # round's aggregate: the second time from memory. The publisher reads the updates it
        # prefetched and the global it recorded itself. Providers read each object once.
        recent=RecentObjects() if role in (Role.COMMITTEE, Role.PUBLISHER) else None,
    )
    log("start", user=user, identity=agent.me[:24], model=exp.model_id, pid=os.getpid(),
        ledger=endpoints.backend)  # fmt: skip
    return agent


def shared_pump(
    profile: ConnectionProfile, user: str, peer: str, name: str, state_dir: Path, log: JsonLog
) -> EventPump:
    """The event pump of the process's agents of one model and peer, made by the first of them: on
    a gateway of its own (the shared channel, the first agent's identity), which lives as long as
    the pump does, not as long as that agent."""
    gateway = Gateway.connect(profile, user=user, peer=peer, share_channel=True)
    return EventPump(gateway, state_dir / "events.json", name, log)


def poll_seconds() -> float:
    """How long an agent waits for an event before it reads the ledger anyway: ``FC_POLL_SECONDS``,
    else 3. The poll only covers lost events; a scale run raises it: 1,000 agents reading the ledger
    every 3 s are 333 reads a second before anything has happened."""
    raw = os.environ.get("FC_POLL_SECONDS", "").strip()
    if not raw:
        return 3.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 600:
        raise ValueError(f"FC_POLL_SECONDS must be a number of seconds from 0.1 to 600, got {raw!r}")
    return value


def run_role(agent: Agent, role: RoleStep) -> int:
    """The loop of every role agent: read the model, stop if it is final (0 finished, 1 rejected),
    else run the role's step (a ledger or IPFS failure is logged and retried next pass), then wait
    for an event."""
    agent.start_events()
    while True:
        model = agent.model()
        if model is not None and ModelStatus(model["status"]).final:
            status = model["status"]
            agent.log(
                "model_" + status,
                reads=agent.client.reads,
                reads_by_query=dict(agent.client.reads_by_query.most_common()),
                **role.final_fields(model),
            )
            return 0 if status == ModelStatus.FINISHED else 1
        try:
            code = role.step(model)
        except STEP_RETRYABLE as exc:  # the round closed meanwhile, or a node is restarting
            agent.step_failed(exc)
            code = None
        if code is not None:
            return code
        agent.wait(role.wait_seconds(), wakes_on=role.wakes_on)


def run_roles(jobs: list[tuple[Agent, Callable[[], RoleStep]]]) -> int:
    """Several agents in one process, one thread each (named after the agent), each ``run_role`` with
    the role its factory builds in that thread (they share one torch and one data split). Exit code:
    the worst of theirs. If one of them raises, the whole group exits at once with an error, so the
    orchestrator restarts it like any dead agent (agents are idempotent: each reconciles from the
    ledger, so restarting its healthy neighbours is harmless)."""
    codes: dict[str, int] = {}
    failed = threading.Event()

    def one(agent: Agent, make: Callable[[], RoleStep]) -> None:
        try:
            codes[agent.name] = run_role(agent, make())
        except BaseException as exc:  # noqa: BLE001 (logged, then the group exits non-zero)
            agent.log("crashed", level="error", error=f"{type(exc).__name__}: {exc}")
            codes[agent.name] = 1
            failed.set()

    threads = [threading.Thread(target=one, args=job, name=f"{job[0].role}-{job[0].name}", daemon=True)
               for job in jobs]  # fmt: skip
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and not failed.is_set():
        failed.wait(1.0)
    if failed.is_set():
        return 1
    return max(codes.values(), default=0)
