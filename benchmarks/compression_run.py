"""Compressed updates through the real agents: bytes per round and accuracy per encoding.

Runs one experiment (default: configs/default.yaml) once per compression scheme on a local network
that is already up (`scripts/network.sh up`), each with `fedcommittee run`, and reads back what the
providers sent (their `trained` log records: bytes and scheme) and what the report measured (test
accuracy of the final model, acceptance). Float32 is the baseline measured in the same invocation.

    .venv/bin/python benchmarks/compression_run.py --out reports/compression_run.json
    .venv/bin/python benchmarks/compression_run.py --schemes float32,int8 --rounds 5   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcommittee.endpoints import default_home  # noqa: E402
from fedcommittee.logs import read_logs  # noqa: E402

DEFAULT_SCHEMES = "float32,float16,int8,int8+topk:0.1"


def run_one(config: dict, scheme: str, home: Path, rounds: int | None) -> dict:
    doc = dict(config, compression=scheme)
    if rounds:
        doc["rounds"] = rounds
    model_id = f"{config['name']}-{scheme.replace('+', '-').replace(':', '')}-{int(time.time())}"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
        path = Path(f.name)
    started = time.time()
    fedcommittee = Path(sys.executable).parent / "fedcommittee"
    proc = subprocess.run(
        [str(fedcommittee), "--home", str(home), "run", str(path), "--model-id", model_id, "--quiet"],
        capture_output=True,
        text=True,
    )
    wall = time.time() - started
    path.unlink()
    run = home / "runs" / model_id
    if proc.returncode != 0:
        raise SystemExit(f"{scheme}: run failed ({proc.returncode}); logs in {run}\n{proc.stderr[-2000:]}")
    report = json.loads((run / "report" / "report.json").read_text())
    per_round: dict[int, int] = defaultdict(int)
    sizes = set()
    for rec in read_logs(run / "logs"):
        if rec.get("event") == "trained" and rec.get("round"):
            per_round[int(rec["round"])] += int(rec["bytes"])
            sizes.add(int(rec["bytes"]))
            assert rec.get("scheme") == scheme, rec
    s = report["summary"]
    return {
        "scheme": scheme,
        "model_id": model_id,
        "rounds": s["rounds"],
        "update_bytes": sorted(sizes),
        "bytes_per_round_median": statistics.median(per_round.values()),
        "test_accuracy_final": s["test_accuracy_final"],
        "accepted": s["accepted"],
        "rejected": s["rejected"],
        "wall_seconds": round(wall, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--schemes", default=DEFAULT_SCHEMES, help=f"comma-separated (default {DEFAULT_SCHEMES})")
    ap.add_argument("--rounds", type=int, help="override the config's rounds (quicker, less comparable)")
    ap.add_argument("--home", type=Path, default=None, help="state dir of the running network ($FC_HOME)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    home = args.home or Path(os.environ.get("FC_HOME") or default_home())
    config = yaml.safe_load(args.config.read_text())
    config.pop("model_id", None)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if "float32" in schemes:  # the baseline first, so every ratio has it
        schemes.remove("float32")
        schemes.insert(0, "float32")
    rows = []
    for scheme in schemes:
        print(f"running {args.config.name} with compression {scheme} ...", flush=True)
        rows.append(run_one(config, scheme, home, args.rounds))
    base = next((r for r in rows if r["scheme"] == "float32"), None)
    print(f"\n{'scheme':<16}{'bytes/update':>14}{'bytes/round':>14}{'ratio':>8}{'test acc':>10}"
          f"{'d acc':>8}{'acc/rej':>9}{'wall s':>8}")  # fmt: skip
    for r in rows:
        ratio = r["bytes_per_round_median"] / base["bytes_per_round_median"] if base else float("nan")
        dacc = r["test_accuracy_final"] - base["test_accuracy_final"] if base else float("nan")
        r["ratio_vs_float32"], r["accuracy_delta_vs_float32"] = round(ratio, 4), round(dacc, 4)
        sizes = "/".join(map(str, r["update_bytes"]))
        counts = f"{r['accepted']}/{r['rejected']}"
        acc = r["test_accuracy_final"]
        print(f"{r['scheme']:<16}{sizes:>14}{r['bytes_per_round_median']:>14.0f}{ratio:>8.3f}"
              f"{acc:>10.4f}{dacc:>+8.4f}{counts:>9}{r['wall_seconds']:>8.1f}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
