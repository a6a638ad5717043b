"""The `fedcommittee` command.

Exit codes: 0 success; 1 a check or operation failed; 2 bad usage or input;
3 a required part of the network is not available on this machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedcommittee import __version__
from fedcommittee.endpoints import Endpoints, NetworkNotRunning
from fedcommittee.ledger.errors import GatewayError
from fedcommittee.storage.errors import StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


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
        print(f"[n/a ] fabric: {endpoints.fabric_reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedcommittee",
        description="Committee-validated federated learning on Hyperledger Fabric and IPFS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state directory of the local network (default: $FC_HOME or ./.fedcommittee)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    smoke = sub.add_parser(
        "smoke",
        help="prove the running network end to end (IPFS round trip, Fabric submit and read back)",
    )
    smoke.set_defaults(func=cmd_smoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
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
