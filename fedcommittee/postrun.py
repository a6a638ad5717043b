"""After ``fedcommittee run``'s agents stop: audit the model (``verify``) and write the report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedcommittee.endpoints import Endpoints
from fedcommittee.experiment import Experiment
from fedcommittee.ledger import FedcommitteeClient


def verify_and_report(
    client: FedcommitteeClient,
    endpoints: Endpoints,
    exp: Experiment,
    profile,
    *,
    home: Path,
    wall: float,
    report: bool,
    say: Callable[[str], None],
) -> bool:
    """Audit the model, and write its report when ``report``; True when the audit found nothing."""
    from fedcommittee.roles.auditor import audit_model
    from fedcommittee.roles.envelopes import load_private_key
    from fedcommittee.roles.reader import Reader
    from fedcommittee.storage import ContentStore, IpfsClient

    model_id = exp.model_id
    # As the publisher, a recipient of every sealed update: the audit opens them all.
    key = load_private_key(profile.identity(exp.publisher))
    with IpfsClient(endpoints.ipfs_api, timeout=60) as ipfs:
        reader = Reader(client, ContentStore(ipfs, pin=False), exp.model, private_key=key)
        rep = audit_model(reader, model_id, exp=exp)
    say(f"verify: {rep.checked} checks, {len(rep.findings)} discrepancies{rep.sealed_note()}")
    for f in rep.findings:
        say(f"  {f.where}: {f.problem}")
    if report:
        from fedcommittee.report import write_report

        audit = {"checks": rep.checked, "discrepancies": len(rep.findings)}
        path = write_report(client, endpoints, model_id, home=home, exp=exp, wall_seconds=wall,
                            private_key=key, verify=audit)  # fmt: skip
        say(f"report: {path}")
    return rep.ok
