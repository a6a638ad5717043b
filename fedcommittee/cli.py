"""The `fedcommittee` command.

Exit codes: 0 success; 1 a check or operation failed; 2 bad usage or input;
3 a required part of the network is not available on this machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fedcommittee import __version__
from fedcommittee.endpoints import Endpoints, NetworkNotRunning
from fedcommittee.ledger.errors import GatewayError
from fedcommittee.storage.errors import StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
T = TypeVar("T")


class UsageError(ValueError):
    """The command line asks for something that cannot be done as given."""


def _named(lookup: Callable[[str], T], name: str) -> T:
    """``lookup(name)`` for a name given on the command line (a provider, a member, a profile
    identity). Only here is a KeyError bad input: its message, which lists the names there are,
    becomes the usage error; a KeyError anywhere else is a bug and keeps its traceback."""
    try:
        return lookup(name)
    except KeyError as exc:
        raise UsageError(exc.args[0] if exc.args else f"unknown name {name!r}") from None


def _ledger_endpoints(args: argparse.Namespace) -> Endpoints:
    endpoints = Endpoints.load(args.home)
    if not endpoints.fabric_available:
        raise NetworkNotRunning(f"Fabric is not available: {endpoints.fabric_reason}")
    return endpoints


def _profile(args: argparse.Namespace):
    from fedcommittee.ledger import load_profile

    return load_profile(_ledger_endpoints(args).connection_profile)


def cmd_smoke(args: argparse.Namespace) -> int:
    from fedcommittee.smoke import run_smoke

    endpoints = Endpoints.load(args.home)
    checks = []
    for check in run_smoke(endpoints):
        checks.append(check)
        mark = "ok  " if check.ok else "FAIL"
        print(f"[{mark}] {check.name:<28} {check.seconds:6.2f} s  {check.detail}", flush=True)
    if not all(c.ok for c in checks):
        return EXIT_FAILED
    if not endpoints.fabric_available:
        print(f"[n/a ] ledger: {endpoints.fabric_reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"ledger backend: {endpoints.ledger_words}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ agents


def _experiment(args: argparse.Namespace):
    from fedcommittee.experiment import load_experiment

    # The identities are checked against the users of the network at --home (where one runs).
    return load_experiment(args.config, model_id=args.model_id, home=args.home)


def _agent(args: argparse.Namespace, role: str, user: str, name: str, exp=None, profile=None):
    from fedcommittee.endpoints import default_home
    from fedcommittee.roles.driver import connect_agent

    exp = exp or _experiment(args)
    if args.user:  # the config's own users are checked when it loads
        _named(_profile(args).identity, args.user)
    home = args.home or default_home()
    return connect_agent(exp, user=user, role=role, name=name, home=home, profile=profile)


def cmd_publish(args: argparse.Namespace) -> int:
    from fedcommittee.roles.driver import run_role
    from fedcommittee.roles.publisher import Publisher

    exp = _experiment(args)
    agent = _agent(args, "publisher", args.user or exp.publisher, "publisher")
    try:
        return run_role(agent, Publisher(agent))
    finally:
        agent.close()


def cmd_provider(args: argparse.Namespace) -> int:
    from fedcommittee.roles.driver import run_role, run_roles
    from fedcommittee.roles.provider import Provider

    exp = _experiment(args)
    names = list(dict.fromkeys(args.name))
    if args.user and len(names) > 1:
        raise UsageError("--user names one identity: give it with a single --name")
    cfgs = [_named(exp.provider, n) for n in names]
    agents = []
    # Hosted providers share one parse of the config and of the connection profile: each takes
    # seconds at 1,000 providers, and 200 providers in a process took minutes to start.
    profile = _profile(args) if len(cfgs) > 1 else None
    try:
        for cfg in cfgs:
            user = args.user or cfg.user
            agents.append((_agent(args, "provider", user, cfg.name, exp=exp, profile=profile), cfg.name))
        if len(agents) == 1:
            return run_role(agents[0][0], Provider(*agents[0]))
        return run_roles([(agent, lambda a=agent, n=name: Provider(a, n)) for agent, name in agents])
    finally:
        for agent, _ in agents:
            agent.close()


def cmd_committee(args: argparse.Namespace) -> int:
    from fedcommittee.roles.committee import Member
    from fedcommittee.roles.driver import run_role

    cfg = _named(_experiment(args).member, args.name)
    agent = _agent(args, "committee", args.user or cfg.user, cfg.name)
    try:
        return run_role(agent, Member(agent, cfg.name))
    finally:
        agent.close()


# ------------------------------------------------------------------------------------------ queries


def _client(args: argparse.Namespace):
    from fedcommittee.ledger import FedcommitteeClient, Gateway, load_profile

    endpoints = _ledger_endpoints(args)
    profile = load_profile(endpoints.connection_profile)
    _named(profile.identity, args.user)
    gw = Gateway.connect(profile, user=args.user)
    return endpoints, gw, FedcommitteeClient(gw.network().contract())


def _model_ids(client, model_id: str | None) -> list[str]:
    if model_id:
        return [model_id]
    return [m["id"] for m in client.iter_models()]


def cmd_status(args: argparse.Namespace) -> int:
    import json as _json

    from fedcommittee.ledger import Mode, UpdateStatus

    _, gw, client = _client(args)
    with gw:
        out = []
        for mid in _model_ids(client, args.model_id):
            m = client.get_model(mid)
            info = {"model": mid, "status": m["status"], "mode": m["mode"], "round": m.get("currentRound"),
                    "quorum": m["quorum"], "rounds": [], "pending_verdicts": []}  # fmt: skip
            rounds = range(1, int(m.get("currentRound") or 0) + 1) if m["mode"] == Mode.FEDERATED else [0]
            for r in rounds:
                ups = list(client.iter_round_updates(mid, r))
                shown = (UpdateStatus.ACCEPTED, UpdateStatus.REJECTED, UpdateStatus.PENDING)
                counts = {str(s): sum(1 for u in ups if u["status"] == s) for s in shown}
                rd = client.get_round(mid, r) if r else {"status": m["status"]}
                info["rounds"].append({"round": r, "status": rd["status"], "updates": len(ups), **counts})
                for u in ups:
                    if u["status"] == UpdateStatus.PENDING:
                        info["pending_verdicts"].append(
                            {"update": u["id"], "round": r, "verdicts": u.get("verdictCount", 0)}
                        )
            out.append(info)
        if args.json:
            print(_json.dumps(out, indent=2))
            return EXIT_OK
        if not out:
            print("no models on the ledger")
        for info in out:
            print(f"model {info['model']}: {info['status']} ({info['mode']}), round {info['round']}, "
                  f"quorum {info['quorum']}")  # fmt: skip
            for r in info["rounds"]:
                print(f"  round {r['round']:>3} {r['status']:<8} updates {r['updates']:>3}  "
                      f"accepted {r['accepted']:>3}  rejected {r['rejected']:>3}  "
                      f"pending {r['pending']:>3}")  # fmt: skip
            for p in info["pending_verdicts"]:
                print(f"  pending: update {p['update'][:16]} (round {p['round']}) "
                      f"has {p['verdicts']} verdict(s)")  # fmt: skip
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    import json as _json

    _, gw, client = _client(args)
    with gw:
        history = client.get_history(args.kind, args.id)
    if args.json:
        print(_json.dumps(history, indent=2))
        return EXIT_OK
    entries = history if isinstance(history, list) else (history or {}).get("items", [history])
    for e in entries:
        print(_json.dumps(e, separators=(",", ":"), sort_keys=True))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from fedcommittee.ledger import load_profile
    from fedcommittee.roles.auditor import audit_model
    from fedcommittee.roles.envelopes import load_private_key
    from fedcommittee.roles.reader import Reader
    from fedcommittee.storage import ContentStore, IpfsClient

    endpoints, gw, client = _client(args)
    # Our key opens sealed updates where --user is one of their recipients (a member, the publisher).
    key = load_private_key(load_profile(endpoints.connection_profile).identity(args.user))
    failed = False
    with gw, IpfsClient(endpoints.ipfs_api, timeout=60) as ipfs:
        reader = Reader(client, ContentStore(ipfs, pin=False), "", private_key=key)
        for mid in _model_ids(client, args.model_id):
            rep = audit_model(reader, mid, progress=lambda m: print(f"  {m}", flush=True))
            mark = "ok  " if rep.ok else "FAIL"
            print(
                f"[{mark}] {mid}: {rep.checked} objects/aggregates checked, {len(rep.findings)} discrepancies"
                f"{rep.sealed_note()}"
            )
            failed |= not rep.ok
    return EXIT_FAILED if failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from fedcommittee.endpoints import default_home
    from fedcommittee.report import write_report

    exp = None
    if args.config:
        from fedcommittee.experiment import load_experiment

        exp = load_experiment(args.config, model_id=args.model_id, home=args.home)
    endpoints, gw, client = _client(args)
    from fedcommittee.ledger import load_profile
    from fedcommittee.roles.envelopes import load_private_key

    key = load_private_key(load_profile(endpoints.connection_profile).identity(args.user))
    with gw:
        path = write_report(client, endpoints, args.model_id, home=args.home or default_home(), exp=exp,
                            out=args.out, private_key=key)  # fmt: skip
    print(f"report: {path}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from fedcommittee.dashboard import LedgerView, latest_run, run_dashboard
    from fedcommittee.endpoints import default_home
    from fedcommittee.roles.runtime import run_dir

    home = args.home or default_home()
    if args.interval <= 0 or args.late_seconds <= 0:
        raise UsageError("--interval and --late-seconds must be positive")
    model_id = args.model_id or latest_run(home)
    if model_id is None:
        raise UsageError(f"no run folder under {home / 'runs'}: start a run with `fedcommittee run CONFIG` "
                         "(e.g. configs/default.yaml), or point --home/FC_HOME at the state directory "
                         "it used")  # fmt: skip
    folder = run_dir(home, model_id)
    if not folder.is_dir():
        raise UsageError(
            f"no run folder {folder}: start the run with `fedcommittee run CONFIG --model-id {model_id}`, "
            f"or give --model-id of a run under {home / 'runs'}"
        )
    ledger = None if args.no_ledger else LedgerView(lambda: _client(args)[1:], model_id)
    return run_dashboard(folder / "logs", model_id, interval=args.interval, once=args.once,
                         late_seconds=args.late_seconds, ledger=ledger,
                         ledger_off_reason="not queried (--no-ledger)")  # fmt: skip


def rule_change_of(args: argparse.Namespace) -> dict:
    """The ProposeRuleChange document from the command line (only what was given)."""
    change: dict = {}
    if args.threshold is not None:
        change["acceptanceThreshold"] = args.threshold
    if args.quorum is not None:
        change["quorum"] = args.quorum
    if args.deadline is not None:
        change["deadlineSeconds"] = args.deadline
    if args.remove_member:
        change["removeMember"] = args.remove_member
    if not change:
        raise UsageError("give at least one change: --threshold, --quorum, --deadline or --remove-member")
    if args.reason:
        change["reason"] = args.reason
    return change


def _print_rule_change(rc: dict) -> None:
    votes = ", ".join(f"{v['org']} {'yes' if v['approve'] else 'no'}" for v in rc.get("votes") or [])
    change = {k: v for k, v in (rc.get("change") or {}).items() if k != "reason"}
    line = (
        f"{rc['id']}  {rc['status']:<8} {rc.get('approvals', 0)}/{rc.get('required')} approvals "
        f"({rc.get('policy')} of {', '.join(rc.get('orgs') or [])})  change {change}"
    )
    if votes:
        line += f"  votes: {votes}"
    if rc.get("outcome"):
        line += f"  outcome: {rc['outcome']}"
    print(line)


def cmd_rules(args: argparse.Namespace) -> int:
    import json as _json

    from fedcommittee.ledger import CommitError, ContractError, retrying_conflicts

    change = rule_change_of(args) if args.action == "propose" else None
    _, gw, client = _client(args)
    with gw:
        try:
            # A running model's rounds write the records these read: a conflict is sent again.
            if args.action == "propose":
                pid = retrying_conflicts(client.propose_rule_change, args.model_id, change).txid
                print(f"proposed {pid}: org admins vote with `fedcommittee rules vote {pid} --approve`")
                _print_rule_change(client.get_rule_change(pid))
            elif args.action == "vote":
                retrying_conflicts(client.vote_rule_change, args.proposal_id, args.approve)
                _print_rule_change(client.get_rule_change(args.proposal_id))
            else:
                items = list(client.iter_rule_changes(args.model_id))
                if args.json:
                    print(_json.dumps(items, indent=2))
                elif not items:
                    print(f"no rule changes proposed for {args.model_id}")
                for rc in [] if args.json else items:
                    _print_rule_change(rc)
        except ContractError as exc:
            # The contract says who may do what; its message is the useful part.
            print(f"fedcommittee: refused by the contract: {exc.chaincode_message or exc}", file=sys.stderr)
            return EXIT_FAILED
        except CommitError as exc:
            print(f"fedcommittee: the ledger did not commit it ({exc.validation_code}): nothing changed, "
                  "try again", file=sys.stderr)  # fmt: skip
            return EXIT_FAILED
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from fedcommittee.endpoints import default_home
    from fedcommittee.run import run_experiment

    exp = _experiment(args)
    return run_experiment(exp, args.config, home=args.home or default_home(), timeout=args.timeout,
                          report=not args.no_report, progress=not args.quiet)  # fmt: skip


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, on either side of the subcommand (`fedcommittee --home X
    status` and `fedcommittee status --home X`).

    argparse copies every attribute a subparser sets onto the top-level namespace, so a
    subcommand's copy of an option has no default (SUPPRESS): it sets the value only when given
    there, and never erases one given before the subcommand."""
    parser.add_argument(
        "--home",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        help="state directory of the local network (default: $FC_HOME, else ./.fedcommittee)",
    )


