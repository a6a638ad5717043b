"""Ledger benchmark: the local network's ledger and the fedcommittee chaincode, driven from Python.

Usage:
    .venv/bin/python benchmarks/ledger_bench.py [--backend dev|fabric|both] [--tx 100] [--levels 1,8,32]
        [--verdicts 960] [--out reports/ledger_bench.json] [--home DIR] [--existing FC_HOME]

``--backend`` (default: what FC_LEDGER picks) names the ledger: ``dev`` the embedded ledger,
``fabric`` real Fabric (needs FC_FABRIC_HOME, as for scripts/network.sh), ``both`` one after the
other in this run, with the ratios embedded/Fabric of each figure at the end. Every figure is
printed with the backend it was measured on.

It brings up its own network (scripts/network.sh) in a temporary FC_HOME on free ports, measures,
and takes it down again:

(a) ``network.sh up`` wall time (cached binaries -> chaincode committed and ready) and ``down``.
(b) submit-to-commit latency of ``--tx`` sequential transactions (GrantRole / RevokeRole of one role
    for one user, alternating), through the Gateway (endorse + order + commit status VALID).
(c) resident memory of the whole network at rest: the sum of VmRSS of the PIDs in $FC_HOME/pids/*.pid
    (orderers, peers, chaincode servers, Kubo), right after ``up`` and again after the workload.
(d) SubmitVerdict throughput and latency with 1, 8 and 32 concurrent clients (``--levels``), each a
    thread with its own Gateway connection and its own committee identity. A verdict writes
    verdict~update~member, acct~member, reward~model~member and update~update (verdict.go), so two
    verdicts conflict when they share the member or the update. The workload avoids both: every
    client is a distinct committee member (extra client certificates are minted from the org CAs in
    $FC_HOME, since cryptogen makes only 6 users per org) and judges its own slice of a pool of
    pending gossip updates; each level uses a fresh set of members, and the model's quorum is
    ``len(levels) + 1``, so no verdict finalizes an update (finalizing would also write the
    provider's account, shared by many updates). Each level sends ``--verdicts`` verdicts in all,
    split evenly. MVCC conflicts (CommitError MVCC_READ_CONFLICT) are retried and counted.
(e) CPU: for (b), for ``--queries`` sequential queries (WhoAmI, one account read) and for each level
    of (d), the CPU seconds the network's processes spent (utime + stime of the PIDs in
    $FC_HOME/pids/*.pid, over the workload, per transaction or query) and this client's own. On a
    small machine that runs the agents too, the network's CPU is taken from their training: on 2
    cores a Fabric transaction's few tens of milliseconds are a round's time (docs/ledger-backends.md).

Throughput = verdicts committed / wall time from the common start to the last client's last commit.
Latency figures are medians and p95 (nearest rank) of per-transaction wall times in the client.
The client is Python (one process, the GIL): with many threads on a small machine it is part of
what is measured.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.layout import BACKEND_NAMES  # noqa: E402
from fedcommittee.ledger import (  # noqa: E402
    CommitError,
    ContractError,
    FedcommitteeClient,
    Gateway,
    Identity,
    Signer,
)
from tests.integration.network import free_fabric_port_base, free_port  # noqa: E402

NETWORK_SH = ROOT / "scripts" / "network.sh"
ORGS = (1, 2, 3)


# ---------------------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print(
            "  "
            + "  ".join(
                c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def raw_cid(data: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256) of ``data``: what Kubo gives for it with raw leaves."""
    digest = hashlib.sha256(data).digest()
    return "b" + base64.b32encode(bytes([0x01, 0x55, 0x12, 0x20]) + digest).decode().lower().rstrip("=")


