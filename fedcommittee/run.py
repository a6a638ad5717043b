"""`fedcommittee run CONFIG`: a whole consortium on the local network, one command.

1. Org admins grant the roles the config names (``GrantRole``; skipped where the ledger has them).
2. One process per agent (``fedcommittee committee|provider|publish CONFIG --model-id ID ...``), each
   with its own Fabric identity; stdout/stderr to ``$FC_HOME/runs/<model>/logs/<agent>.out``, JSON
   logs to ``<agent>.jsonl``. An agent that dies before the model is final is restarted (agents are
   idempotent: they reconcile from the ledger), at most ``MAX_RESTARTS`` times.
3. Progress lines from the ledger (round, accepted / rejected / pending) until the model is finished
   or rejected, then the children are stopped, the model audited (``verify``) and a report written.
Ctrl-C stops every child (SIGTERM, then SIGKILL) before returning 130.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedcommittee.endpoints import Endpoints, NetworkNotRunning
from fedcommittee.experiment import Experiment
from fedcommittee.ledger import (
    ContractError,
    FedcommitteeClient,
    Gateway,
    GatewayError,
    Mode,
    ModelStatus,
    Role,
    UpdateStatus,
    load_profile,
)
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.runtime import run_dir

MAX_RESTARTS = 3
EXIT_OK, EXIT_FAILED = 0, 1


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


def progress_line(client: FedcommitteeClient, model: dict) -> str:
    mid = model["id"]
    if model["mode"] == Mode.GOSSIP:
        ups = list(client.iter_round_updates(mid, 0))
        r_desc = "gossip"
    else:
        r = int(model.get("currentRound") or 0)
        if r < 1:
            return f"model {model['status']}: approvals {model.get('approvals', 0)}/{model['quorum']}"
        ups = list(client.iter_round_updates(mid, r))
        rd = client.get_round(mid, r)
        r_desc = f"round {r}/{model['roundRules']['maxRounds']} {rd['status']}"
    c = {s: sum(1 for u in ups if u["status"] == s) for s in UpdateStatus}
    return (
        f"model {model['status']}, {r_desc}: {len(ups)} updates, {c[UpdateStatus.ACCEPTED]} accepted, "
        f"{c[UpdateStatus.REJECTED]} rejected, {c[UpdateStatus.PENDING]} pending"
    )


def run_experiment(
    exp: Experiment,
    config_path: Path,
    *,
    home: Path,
    timeout: float = 1800,
    report: bool = True,
    progress: bool = True,
    kill_after: dict[str, float] | None = None,
) -> int:
    """Run the consortium; returns 0 when the model finished and the audit found nothing.

    ``kill_after`` maps an agent name to seconds after the model became active at which it is killed
    once (SIGKILL) and restarted: a crash-recovery drill used by the integration tests. Agents due at
    the same time are all killed before any is restarted.
    """
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    endpoints = Endpoints.load(home)
    if not endpoints.fabric_available:
        raise NetworkNotRunning(f"Fabric is not available: {endpoints.fabric_reason}")
    model_id = exp.model_id or f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = exp.with_model_id(model_id)
    rdir = run_dir(home, model_id)
    (rdir / "logs").mkdir(parents=True, exist_ok=True)
    started = time.time()
    say(
        f"run {model_id}: {len(exp.providers)} providers, {len(exp.committee)} committee members, "
        f"{exp.mode}, ledger: {endpoints.ledger_words}"
    )
    profile = load_profile(endpoints.connection_profile)
    grant_roles(exp, profile, say)

    config_path = Path(config_path).resolve()
    children = [
        Child(
            m.name,
            _agent_argv(home, config_path, model_id, "committee", m.name),
            rdir / "logs" / f"{m.name}.out",
        )
        for m in exp.committee
    ]
    children += [
        Child(
            child,
            _agent_argv(home, config_path, model_id, "provider", *names),
            rdir / "logs" / f"{child}.out",
        )
        for child, names in provider_groups(exp)
    ]
    children.append(
        Child(
            "publisher",
            _agent_argv(home, config_path, model_id, "publish"),
            rdir / "logs" / "publisher.out",
        )
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    kills = dict(kill_after or {})
    final_status = None
    gw = Gateway.connect(profile, user=exp.publisher)
    client = FedcommitteeClient(gw.network().contract())
    try:
        for c in children:
            c.start(env)
        say(f"started {len(children)} agents; logs in {rdir / 'logs'}")
        last = ""
        active_since = None
        query_failing = False
        while True:
            now = time.time()
            if now - started > timeout:
                say(f"timed out after {timeout:.0f} s")
                break
            due = [
                c
                for c in children
                if active_since is not None
                and c.name in kills
                and now - active_since >= kills[c.name]
                and c.alive()
            ]
            # Every agent due now dies before any of them restarts: same-time kills are simultaneous.
            for c in due:
                kills.pop(c.name)
                assert c.proc is not None
                os.killpg(c.proc.pid, signal.SIGKILL)
            for c in due:
                assert c.proc is not None
                c.proc.wait()
                say(f"drill: killed {c.name}; restarting it")
            for c in due:
                c.start(env)
            try:
                model = client.get_model(model_id)
                line = progress_line(client, model)
                query_failing = False
            except ContractError:
                model = None
            except GatewayError as exc:
                # A peer too busy to answer in time (e.g. 100 agents on 2 cores) is no reason to stop
                # the experiment: the agents retry their own calls; we ask again on the next turn.
                if not query_failing:
                    say(f"ledger query failed ({type(exc).__name__}: {exc}); retrying")
                query_failing, model = True, None
            if model is not None:
                if active_since is None and model["status"] != ModelStatus.PROPOSED:
                    active_since = time.time()
                if line != last:
                    say(f"[{time.time() - started:6.1f} s] {line}")
                    last = line
                if ModelStatus(model["status"]).final:
                    final_status = model["status"]
                    break
            for c in children:
                if c.proc is not None and not c.alive():
                    code = c.proc.returncode
                    if code == 0 and model is not None and model["status"] != ModelStatus.ACTIVE:
                        continue
                    if code == 0 and exp.mode == Mode.GOSSIP and c.name != "publisher":
                        continue  # a gossip provider that made all its updates
                    c.exit_codes.append(code)
                    c.proc = None
                    if c.restarts < MAX_RESTARTS:
                        c.restarts += 1
                        say(f"{c.name} exited with {code}; restart {c.restarts}/{MAX_RESTARTS} (see {c.log})")
                        c.start(env)
                    else:
                        say(f"{c.name} exited with {code}; no restarts left (see {c.log})")
            time.sleep(2.0)
        # Give the agents a moment to see the final state and exit on their own.
        deadline = time.time() + 20
        while any(c.alive() for c in children) and time.time() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("interrupted: stopping agents")
        for c in children:
            c.stop()
        gw.close()
        raise
    finally:
        for c in children:
            c.stop()
    wall = time.time() - started
    say(f"model {final_status or 'unfinished'} after {wall:.1f} s")
    code = EXIT_OK if final_status == ModelStatus.FINISHED else EXIT_FAILED
    try:
        from fedcommittee.roles.auditor import audit_model
        from fedcommittee.roles.envelopes import load_private_key
        from fedcommittee.roles.reader import Reader
        from fedcommittee.storage import ContentStore, IpfsClient

        # As the publisher, a recipient of every sealed update: the audit opens them all.
        key = load_private_key(profile.identity(exp.publisher))
        if final_status is not None:
            with IpfsClient(endpoints.ipfs_api, timeout=60) as ipfs:
                reader = Reader(client, ContentStore(ipfs, pin=False), exp.model, private_key=key)
                rep = audit_model(reader, model_id)
            say(f"verify: {rep.checked} checks, {len(rep.findings)} discrepancies{rep.sealed_note()}")
            for f in rep.findings:
                say(f"  {f.where}: {f.problem}")
            if not rep.ok:
                code = EXIT_FAILED
        if report and final_status is not None:
            from fedcommittee.report import write_report

            audit = {"checks": rep.checked, "discrepancies": len(rep.findings)}
            path = write_report(client, endpoints, model_id, home=home, exp=exp, wall_seconds=wall,
                                private_key=key, verify=audit)  # fmt: skip
            say(f"report: {path}")
    finally:
        gw.close()
    return code
