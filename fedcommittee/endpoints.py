"""Where the local network is: scripts/network.sh writes $FC_HOME/endpoints.json at `up`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


class NetworkNotRunning(RuntimeError):
    """No endpoints file: the network has not been brought up in this FC_HOME."""


def default_home() -> Path:
    if os.environ.get("FC_HOME"):
        return Path(os.environ["FC_HOME"])
    return Path(__file__).resolve().parent.parent / ".fedcommittee"


BACKEND_WORDS = {
    "fabric": "Hyperledger Fabric",
    "dev": "embedded ledger (network/devledger; not Fabric)",
}


@dataclass(frozen=True)
class Endpoints:
    """Where the network is. ``fabric_*`` name the ledger whichever backend serves it (Fabric's
    protocol either way); ``backend`` says which: ``fabric`` or ``dev`` (the embedded ledger)."""

    ipfs_api: str
    fabric_available: bool
    fabric_reason: str | None = None
    connection_profile: Path | None = None
    channel: str | None = None
    chaincode: str | None = None
    backend: str | None = None

    @property
    def ledger_words(self) -> str:
        """The backend for people: every run log, report and figure names it."""
        if not self.fabric_available:
            return "no ledger"
        return BACKEND_WORDS.get(self.backend or "fabric", self.backend or "fabric")

    @classmethod
    def load(cls, home: Path | None = None) -> Endpoints:
        path = (home or default_home()) / "endpoints.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NetworkNotRunning(
                f"{path} not found: bring the network up first (scripts/network.sh up), "
                "or set FC_HOME to the state directory of a running network"
            ) from None
        fabric = data["fabric"]
        profile = fabric.get("connection_profile")
        return cls(
            ipfs_api=data["ipfs_api"],
            fabric_available=bool(fabric.get("available")),
            fabric_reason=fabric.get("reason"),
            connection_profile=Path(profile) if profile else None,
            channel=fabric.get("channel"),
            chaincode=fabric.get("chaincode"),
            # Files written before the embedded ledger existed describe a Fabric network.
            backend=fabric.get("backend", "fabric" if fabric.get("available") else None),
        )
