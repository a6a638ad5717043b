"""The main job on each ledger backend: network up, the default consortium, wall time and rounds.

For each backend it brings up a network of its own (scripts/network.sh, a temporary FC_HOME on free
ports, FC_LEDGER set), runs `fedcommittee run CONFIG` as the main job does, reads the run's
report.json (median round and its breakdown from the agents' logs, accuracy, acceptance, audit) and
takes the network down. With both backends, the embedded ledger's figures are printed as ratios to
Fabric's, measured in the same invocation. Every figure names its backend.

    .venv/bin/python benchmarks/main_job_bench.py --backend dev
    FC_FABRIC_HOME=/path/to/fabric-3.1.5 .venv/bin/python benchmarks/main_job_bench.py --backend both \
        --out reports/main_job_bench.json
    .venv/bin/python benchmarks/main_job_bench.py --keep-logs /tmp/logs && \
        .venv/bin/python benchmarks/round_timeline.py /tmp/logs/dev
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.layout import BACKEND_NAMES  # noqa: E402
from tests.integration.network import LocalNetwork  # noqa: E402


def run_backend(backend: str, config: Path, keep_logs: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"fc-main-{backend}-") as tmp:
        net = LocalNetwork(home=Path(tmp) / "state", extra_env={"FC_LEDGER": backend})
        started = time.perf_counter()
        net.up()
        up_s = time.perf_counter() - started
        model_id = f"main-{backend}-{int(time.time())}"
        fedcommittee = Path(sys.executable).parent / "fedcommittee"
        try:
            started = time.perf_counter()
            proc = subprocess.run(
                [str(fedcommittee), "--home", str(net.home), "run", str(config), "--model-id", model_id],
                env=net.env(),
                capture_output=True,
                text=True,
            )
            run_s = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(
                    f"[{BACKEND_NAMES[backend]}] main job failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                )
            summary = json.loads((net.home / "runs" / model_id / "report" / "report.json").read_text())[
                "summary"
            ]
            if keep_logs is not None:  # the network's folder goes; keep the logs for round_timeline.py
                logs = net.home / "runs" / model_id / "logs"
                shutil.copytree(logs, keep_logs / backend, dirs_exist_ok=True)
        finally:
            net.run("down", check=False)
    audit = re.search(r"(\d+) checks, (\d+) discrepancies", proc.stdout)
    return {
        "backend": BACKEND_NAMES[backend],
        "network_up_s": round(up_s, 2),
        "main_job_s": round(run_s, 1),
        "rounds": summary["rounds"],
        "round_seconds_median": summary.get("round_seconds_median"),
        "round_breakdown_median_seconds": summary.get("round_breakdown_median_seconds"),
        # The slowest provider's training, the slowest member's scoring and its reference training.
        "work_median_seconds": summary.get("work_median_seconds"),
        "test_accuracy_final": summary["test_accuracy_final"],
        "accepted": summary["accepted"],
        "rejected": summary["rejected"],
        "audit": audit.group(0) if audit else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["dev", "fabric", "both"], default="dev")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--keep-logs", type=Path, help="copy each run's agent logs to DIR/<backend> "
                    "(for benchmarks/round_timeline.py)")  # fmt: skip
    args = ap.parse_args(argv)
    backends = ["dev", "fabric"] if args.backend == "both" else [args.backend]
    runs = []
    for b in backends:
        r = run_backend(b, args.config.resolve(), args.keep_logs)
        runs.append(r)
        print(f"[{r['backend']}] " + json.dumps({k: v for k, v in r.items() if k != "backend"}), flush=True)
    result: dict = {"config": str(args.config), "runs": runs}
    if len(runs) == 2:
        dev, fab = runs
        keys = ("network_up_s", "main_job_s", "round_seconds_median")
        result["ratios_embedded_over_fabric"] = {
            k: round(dev[k] / fab[k], 3) for k in keys if dev[k] and fab[k]
        }
        print("embedded ledger / Fabric, this run:", json.dumps(result["ratios_embedded_over_fabric"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
