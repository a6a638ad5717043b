"""Drive scripts/network.sh from tests: each LocalNetwork gets its own state directory and ports."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from fedcommittee.layout import fabric_ports

ROOT = Path(__file__).resolve().parents[2]
NETWORK_SH = ROOT / "scripts" / "network.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_fabric_port_base() -> int:
    # A random start, so two test sessions on one machine rarely try the same range; all below
    # the kernel's ephemeral range (32768+ on Linux), whose ports outgoing connections take.
    bases = list(range(10000, 32000, 1000))
    random.shuffle(bases)
    for base in bases:
        if not any(port_listening(p) for p in fabric_ports(base)):
            return base
    raise RuntimeError("no free port range for a test Fabric network")


def process_running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent to reap it has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalNetwork:
    home: Path
    ports: dict[str, int] = field(
        default_factory=lambda: {
            "FC_IPFS_API_PORT": free_port(),
            "FC_IPFS_GATEWAY_PORT": free_port(),
            "FC_IPFS_SWARM_PORT": free_port(),
            "FC_FABRIC_PORT_BASE": free_fabric_port_base(),
        }
    )

    # More environment for network.sh, e.g. FC_LEDGER for a benchmark that picks the backend.
    extra_env: dict[str, str] = field(default_factory=dict)

    def all_ports(self) -> list[int]:
        ipfs = [v for k, v in self.ports.items() if k.startswith("FC_IPFS_")]
        return ipfs + fabric_ports(self.ports["FC_FABRIC_PORT_BASE"])

    def env(self) -> dict[str, str]:
        env = dict(os.environ, FC_HOME=str(self.home))
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update(self.extra_env)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run_command(["bash", str(NETWORK_SH), *args], check=check)

    def run_command(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            argv,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self) -> dict:
        self.run("up")
        return json.loads((self.home / "endpoints.json").read_text())

    def down(self) -> None:
        """Stop the network; fail if the embedded ledger refused anything the chaincode asked of it
        (its log marks each such request UNSUPPORTED:), since Fabric would have served it."""
        unsupported = self.unsupported_requests()
        self.run("down")
        if unsupported:
            raise AssertionError(
                "the embedded ledger refused chaincode requests Fabric serves:\n" + "\n".join(unsupported)
            )

    def unsupported_requests(self) -> list[str]:
        log = self.home / "logs" / "ledger.log"
        if not log.is_file():
            return []
        return [line for line in log.read_text(errors="replace").splitlines() if "UNSUPPORTED:" in line]

    def pids(self) -> dict[str, int]:
        pid_dir = self.home / "pids"
        if not pid_dir.is_dir():
            return {}
        return {p.stem: int(p.read_text()) for p in pid_dir.glob("*.pid")}

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for log in sorted((self.home / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(out)