def _command(sub, name: str, help_: str, **kwargs) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=kwargs.pop("description", help_), **kwargs)
    add_global_options(p, top=False)
    return p


def _add_smoke(sub) -> None:
    smoke = _command(
        sub,
        "smoke",
        "prove the running network end to end (IPFS round trip, ledger submit and read back)",
        description="Prove the running network end to end: put 1 MiB of random bytes into IPFS and "
        "read it back hash-verified, then have org1's admin grant or revoke a role of org1-user1 "
        "through the Gateway (endorse, submit, commit status) and read the change back as that user. "
        "Exit 0 when every check passes, 1 when one fails, 3 when the ledger is not available.",
    )
    smoke.set_defaults(func=cmd_smoke)


def _agent_parser(sub, name: str, help_: str, who: str | None):
    p = _command(sub, name, help_)
    p.add_argument("config", type=Path, help="experiment YAML (configs/*.yaml)")
    p.add_argument("--model-id", help="model id on the ledger (default: model_id in the config)")
    if who == "provider":
        p.add_argument(
            "--name",
            required=True,
            action="append",
            help="the provider's name in the config (required); repeat it to host several in one process",
        )
    elif who:
        p.add_argument("--name", required=True, help=f"the {who}'s name in the config (required)")
    p.add_argument("--user", help="profile identity to act as (default: the one the config names)")
    return p


