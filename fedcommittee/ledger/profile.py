"""Connection profiles: which channel, chaincode, gateway peers and client identities to use.

A profile is a small YAML file (see ``configs/connection-local.yaml``)::

    name: fedcommittee-local
    state_dir: ../.fedcommittee/fabric      # relative to this file; base of every relative path below
    channel: fedchannel
    chaincode: fedcommittee
    peers:
      peer0.org1.fc.local:
        msp_id: Org1MSP
        endpoint: 127.0.0.1:7400
        tls_ca_file: crypto/peerOrganizations/org1.fc.local/tlsca/tlsca.org1.fc.local-cert.pem
        server_name_override: peer0.org1.fc.local   # optional, when the TLS cert lacks the dialled address
    identities:
      org1-user1:
        msp_id: Org1MSP
        msp_dir: crypto/peerOrganizations/org1.fc.local/users/User1@org1.fc.local/msp

`scripts/network.sh up` writes such a profile for each run to ``.fedcommittee/connection.yaml``.
Validation errors name the offending key, e.g. ``peers.peer0.org1.example.com.endpoint``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .identity import Identity, Signer, load_msp

__all__ = ["ConnectionProfile", "IdentityConfig", "PeerConfig", "ProfileError", "load_profile"]

STATE_DIR_ENV = "FEDCOMMITTEE_NETWORK_DIR"
_ENDPOINT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$")


class ProfileError(ValueError):
    """The connection profile is invalid; the message names the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True)
class PeerConfig:
    name: str
    msp_id: str
    endpoint: str
    tls_ca_file: Path | None
    server_name_override: str | None = None

    def tls_ca_pem(self) -> bytes | None:
        if self.tls_ca_file is None:
            return None
        try:
            return self.tls_ca_file.read_bytes()
        except OSError as exc:
            raise FileNotFoundError(
                f"peer {self.name}: cannot read TLS CA file {self.tls_ca_file}: {exc}"
            ) from exc


@dataclass(frozen=True)
class IdentityConfig:
    name: str
    msp_id: str
    msp_dir: Path

    def load(self) -> tuple[Identity, Signer]:
        return load_msp(self.msp_dir, self.msp_id)


@dataclass(frozen=True)
class ConnectionProfile:
    name: str
    channel: str
    chaincode: str
    peers: dict[str, PeerConfig]
    identities: dict[str, IdentityConfig] = field(default_factory=dict)
    state_dir: Path | None = None

    def peer(self, name: str | None = None, *, msp_id: str | None = None) -> PeerConfig:
        """The named peer; else the first peer of ``msp_id``; else the first peer."""
        if name is not None:
            if name not in self.peers:
                raise KeyError(f"profile {self.name}: no peer named {name!r} (have {sorted(self.peers)})")
            return self.peers[name]
        if msp_id is not None:
            for p in self.peers.values():
                if p.msp_id == msp_id:
                    return p
        return next(iter(self.peers.values()))

    def identity(self, name: str | None = None) -> IdentityConfig:
        if not self.identities:
            raise KeyError(f"profile {self.name}: no identities defined")
        if name is None:
            return next(iter(self.identities.values()))
        if name not in self.identities:
            raise KeyError(
                f"profile {self.name}: no identity named {name!r} (have {sorted(self.identities)})"
            )
        return self.identities[name]

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "<profile>", base_dir: Path | None = None
    ) -> ConnectionProfile:
        if not isinstance(data, Mapping):
            raise ProfileError(source, "<top level>", f"must be a mapping, got {type(data).__name__}")
        known = {"name", "state_dir", "channel", "chaincode", "peers", "identities"}
        for key in data:
            if key not in known:
                raise ProfileError(source, str(key), f"unknown key (allowed: {sorted(known)})")

        def text(d: Mapping, key: str, where: str, required: bool = True) -> str | None:
            v = d.get(key)
            if v is None:
                if required:
                    raise ProfileError(source, f"{where}{key}", "is required")
                return None
            if not isinstance(v, str) or not v.strip():
                raise ProfileError(source, f"{where}{key}", f"must be a non-empty string, got {v!r}")
            return v.strip()

        base = base_dir
        raw_state = text(data, "state_dir", "", required=False)
        if base is None and raw_state is not None:
            base = Path(raw_state)
        base = base.expanduser() if base is not None else None

        def path(value: str) -> Path:
            p = Path(value).expanduser()
            if not p.is_absolute() and base is not None:
                p = base / p
            return p

        channel = text(data, "channel", "")
        chaincode = text(data, "chaincode", "")
        name = text(data, "name", "", required=False) or source

        peers_raw = data.get("peers")
        if not isinstance(peers_raw, Mapping) or not peers_raw:
            raise ProfileError(source, "peers", "must be a non-empty mapping of peer name to settings")
        peers: dict[str, PeerConfig] = {}
        for pname, p in peers_raw.items():
            where = f"peers.{pname}."
            if not isinstance(p, Mapping):
                raise ProfileError(source, f"peers.{pname}", "must be a mapping")
            for key in p:
                if key not in {"msp_id", "endpoint", "tls_ca_file", "server_name_override"}:
                    raise ProfileError(source, f"{where}{key}", "unknown key")
            endpoint = text(p, "endpoint", where)
            m = _ENDPOINT.match(endpoint)
            if not m or not 0 < int(m.group(2)) < 65536:
                raise ProfileError(source, f"{where}endpoint", f"must be host:port, got {endpoint!r}")
            ca = text(p, "tls_ca_file", where, required=False)
            peers[str(pname)] = PeerConfig(
                name=str(pname),
                msp_id=text(p, "msp_id", where),
                endpoint=endpoint,
                tls_ca_file=path(ca) if ca else None,
                server_name_override=text(p, "server_name_override", where, required=False),
            )

        ids_raw = data.get("identities") or {}
        if not isinstance(ids_raw, Mapping):
            raise ProfileError(source, "identities", "must be a mapping of identity name to settings")
        identities: dict[str, IdentityConfig] = {}
        for iname, i in ids_raw.items():
            where = f"identities.{iname}."
            if not isinstance(i, Mapping):
                raise ProfileError(source, f"identities.{iname}", "must be a mapping")
            for key in i:
                if key not in {"msp_id", "msp_dir"}:
                    raise ProfileError(source, f"{where}{key}", "unknown key")
            identities[str(iname)] = IdentityConfig(
                name=str(iname), msp_id=text(i, "msp_id", where), msp_dir=path(text(i, "msp_dir", where))
            )
        return cls(name, channel, chaincode, peers, identities, base)


def load_profile(path: str | Path, *, state_dir: str | Path | None = None) -> ConnectionProfile:
    """Load and validate a YAML connection profile.

    Relative file paths resolve against ``state_dir`` if given, else ``$FEDCOMMITTEE_NETWORK_DIR`` if set,
    else the profile's ``state_dir`` key (itself relative to the profile file), else the profile's folder.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(str(path), "<yaml>", f"not valid YAML: {exc}") from exc
    base: Path | None
    if state_dir is not None:
        base = Path(state_dir)
    elif os.environ.get(STATE_DIR_ENV):
        base = Path(os.environ[STATE_DIR_ENV])
    elif isinstance(data, Mapping) and isinstance(data.get("state_dir"), str):
        sd = Path(data["state_dir"]).expanduser()
        base = sd if sd.is_absolute() else (path.parent / sd)
    else:
        base = path.parent
    return ConnectionProfile.from_dict(data, source=str(path), base_dir=base.resolve())