def ref(data: bytes) -> dict:
    return {"cid": raw_cid(data), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------------------- the network


@dataclass
class Network:
    home: Path
    env: dict[str, str]

    @classmethod
    def fresh(cls, home: Path, backend: str | None) -> Network:
        env = dict(os.environ, FC_HOME=str(home))
        if backend:
            env["FC_LEDGER"] = backend
        env.update(
            FC_IPFS_API_PORT=str(free_port()),
            FC_IPFS_GATEWAY_PORT=str(free_port()),
            FC_IPFS_SWARM_PORT=str(free_port()),
            FC_FABRIC_PORT_BASE=str(free_fabric_port_base()),
        )
        return cls(home, env)

    def run(self, *args: str) -> float:
        started = time.perf_counter()
        proc = subprocess.run(
            ["bash", str(NETWORK_SH), *args], env=self.env, capture_output=True, text=True, timeout=600
        )
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(
                f"network.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return elapsed

    @property
    def profile(self) -> Path:
        return self.home / "connection.yaml"

    def fabric(self) -> dict:
        fab = json.loads((self.home / "endpoints.json").read_text())["fabric"]
        if not fab.get("available"):
            raise SystemExit(f"the ledger is not available: {fab.get('reason')}")
        return fab

    def backend(self) -> str:
        """The backend's name for every figure: never present the embedded ledger's as Fabric's."""
        return BACKEND_NAMES[self.fabric().get("backend", "fabric")]

    def proc_files(self, name: str) -> dict[str, str]:
        """/proc/<pid>/<name> of every process with a PID file that is still running, by process name."""
        out = {}
        for pidfile in sorted((self.home / "pids").glob("*.pid")):
            try:
                out[pidfile.stem] = Path(f"/proc/{int(pidfile.read_text().strip())}/{name}").read_text()
            except (OSError, ValueError):
                continue
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """utime + stime in seconds of every process with a PID file, by name."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for proc, stat in self.proc_files("stat").items():
            # Fields after the command name, which may hold spaces: utime and stime are 14 and 15.
            fields = stat.rsplit(")", 1)[1].split()
            out[proc] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def rss(self) -> dict[str, int]:
        """VmRSS in KiB of every process with a PID file."""
        out = {}
        for proc, status in self.proc_files("status").items():
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    out[proc] = int(line.split()[1])
        return out


# ---------------------------------------------------------------------------- identities


def mint_client(home: Path, org: int, name: str) -> tuple[Identity, Signer]:
    """A client certificate (OU=client, so a NodeOU client of Org<org>MSP) signed by the org's CA."""
    crypto = Path(json.loads((home / "endpoints.json").read_text())["fabric"]["crypto"])
    org_dir = crypto / "peerOrganizations" / f"org{org}.fc.local"
    ca_cert = x509.load_pem_x509_certificate((org_dir / "ca" / f"ca.org{org}.fc.local-cert.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((org_dir / "ca" / "priv_sk").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name}@org{org}.fc.local"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Fabric's MSP checks the chain at the identity's notBefore: it must not precede the CA's.
        .not_valid_before(max(ca_cert.not_valid_before_utc, now - dt.timedelta(minutes=1)))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    cert = builder.sign(ca_key, hashes.SHA256())
    return Identity(f"Org{org}MSP", cert.public_bytes(serialization.Encoding.PEM)), Signer(key)


@dataclass
class Member:
    org: int
    identity: Identity
    signer: Signer
    key: str = ""


# ---------------------------------------------------------------------------- measurements


class CpuMeter:
    """CPU seconds the network's processes and this process spend between ``start`` and ``per``."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.network: dict[str, float] = {}
        self.client = 0.0

    def start(self) -> CpuMeter:
        self.network, self.client = self.net.cpu_seconds(), time.process_time()
        return self

    def per(self, n: int) -> dict:
        """Milliseconds per operation, ``n`` operations since ``start``: the network in all and by
        process, and the client (every thread of this process)."""
        client = time.process_time() - self.client
        after = self.net.cpu_seconds()
        spent = {k: after[k] - v for k, v in self.network.items() if k in after}
        return {
            "network_cpu_ms": round(1000 * sum(spent.values()) / max(n, 1), 2),
            "client_cpu_ms": round(1000 * client / max(n, 1), 2),
            "by_process_ms": {k: round(1000 * v / max(n, 1), 2) for k, v in spent.items()},
        }


def sequential_latency(profile: Path, n: int) -> dict:
    with (
        Gateway.connect(profile, user="org1-admin") as admin_gw,
        Gateway.connect(profile, user="org1-user6") as user_gw,
    ):
        admin = FedcommitteeClient(admin_gw.network().contract())
        subject = FedcommitteeClient(user_gw.network().contract()).who_am_i()
        held = "publisher" in subject["account"]["roles"]
        lat = []
        for _ in range(n):
            started = time.perf_counter()
            if held:
                admin.revoke_role(subject["identity"], "publisher")
            else:
                admin.grant_role(subject["identity"], "publisher")
            lat.append(time.perf_counter() - started)
            held = not held
    return {
        "transactions": n,
        "median_ms": ms(statistics.median(lat)),
        "p95_ms": ms(pct(lat, 95)),
        "min_ms": ms(min(lat)),
        "max_ms": ms(max(lat)),
        "total_s": round(sum(lat), 2),
    }


def sequential_queries(profile: Path, n: int) -> dict:
    """``n`` WhoAmI queries one after another (an account read: endorsed by one peer, never ordered)."""
    with Gateway.connect(profile, user="org1-user6") as gw:
        client = FedcommitteeClient(gw.network().contract())
        lat = []
        for _ in range(n):
            started = time.perf_counter()
            client.who_am_i()
            lat.append(time.perf_counter() - started)
    return {"queries": n, "median_ms": ms(statistics.median(lat)), "p95_ms": ms(pct(lat, 95))}


def submit_parallel(jobs: list, workers: int) -> list:
    """Run callables on ``workers`` threads; return their results in order (re-raising the first error)."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    lock = threading.Lock()
    it = iter(range(len(jobs)))

    def work() -> None:
        while True:
            with lock:
                i = next(it, None)
            if i is None or errors:
                return
            try:
                results[i] = jobs[i]()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@dataclass
class ClientStats:
    latencies: list[float] = field(default_factory=list)
    conflicts: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    finished: float = 0.0


def verdict_level(profile: Path, members: list[Member], updates: list[str], per_client: int) -> dict:
    clients = len(members)
    gateways = [Gateway.connect(profile, m.identity, m.signer) for m in members]
    stats = [ClientStats() for _ in members]
    barrier = threading.Barrier(clients + 1)

    def run(j: int) -> None:
        contract = FedcommitteeClient(gateways[j].network().contract())
        mine = updates[j * per_client : (j + 1) * per_client]
        st = stats[j]
        barrier.wait()
        for k, uid in enumerate(mine):
            verdict = {"score": 0.5 + (k % 40) / 100, "accept": True}
            for attempt in range(6):
                started = time.perf_counter()
                try:
                    contract.submit_verdict(uid, verdict)
                except CommitError as err:
                    if err.validation_code == "MVCC_READ_CONFLICT" and attempt < 5:
                        st.conflicts += 1
                        st.retries += 1
                        continue
                    st.errors.append(str(err))
                    break
                except ContractError as err:
                    st.errors.append(err.chaincode_message)
                    break
                st.latencies.append(time.perf_counter() - started)
                break
        st.finished = time.perf_counter()

    threads = [threading.Thread(target=run, args=(j,)) for j in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = max(s.finished for s in stats) - started
    for gw in gateways:
        gw.close()
    lat = [x for s in stats for x in s.latencies]
    errors = [e for s in stats for e in s.errors]
    return {
        "clients": clients,
        "verdicts": len(lat),
        "wall_s": round(wall, 2),
        "tx_per_s": round(len(lat) / wall, 1) if wall > 0 else float("nan"),
        "median_ms": ms(statistics.median(lat)) if lat else None,
        "p95_ms": ms(pct(lat, 95)) if lat else None,
        "mvcc_conflicts": sum(s.conflicts for s in stats),
        "retries": sum(s.retries for s in stats),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def verdict_throughput(net: Network, levels: list[int], total: int, setup: dict) -> list[dict]:
    profile = net.profile
    admins = {n: Gateway.connect(profile, user=f"org{n}-admin") for n in ORGS}
    try:
        admin = {n: FedcommitteeClient(gw.network().contract()) for n, gw in admins.items()}

        # Roles: a publisher, six providers, and one fresh committee member per client of each level.
        publisher_gw = Gateway.connect(profile, user="org1-user1")
        provider_users = [f"org{n}-user{u}" for n in ORGS for u in (2, 3)]
        provider_gws = [Gateway.connect(profile, user=u) for u in provider_users]
        publisher = FedcommitteeClient(publisher_gw.network().contract())
        providers = [FedcommitteeClient(gw.network().contract()) for gw in provider_gws]

        def ensure_role(org: int, client: FedcommitteeClient, role: str) -> None:
            me = client.who_am_i()
            if role not in me["account"]["roles"]:
                admin[org].grant_role(me["identity"], role)

        ensure_role(1, publisher, "publisher")
        for user, client in zip(provider_users, providers, strict=True):
            ensure_role(int(user[3]), client, "provider")

        run = f"{int(time.time()) % 1_000_000:06d}"  # fresh identities (and model) on every run
        members: list[Member] = []
        for i in range(sum(levels)):
            org = ORGS[i % len(ORGS)]
            members.append(Member(org, *mint_client(net.home, org, f"Bench{run}-{i}")))

        def enroll(m: Member) -> None:
            with Gateway.connect(profile, m.identity, m.signer) as gw:
                m.key = FedcommitteeClient(gw.network().contract()).who_am_i()["identity"]
            admin[m.org].grant_role(m.key, "committee")

        submit_parallel([lambda m=m: enroll(m) for m in members], workers=3)

        model_id = f"bench-{run}"
        quorum = min(len(levels) + 1, len(members))
        arch = {"name": "bench", "version": "1.0.0"}
        spec = {
            "modelId": model_id,
            "architecture": arch,
            "specSha256": hashlib.sha256(json.dumps(arch).encode()).hexdigest(),
            "initialWeights": ref(f"{model_id} initial".encode()),
            "metric": {"name": "accuracy", "higherIsBetter": True},
            "acceptance": {"rule": "threshold", "threshold": 0.8, "scoreMin": 0, "scoreMax": 1},
            "quorum": quorum,
            "committee": [
                {
                    "member": m.key,
                    "shardCid": ref(f"{model_id} shard {i}".encode())["cid"],
                    "shardSha256": ref(f"{model_id} shard {i}".encode())["sha256"],
                }
                for i, m in enumerate(members)
            ],
            "mode": "gossip",
            "roundRules": {"minAccepted": 0, "deadlineSeconds": 0, "maxRounds": 0, "maxParents": 1},
            "rewardRules": {"acceptReward": 10, "rejectPenalty": 2, "verdictReward": 1},
        }
        publisher.publish_model(spec)
        for m in members[:quorum]:  # model votes conflict on the model key: one at a time
            with Gateway.connect(profile, m.identity, m.signer) as gw:
                FedcommitteeClient(gw.network().contract()).approve_model(model_id, 0.5)

        # The pool of pending updates: every level's clients split it among themselves.
        started = time.perf_counter()

        def submit_update(i: int) -> str:
            data = f"{model_id} update {i}".encode()
            update = {"parents": [], **ref(data), "numSamples": 10, "metrics": {}}
            # The update id is the transaction id (the chaincode returns the whole Update JSON).
            return (
                providers[i % len(providers)]
                .contract.submit_transaction("SubmitUpdate", model_id, json.dumps(update))
                .txid
            )

        updates = submit_parallel(
            [lambda i=i: submit_update(i) for i in range(total)], workers=len(providers)
        )
        pool_s = time.perf_counter() - started
        setup.update(
            committee_members=len(members),
            model=model_id,
            quorum=quorum,
            updates=len(updates),
            update_submit_s=round(pool_s, 2),
            update_submit_tx_per_s=round(len(updates) / pool_s, 1),
            provider_threads=len(providers),
        )
        print(
            f"set-up: {len(members)} committee members, model {model_id} (quorum {quorum}), "
            f"{len(updates)} pending updates submitted in {pool_s:.1f} s "
            f"({len(updates) / pool_s:.1f} tx/s with {len(providers)} provider threads)",
            flush=True,
        )

        results = []
        offset = 0
        for clients in levels:
            level_members = members[offset : offset + clients]
            offset += clients
            per_client = total // clients
            meter = CpuMeter(net).start()
            res = verdict_level(profile, level_members, updates, per_client)
            res["cpu"] = meter.per(res["verdicts"])
            results.append(res)
            print(
                f"  {clients:>3} clients: {res['verdicts']} verdicts in {res['wall_s']} s "
                f"= {res['tx_per_s']} tx/s, median {res['median_ms']} ms, p95 {res['p95_ms']} ms, "
                f"MVCC conflicts {res['mvcc_conflicts']}, errors {res['errors']}",
                flush=True,
            )
        publisher_gw.close()
        for gw in provider_gws:
            gw.close()
        return results
    finally:
        for gw in admins.values():
            gw.close()


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--backend", choices=["dev", "fabric", "both"], help="ledger backend (default: FC_LEDGER's)"
    )
    ap.add_argument("--tx", type=int, default=100, help="sequential transactions for the latency figure")
    ap.add_argument("--queries", type=int, default=500, help="sequential queries for the CPU figure")
    ap.add_argument("--levels", default="1,8,32", help="comma-separated concurrent client counts")
    ap.add_argument("--verdicts", type=int, default=960, help="verdicts per concurrency level (in all)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds at rest before measuring memory")
    ap.add_argument("--home", help="FC_HOME for the benchmark network (default: a new temporary folder)")
    ap.add_argument(
        "--existing",
        help="use the network already running with this FC_HOME (no up/down timing; not taken down)",
    )
    ap.add_argument("--out", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if any(c < 1 or args.verdicts // c < 1 for c in levels):
        ap.error("every level needs at least one client and one verdict per client")
    if args.backend == "both" and (args.existing or args.home):
        ap.error("--backend both brings up a network of each kind: no --existing or --home")

    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "fabric_home": os.environ.get("FC_FABRIC_HOME", ""),
        # The block timer of the networks this run brings up, as given (network.sh checks it; unset:
        # 30). Not of an --existing network, which keeps the one it was created with.
        "batch_timeout_ms": os.environ.get("FC_BATCH_TIMEOUT_MS") or "30",
    }
    print("ledger benchmark:", json.dumps(info), flush=True)
    backends = ["dev", "fabric"] if args.backend == "both" else [args.backend]
    results: dict = {"info": info, "runs": [bench_backend(b, args, levels) for b in backends]}
    if len(results["runs"]) == 2:
        results["ratios_embedded_over_fabric"] = compare(*results["runs"])
    info["loadavg_at_end"] = os.getloadavg()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.out}")
    return 0


def cpu_table(name: str, seq: dict, queries: dict, verdicts: list[dict]) -> None:
    rows = [
        (f"{seq['transactions']} sequential transactions", seq),
        (f"{queries['queries']} sequential queries (WhoAmI)", queries),
    ]
    rows += [(f"verdicts, {v['clients']} concurrent clients", v) for v in verdicts]

    def top(by_process: dict[str, float]) -> str:
        most = sorted(by_process.items(), key=lambda kv: -kv[1])[:4]
        return ", ".join(f"{k} {v}" for k, v in most)

    table(
        f"[{name}] (e) CPU per transaction or query, ms (the network's processes; this client's threads)",
        ["workload", "latency median ms", "network CPU ms", "client CPU ms", "largest shares, ms"],
        [
            [
                what,
                r["median_ms"],
                r["cpu"]["network_cpu_ms"],
                r["cpu"]["client_cpu_ms"],
                top(r["cpu"]["by_process_ms"]),
            ]
            for what, r in rows
        ],
    )


def compare(dev: dict, fabric: dict) -> dict:
    """Embedded ledger / Fabric for the figures both runs have, measured in this same run."""
    pairs = {
        "network_up_s": (dev.get("network_up_s"), fabric.get("network_up_s")),
        "sequential_median_ms": (dev["sequential"]["median_ms"], fabric["sequential"]["median_ms"]),
        "sequential_p95_ms": (dev["sequential"]["p95_ms"], fabric["sequential"]["p95_ms"]),
        "network_cpu_ms_per_sequential_tx": (
            dev["sequential"]["cpu"]["network_cpu_ms"],
            fabric["sequential"]["cpu"]["network_cpu_ms"],
        ),
        "network_cpu_ms_per_query": (
            dev["sequential_queries"]["cpu"]["network_cpu_ms"],
            fabric["sequential_queries"]["cpu"]["network_cpu_ms"],
        ),
        "rss_at_rest_mib": (
            sum(dev["rss_at_rest_kib"].values()) / 1024,
            sum(fabric["rss_at_rest_kib"].values()) / 1024,
        ),
    }
    for a, b in zip(dev["verdicts"], fabric["verdicts"], strict=True):
        pairs[f"verdicts_tx_per_s_{a['clients']}_clients"] = (a["tx_per_s"], b["tx_per_s"])
    ratios = {k: round(a / b, 3) for k, (a, b) in pairs.items() if a and b}
    table(
        "embedded ledger against Fabric, measured in this run (ratio = embedded / Fabric)",
        ["figure", "embedded ledger", "Fabric", "ratio"],
        [[k, round(a, 2), round(b, 2), ratios.get(k)] for k, (a, b) in pairs.items() if a and b],
    )
    return ratios


def bench_backend(backend: str | None, args, levels: list[int]) -> dict:
    """Every figure on one backend's network; the result names the backend."""
    results: dict = {}
    name = backend or "FC_LEDGER's backend"  # until the network says which it runs
    tmp = None
    if args.existing:
        net = Network(Path(args.existing), dict(os.environ, FC_HOME=args.existing))
    else:
        if args.home:
            home = Path(args.home)
        else:
            tmp = tempfile.mkdtemp(prefix="fc-ledger-bench-")
            home = Path(tmp)
        net = Network.fresh(home, backend)
    try:
        if not args.existing:
            up_s = net.run("up")
            results["network_up_s"] = round(up_s, 2)
        name = results["backend"] = net.backend()
        if not args.existing:
            print(f"[{name}] network.sh up: {up_s:.1f} s (FC_HOME {net.home})", flush=True)

        time.sleep(args.settle)
        rest = net.rss()
        results["rss_at_rest_kib"] = rest
        table(
            f"[{name}] (c) resident memory at rest (VmRSS of $FC_HOME/pids/*.pid)",
            ["process", "RSS MiB"],
            [[k, f"{v / 1024:.1f}"] for k, v in rest.items()]
            + [["total", f"{sum(rest.values()) / 1024:.1f}"]],
        )

        meter = CpuMeter(net).start()
        seq = sequential_latency(net.profile, args.tx)
        seq["cpu"] = meter.per(args.tx)
        results["sequential"] = seq
        table(
            f"[{name}] (b) submit-to-commit latency, {args.tx} sequential GrantRole/RevokeRole",
            ["transactions", "median ms", "p95 ms", "min ms", "max ms", "total s"],
            [
                [
                    seq["transactions"],
                    seq["median_ms"],
                    seq["p95_ms"],
                    seq["min_ms"],
                    seq["max_ms"],
                    seq["total_s"],
                ]
            ],
        )

        meter = CpuMeter(net).start()
        queries = sequential_queries(net.profile, args.queries)
        queries["cpu"] = meter.per(args.queries)
        results["sequential_queries"] = queries

        print(f"\n[{name}] (d) SubmitVerdict with concurrent clients", flush=True)
        setup: dict = {}
        results["verdict_setup"] = setup
        verdicts = verdict_throughput(net, levels, args.verdicts, setup)
        results["verdicts"] = verdicts
        table(
            f"[{name}] (d) SubmitVerdict throughput (each client its own Gateway and committee identity)",
            [
                "clients",
                "verdicts",
                "wall s",
                "tx/s",
                "median ms",
                "p95 ms",
                "MVCC conflicts",
                "retries",
                "errors",
            ],
            [
                [
                    r["clients"],
                    r["verdicts"],
                    r["wall_s"],
                    r["tx_per_s"],
                    r["median_ms"],
                    r["p95_ms"],
                    r["mvcc_conflicts"],
                    r["retries"],
                    r["errors"],
                ]
                for r in verdicts
            ],
        )
        cpu_table(name, seq, queries, verdicts)
        after = net.rss()
        results["rss_after_workload_kib"] = after
        print(
            f"\n[{name}] RSS total: {sum(rest.values()) / 1024:.1f} MiB at rest, "
            f"{sum(after.values()) / 1024:.1f} MiB after the workload",
            flush=True,
        )
    finally:
        if not args.existing:
            try:
                down_s = net.run("down")
                results["network_down_s"] = round(down_s, 1)
            except Exception as exc:  # noqa: BLE001
                print(f"network.sh down failed: {exc}", file=sys.stderr)
            else:
                table(
                    f"[{name}] (a) network lifecycle",
                    ["step", "wall s"],
                    [
                        ["up (to chaincode ready)", results.get("network_up_s")],
                        ["down", results["network_down_s"]],
                    ],
                )
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