def _add_agents(sub) -> None:
    publish = "publisher agent: publish the model, then close rounds and record aggregates"
    _agent_parser(sub, "publish", publish, None).set_defaults(func=cmd_publish)
    provide = "provider agent: train on private data and submit updates"
    _agent_parser(sub, "provider", provide, "provider").set_defaults(func=cmd_provider)
    committee = "committee agent: approve the model, score updates, confirm aggregates"
    _agent_parser(sub, "committee", committee, "member").set_defaults(func=cmd_committee)


def _query_parser(sub, name: str, help_: str):
    p = _command(sub, name, help_)
    p.add_argument("--user", default="org1-admin", help="profile identity to query as (default: org1-admin)")
    return p


def _add_queries(sub) -> None:
    st = _query_parser(sub, "status", "models, rounds, accepted/rejected counts and pending verdicts")
    st.add_argument("--model-id", help="one model (default: every model)")
    st.add_argument("--json", action="store_true", help="JSON instead of text lines (default: text)")
    st.set_defaults(func=cmd_status)

    hi = _query_parser(sub, "history", "the ledger's audit trail of one record (GetHistory)")
    hi.add_argument(
        "kind",
        choices=["model", "update", "account", "round", "role"],
        help="the kind of record",
    )
    hi.add_argument("id", help="model id, update id, identity, '<model>:<round>' or '<role>:<identity>'")
    hi.add_argument(
        "--json", action="store_true", help="one JSON document (default: one JSON line per version)"
    )
    hi.set_defaults(func=cmd_history)

    ve = _query_parser(
        sub,
        "verify",
        "audit: re-fetch every object a model references, check hashes, recompute aggregates (sealed "
        "updates are opened with --user's key where it is a recipient, else counted as not opened)",
    )
    ve.add_argument("--model-id", help="one model (default: every model)")
    ve.set_defaults(func=cmd_verify)

    rp = _query_parser(
        sub, "report", "HTML report with PNG plots (accuracy, scores, rewards, ledger latency)"
    )
    rp.add_argument("--model-id", required=True, help="the model to report on (required)")
    rp.add_argument(
        "--config",
        type=Path,
        help="the experiment YAML: adds test-set accuracy per round and the config's names of the "
        "identities (default: none, so neither)",
    )
    rp.add_argument("--out", type=Path, help="output folder (default: $FC_HOME/runs/<model>/report)")
    rp.set_defaults(func=cmd_report)


