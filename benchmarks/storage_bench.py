"""Storage benchmark: IPFS put/get and envelope seal/open throughput against same-run baselines.

Usage:
    .venv/bin/python benchmarks/storage_bench.py --api-url http://127.0.0.1:5001 [--runs 5]
        [--sizes-mb 5,50] [--recipients 5] [--json reports/storage_bench.json]

Every figure is the median of ``--runs`` timed runs after ``--warmup`` untimed ones (min and max
shown too); MB = 10^6 bytes. Disk read is of a file just written, i.e. mostly the page cache.
Baselines are measured in the same run over the same bytes, and each operation's ratio is
``its throughput / baseline throughput``:

* ``ipfs put`` (ContentStore.put: sha256 + Kubo add, pinned, CIDv1 raw leaves; fresh random bytes each
  run) vs ``disk write`` (write + fsync of a local file in --tmpdir).
* ``ipfs get`` (ContentStore.get: Kubo cat with a byte limit + sha256 verification) vs ``disk read``
  (read the local file back) and ``sha256``.
* ``envelope seal`` (N recipients) / ``envelope open`` (one recipient) vs plain ``AES-256-GCM``
  encryption of the same bytes (the envelope's floor).

Objects added are unpinned at the end (``--keep`` keeps them); ``--gc`` then runs ``repo gc``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedcommittee.storage import envelope
from fedcommittee.storage.ipfs import IpfsClient
from fedcommittee.storage.store import ContentStore

MB = 1_000_000


WARMUP = 1


def timed(fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> list[float]:
    """Wall times of ``runs`` calls of ``fn`` after ``WARMUP`` untimed ones; ``setup`` runs untimed."""
    out = []
    for i in range(WARMUP + runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        if i >= WARMUP:
            out.append(time.perf_counter() - start)
    return out


def summary(name: str, size: int, times: list[float], baseline: dict | None = None) -> dict:
    med = statistics.median(times)
    row = {
        "op": name,
        "size_bytes": size,
        "runs": len(times),
        "median_s": med,
        "min_s": min(times),
        "max_s": max(times),
        "mb_per_s": size / med / MB,
    }
    if baseline is not None:
        row["baseline"] = baseline["op"]
        row["ratio"] = row["mb_per_s"] / baseline["mb_per_s"]
    return row


def print_row(row: dict) -> None:
    ratio = f"{row['ratio']:.3f} x {row['baseline']}" if "ratio" in row else "(baseline)"
    print(
        f"{row['op']:<22} {row['size_bytes'] / MB:>6.0f} MB  median {row['median_s'] * 1000:>9.1f} ms  "
        f"[{row['min_s'] * 1000:.1f}-{row['max_s'] * 1000:.1f}]  {row['mb_per_s']:>8.1f} MB/s  {ratio}",
        flush=True,
    )


def bench_size(
    size: int,
    runs: int,
    store: ContentStore | None,
    ipfs: IpfsClient | None,
    recipients: int,
    tmpdir: str,
    added: list[str],
) -> list[dict]:
    rows: list[dict] = []
    data = os.urandom(size)
    path = os.path.join(tmpdir, f"fc-storage-bench-{os.getpid()}.bin")

    def emit(row: dict) -> dict:
        print_row(row)
        rows.append(row)
        return row

    # ---- baselines
    sha = emit(summary("sha256", size, timed(lambda: hashlib.sha256(data).hexdigest(), runs)))

    def write_file() -> None:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def read_file() -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    disk_w = emit(summary("disk write+fsync", size, timed(write_file, runs)))
    disk_r = emit(summary("disk read", size, timed(read_file, runs)))
    os.unlink(path)
    key = AESGCM.generate_key(bit_length=256)
    aes = emit(
        summary(
            "aes-256-gcm encrypt", size, timed(lambda: AESGCM(key).encrypt(os.urandom(12), data, b""), runs)
        )
    )

    # ---- IPFS through the verified store
    if store is not None and ipfs is not None:
        fresh: dict[str, bytes] = {}

        def new_bytes() -> None:
            fresh["data"] = os.urandom(size)

        objs = []

        def put() -> None:
            obj = store.put(fresh["data"])
            objs.append(obj)
            added.append(obj.cid)

        emit(summary("ipfs put (verified)", size, timed(put, runs, setup=new_bytes), disk_w))
        last = objs[-1]
        get_row = summary(
            "ipfs get (verified)",
            size,
            timed(lambda: store.get(last.cid, last.sha256_hex, size), runs),
            disk_r,
        )
        emit(get_row)
        print(f"{'':<22} {'':>9}  ipfs get vs sha256 alone: {get_row['mb_per_s'] / sha['mb_per_s']:.3f}")

    # ---- envelope
    pairs = [envelope.generate_keypair() for _ in range(recipients)]
    pubs = [pub for _, pub in pairs]
    ctx = "fedcommittee/shard/bench"
    blob = envelope.seal(data, pubs, ctx)
    emit(
        summary(
            f"envelope seal ({recipients} rcpt)",
            size,
            timed(lambda: envelope.seal(data, pubs, ctx), runs),
            aes,
        )
    )
    emit(summary("envelope open", size, timed(lambda: envelope.open(blob, pairs[-1][0], ctx), runs), aes))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-url", default=os.environ.get("FEDCOMMITTEE_IPFS_API", "http://127.0.0.1:5001"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes-mb", default="5,50", help="comma-separated object sizes in MB (10^6 bytes)")
    ap.add_argument("--recipients", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    ap.add_argument("--tmpdir", default=tempfile.gettempdir(), help="where the disk baseline writes")
    ap.add_argument("--no-ipfs", action="store_true", help="only baselines and envelope")
    ap.add_argument("--keep", action="store_true", help="leave the benchmark objects pinned")
    ap.add_argument("--gc", action="store_true", help="run repo gc after unpinning")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    global WARMUP
    WARMUP = max(0, args.warmup)

    sizes = [int(float(s) * MB) for s in args.sizes_mb.split(",") if s.strip()]
    ipfs = store = None
    info: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "warmup": WARMUP,
        "recipients": args.recipients,
    }
    if not args.no_ipfs:
        ipfs = IpfsClient(args.api_url, timeout=120)
        info["kubo"] = ipfs.version().get("Version")
        info["api_url"] = ipfs.api_url
        store = ContentStore(ipfs)
    print("storage benchmark:", json.dumps(info), flush=True)

    rows: list[dict] = []
    added: list[str] = []
    try:
        with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmpdir:
            for size in sizes:
                print(f"--- {size / MB:.0f} MB, median of {args.runs} runs", flush=True)
                rows += bench_size(size, args.runs, store, ipfs, args.recipients, tmpdir, added)
    finally:
        if ipfs is not None and not args.keep:
            for cid in dict.fromkeys(added):
                try:
                    ipfs.unpin(cid)
                except Exception as exc:  # cleanup must not hide the results
                    print(f"warning: could not unpin {cid}: {exc}", file=sys.stderr)
            if args.gc:
                print(f"repo gc removed {ipfs.repo_gc()} blocks")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
