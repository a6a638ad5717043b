"""The smoke path: prove the stack end to end on the running local network.

IPFS: a random object goes in and comes back hash-verified. Fabric: an org admin changes a user's
role through the Gateway (endorse, submit, commit status) and the user reads the change back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from fedcommittee.endpoints import Endpoints
from fedcommittee.ledger import FedcommitteeClient, Role, transaction_of
from fedcommittee.ledger.gateway import Gateway
from fedcommittee.ledger.profile import load_profile
from fedcommittee.storage import ContentStore, IpfsClient

SMOKE_ROLE = Role.PROVIDER


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def check_ipfs(endpoints: Endpoints, size: int = 1 << 20) -> Check:
    started = time.perf_counter()
    payload = os.urandom(size)
    with IpfsClient(endpoints.ipfs_api, timeout=30) as ipfs:
        store = ContentStore(ipfs)
        obj = store.put(payload)
        back = store.get(obj.cid, obj.sha256_hex, max_bytes=size)
    ok = back == payload
    return Check("ipfs round trip", ok, f"{size} bytes as {obj.cid}", time.perf_counter() - started)


def check_fabric(endpoints: Endpoints) -> Check:
    started = time.perf_counter()
    profile = load_profile(endpoints.connection_profile)
    with (
        Gateway.connect(profile, user="org1-user1") as user_gw,
        Gateway.connect(profile, user="org1-admin") as admin_gw,
    ):
        as_user = FedcommitteeClient(user_gw.network().contract())
        as_admin = FedcommitteeClient(admin_gw.network().contract())

        def roles() -> list[str]:
            # WhoAmI answers for identities the ledger has not seen yet (GetAccount would not).
            return as_user.who_am_i()["account"]["roles"]

        me = as_user.who_am_i()["identity"]
        had_role = SMOKE_ROLE in roles()
        send = as_admin.revoke_role if had_role else as_admin.grant_role
        result = send(me, SMOKE_ROLE)
        has_role = SMOKE_ROLE in roles()
    ok = has_role != had_role
    detail = (
        f"{transaction_of(send)}({SMOKE_ROLE}) committed in block {result.block_number}, "
        f"read back: role held={has_role} "
        f"[{endpoints.ledger_words}]"
    )
    return Check("ledger submit + read back", ok, detail, time.perf_counter() - started)


def run_smoke(endpoints: Endpoints) -> Iterator[Check]:
    """Yields each check as it completes, so a failure later does not hide earlier results."""
    yield check_ipfs(endpoints)
    if endpoints.fabric_available:
        yield check_fabric(endpoints)