def _add_dashboard(sub) -> None:
    da = _query_parser(
        sub,
        "dashboard",
        "live terminal view of a run from its agents' logs (and the ledger, where reachable)",
    )
    da.description = (
        "Follow the JSON-lines logs of one run ($FC_HOME/runs/<model>/logs/*.jsonl) and redraw a "
        "terminal view every --interval seconds: each agent's role, last event and counts (flagged "
        "LATE when it has been quiet longer than --late-seconds while the model is not finished), "
        "each provider's update in the latest round with the committee's scores and accept flags, "
        "submit-to-commit latency per transaction type (median, p95), and the last notable events. "
        "Where Fabric is reachable it also shows the ledger's status of the model. Works on a "
        "finished run too. Ctrl-C quits."
    )
    da.add_argument(
        "--model-id", metavar="M", help="the run to show (default: the most recently modified run)"
    )
    da.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between redraws (default: 2)"
    )
    da.add_argument(
        "--once", action="store_true", help="print one frame and exit, for scripts (default: redraw)"
    )
    da.add_argument(
        "--late-seconds",
        type=float,
        default=60.0,
        metavar="N",
        help="flag an agent LATE after this many seconds without a log line (default: 60)",
    )
    da.add_argument(
        "--no-ledger", action="store_true", help="logs only: do not query the ledger (default: query it)"
    )
    da.set_defaults(func=cmd_dashboard)


