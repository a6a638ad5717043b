"""`fedcommittee run CONFIG`: a whole consortium on the local network, one command.

1. Org admins grant the roles the config names (``GrantRole``; skipped where the ledger has them).
2. One process per agent (``fedcommittee committee|provider|publish CONFIG --model-id ID ...``), each
   with its own Fabric identity, started and restarted by :mod:`fedcommittee.supervision`.
3. Progress lines from the ledger (:mod:`fedcommittee.progress`: round, accepted / rejected /
   pending) until the model is finished or rejected, then the children are stopped, the model
   audited (``verify``) and a report written (:mod:`fedcommittee.postrun`).
Ctrl-C, or a SIGTERM to the run, stops every child (SIGTERM, then SIGKILL) before returning 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fedcommittee.endpoints import Endpoints, NetworkNotRunning
from fedcommittee.experiment import Experiment
from fedcommittee.ledger import (
    ContractError,
    FedcommitteeClient,
    Gateway,
    Mode,
    ModelStatus,
    Role,
    load_profile,
)
from fedcommittee.postrun import verify_and_report
from fedcommittee.progress import Progress
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.runtime import run_dir
from fedcommittee.supervision import Supervisor, agent_children

EXIT_OK, EXIT_FAILED = 0, 1
# Called once a turn with the agents and the model's latest record (None while there is none).
TurnHook = Callable[[Supervisor, dict | None], None]


def grant_roles(exp: Experiment, profile, say=print) -> list[tuple[str, str]]:
    """Org admins grant what the config needs; returns the (user, role) pairs actually granted."""
    wanted = [(exp.publisher, Role.PUBLISHER)]
    wanted += [(m.user, Role.COMMITTEE) for m in exp.committee]
    wanted += [(p.user, Role.PROVIDER) for p in exp.providers]
    granted = []
    admins: dict[str, tuple[Gateway, FedcommitteeClient]] = {}
    try:
        for user, role in wanted:
            ident, _ = profile.identity(user).load()
            key = identity_key(ident.msp_id, ident.certificate)
            admin = user.split("-")[0] + "-admin"
            if admin not in admins:
                gw = Gateway.connect(profile, user=admin)
                admins[admin] = (gw, FedcommitteeClient(gw.network().contract()))
            client = admins[admin][1]
            try:
                roles = client.get_account(key).get("roles") or []
            except ContractError:
                roles = []
            if role in roles:
                continue
            client.grant_role(key, role)
            granted.append((user, role))
            say(f"granted {role:<9} to {user} (by {admin})")
    finally:
        for gw, _ in admins.values():
            gw.close()
    return granted


def _supervise(sup: Supervisor, watch: Progress, *, timeout: float, each_turn: TurnHook | None) -> str | None:
    """Watch the model until it is final or ``timeout`` passes; returns its final status, if any."""
    while time.time() - watch.started <= timeout:
        model = watch.poll()
        if model is not None and ModelStatus(model["status"]).final:
            return model["status"]
        if each_turn is not None:
            each_turn(sup, model)
        sup.restart_exited(model)
        time.sleep(2.0)
    sup.say(f"timed out after {timeout:.0f} s")
    return None


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, a SIGTERM to this process raises KeyboardInterrupt, as Ctrl-C does, so the
    agents are stopped on the way out. (Python's default for SIGTERM ends the process at once; the
    agents run in sessions of their own and would be left running.) Main thread only: elsewhere
    signals cannot be handled and the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_experiment(
    exp: Experiment,
    config_path: Path,
    *,
    home: Path,
    timeout: float = 1800,
    report: bool = True,
    progress: bool = True,
    each_turn: TurnHook | None = None,
) -> int:
    """Run the consortium; returns 0 when the model finished and the audit found nothing.

    ``each_turn`` is called on every turn of the watch loop, after the ledger query and before
    exited agents are restarted, with the :class:`Supervisor` and the model's record: a caller's
    way to act on a running consortium (the integration tests' crash drills kill agents with it).
    """
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    endpoints = Endpoints.load(home)
    if not endpoints.fabric_available:
        raise NetworkNotRunning(f"Fabric is not available: {endpoints.fabric_reason}")
    model_id = exp.model_id or f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = exp.with_model_id(model_id)
    logs = run_dir(home, model_id) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    say(
        f"run {model_id}: {len(exp.providers)} providers, {len(exp.committee)} committee members, "
        f"{exp.mode}, ledger: {endpoints.ledger_words}"
    )
    profile = load_profile(endpoints.connection_profile)
    grant_roles(exp, profile, say)

    children = agent_children(exp, Path(config_path).resolve(), home=home, logs=logs)
    sup = Supervisor(children, gossip=exp.mode == Mode.GOSSIP, say=say)
    gw = Gateway.connect(profile, user=exp.publisher)
    client = FedcommitteeClient(gw.network().contract())
    try:
        watch = Progress(client, model_id, started=started, say=say)
        try:
            with sigterm_interrupts():
                sup.start_all()
                say(f"started {len(children)} agents; logs in {logs}")
                final_status = _supervise(sup, watch, timeout=timeout, each_turn=each_turn)
                sup.wait_for_exit(20)
        except KeyboardInterrupt:
            say("interrupted: stopping agents")
            raise
        finally:
            sup.stop_all()
        wall = time.time() - started
        say(f"model {final_status or 'unfinished'} after {wall:.1f} s")
        if final_status is None:
            return EXIT_FAILED
        clean = verify_and_report(
            client, endpoints, exp, profile, home=home, wall=wall, report=report, say=say
        )
        return EXIT_OK if final_status == ModelStatus.FINISHED and clean else EXIT_FAILED
    finally:
        gw.close()
