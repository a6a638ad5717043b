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


@dataclass(frozen=True)
class Endpoints:
    ipfs_api: str
    fabric_available: bool
    fabric_reason: str | None = None
    connection_profile: Path | None = None
    channel: str | None = None
    chaincode: str | None = None

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
        )