def _add_rules(sub) -> None:
    ru = _command(
        sub,
        "rules",
        "governance: propose, vote on and list run-time rule changes of a model",
        description="Run-time rules (acceptance threshold, quorum, round deadline, committee membership) "
        "change only by a recorded vote of the org admins named at publication (the model's governance "
        "policy). Proposals come from the publisher or an org admin; each org votes once, as any of its "
        "admins. Adding a member needs a sealed validation shard and is left to the publisher's tools.",
    )
    ru_sub = ru.add_subparsers(dest="action", metavar="ACTION")
    ru_sub.required = True

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        p = ru_sub.add_parser(name, help=help_, description=help_)
        add_global_options(p, top=False)
        p.add_argument(
            "--user", default="org1-admin", help="profile identity to act as (default: %(default)s)"
        )
        return p

    pr = action("propose", "propose a change (applied once the policy's votes approve it)")
    pr.add_argument("--model-id", required=True, help="the model whose rules change (required)")
    pr.add_argument(
        "--threshold", type=float, help="new acceptance threshold, rule 'threshold' only (default: unchanged)"
    )
    pr.add_argument("--quorum", type=int, help="new committee quorum (default: unchanged)")
    pr.add_argument(
        "--deadline", type=int, help="round deadline in seconds for rounds opened later (default: unchanged)"
    )
    pr.add_argument(
        "--remove-member", metavar="IDENTITY", help="identity key of a member to remove (default: none)"
    )
    pr.add_argument("--reason", help="why, kept in the audit trail (default: none)")
    vo = action("vote", "vote on a proposal as an org admin (one vote per org)")
    vo.add_argument("proposal_id", help="the id `rules propose` printed (or `rules list` shows)")
    side = vo.add_mutually_exclusive_group(required=True)
    side.add_argument("--approve", dest="approve", action="store_true", help="vote for the change")
    side.add_argument("--reject", dest="approve", action="store_false", help="vote against the change")
    li = action("list", "every proposal of a model with its votes and outcome")
    li.add_argument("--model-id", required=True, help="the model whose proposals to list (required)")
    li.add_argument("--json", action="store_true", help="JSON instead of text lines (default: text)")
    ru.set_defaults(func=cmd_rules)


def _add_run(sub) -> None:
    run = _command(
        sub,
        "run",
        "run a whole consortium on the local network (grants roles, starts every agent, reports)",
        description="Grant roles as org admins, start one process per agent, show progress, wait for the "
        "model to finish, verify it and write a report. Ctrl-C stops every agent.",
    )
    run.add_argument("config", type=Path, help="experiment YAML, e.g. configs/default.yaml")
    run.add_argument("--model-id", help="model id (default: config model_id, else <name>-<timestamp>)")
    run.add_argument(
        "--timeout",
        type=float,
        default=1800,
        metavar="SECONDS",
        help="stop every agent and give up after this many seconds (default: %(default)s)",
    )
    run.add_argument("--no-report", action="store_true", help="skip the HTML report (default: write it)")
    run.add_argument("--quiet", action="store_true", help="no progress lines (default: print them)")
    run.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedcommittee",
        description="Committee-validated federated learning on Hyperledger Fabric and IPFS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_smoke, _add_agents, _add_queries, _add_dashboard, _add_rules, _add_run):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fedcommittee.experiment import ConfigError

    try:
        return args.func(args)
    except (ConfigError, UsageError) as exc:
        print(f"fedcommittee: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NetworkNotRunning as exc:
        print(f"fedcommittee: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (GatewayError, StorageError) as exc:
        # Library errors already say what failed and where; a traceback would bury that.
        print(f"fedcommittee: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
