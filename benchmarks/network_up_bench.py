"""Cold starts of the local network: `scripts/network.sh up` from cached binaries, N times in a row.

Each run is a new state directory on free ports: `up` (timed: identities, nodes, channel, chaincode,
ready), then `down`. Prints every run and min / median / max per backend; with both backends, the
embedded ledger's median as a ratio to Fabric's, measured in the same invocation. A failed `up`
is counted and its output shown, never retried.

    .venv/bin/python benchmarks/network_up_bench.py --backend dev --runs 20
    FC_FABRIC_HOME=/path/to/fabric-3.1.5 .venv/bin/python benchmarks/network_up_bench.py --backend both
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.layout import BACKEND_NAMES  # noqa: E402
from tests.integration.network import LocalNetwork  # noqa: E402


def cold_starts(backend: str, runs: int) -> dict:
    name = BACKEND_NAMES[backend]
    times, failures = [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="fc-up-") as tmp:
            net = LocalNetwork(home=Path(tmp) / "state", extra_env={"FC_LEDGER": backend})
            started = time.perf_counter()
            proc = net.run("up", check=False)
            elapsed = time.perf_counter() - started
            net.run("down", check=False)
        if proc.returncode != 0:
            failures.append(
                {"run": i + 1, "seconds": round(elapsed, 2), "output": (proc.stdout + proc.stderr)[-1500:]}
            )
            print(f"[{name}] run {i + 1}: FAILED after {elapsed:.2f} s", flush=True)
            continue
        times.append(elapsed)
        print(f"[{name}] run {i + 1}: up in {elapsed:.2f} s", flush=True)
    summary = {
        "backend": name,
        "runs": runs,
        "failed": len(failures),
        "seconds": [round(t, 2) for t in times],
    }
    if times:
        med = statistics.median(times)
        summary.update(min_s=round(min(times), 2), median_s=round(med, 2), max_s=round(max(times), 2))
        summary["max_over_median"] = round(max(times) / med, 2)
        print(
            f"[{name}] network.sh up, {len(times)} of {runs} cold starts: min {min(times):.2f} s, "
            f"median {med:.2f} s, max {max(times):.2f} s (max/median {max(times) / med:.2f}), "
            f"failed {len(failures)}",
            flush=True,
        )
    summary["failures"] = failures
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["dev", "fabric", "both"], default="dev")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    backends = ["dev", "fabric"] if args.backend == "both" else [args.backend]
    result: dict = {"runs": [cold_starts(b, args.runs) for b in backends]}
    if len(result["runs"]) == 2 and all("median_s" in r for r in result["runs"]):
        ratio = result["runs"][0]["median_s"] / result["runs"][1]["median_s"]
        result["median_ratio_embedded_over_fabric"] = round(ratio, 3)
        print(f"median up, embedded ledger / Fabric, this run: {ratio:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(r["failed"] for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
