"""Compressed updates on Fashion-MNIST: bytes on the wire vs final accuracy, per scheme (in-process).

The default experiment shape: providers with dominant-class (80%) partitions of the Fashion-MNIST
training set, FedAvg, a few rounds, a small model. Every scheme runs with the same seeds (same
partition, same initial model, same per-provider training seeds), so float32 is the exact baseline.
Each round every provider trains locally, encodes its delta with ``compress.compress`` and the
committee side decodes it with ``compress.decompress`` (strict validation, ``max_bytes`` = the exact
encoded size) and, with ``--members`` > 0, scores them with the default committee rule (median over
the members' validation shards): the decoded, accepted deltas are what FedAvg aggregates, as on the
real system. A scheme name
suffixed with ``/ef`` adds provider-side error feedback (``compress.ErrorFeedback``).

Reported per scheme: bytes per update and per round (all providers), ratio to float32, final full
test-set accuracy and its difference to float32, mean relative L2 error ||sent - x|| / ||x|| and
cosine(sent, x) where x is what the provider compressed (its delta; with /ef, delta + carried
residual), median encode / decode milliseconds per update.

Example:  nice -n 10 .venv/bin/python benchmarks/ml/compression_bench.py --out /tmp/compression.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from fedcommittee.ml import compress as cz
from fedcommittee.ml import partition as part
from fedcommittee.ml import state as st
from fedcommittee.ml.aggregate import FedAvg
from fedcommittee.ml.data import load_fashion_mnist, split_shards, train_val_split
from fedcommittee.ml.evaluate import evaluate
from fedcommittee.ml.models import initial_state
from fedcommittee.ml.scoring import DEFAULT_RULE, accept, score_updates
from fedcommittee.ml.serialize import state_hash
from fedcommittee.ml.train import TrainConfig, local_train

DEFAULT_SCHEMES = ("float32,float16,int8,int8-affine,topk:0.1,int8+topk:0.1,topk:0.01,topk:0.01/ef,"
                   "int8+topk:0.01,int8+topk:0.01/ef")  # fmt: skip


def run_scheme(label: str, args: argparse.Namespace, data: dict, cache: dict) -> dict:
    """One federated run in which every update travels under ``label``'s scheme."""
    scheme_name, _, flag = label.partition("/")
    scheme = cz.get_scheme(scheme_name)
    use_ef = flag == "ef"
    if flag not in ("", "ef"):
        raise ValueError(f"unknown suffix /{flag} in {label!r} (only /ef)")
    model, n = args.model, args.clients
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr)
    limit = cz.encoded_size(model, scheme)  # exact size: the committee's max_bytes
    feedback = [cz.ErrorFeedback(scheme, model) for _ in range(n)] if use_ef else None
    g = initial_state(model, args.seed)
    hist: dict = {"label": label, "scheme": scheme.name, "error_feedback": use_ef}
    for key in ("acc", "bytes_per_update", "rel_err", "cosine", "encode_ms", "decode_ms", "accepted"):
        hist[key] = []
    t0 = time.perf_counter()
    for r in range(args.rounds):
        g_id = state_hash(g)
        received = []
        for i in range(n):
            key = (g_id, r, i)  # same global + same seed -> same local update: reuse across schemes
            upd = cache.get(key)
            if upd is None:
                c = TrainConfig(**{**asdict(cfg), "seed": args.seed * 100_000 + r * 100 + i})
                upd = local_train(model, g, data["parts"][i], c)
                if r == 0:  # only round 1 starts from the same global in every run (keeps memory small)
                    cache[key] = upd
            target = upd.delta  # what is compressed: with error feedback, delta + carried residual
            if feedback and feedback[i].residual is not None:
                target = {k: upd.delta[k] + feedback[i].residual[k] for k in upd.delta}
            te = time.perf_counter()
            blob = feedback[i].compress(upd.delta) if feedback else cz.compress(upd.delta, scheme)
            td = time.perf_counter()
            sent = cz.decompress(blob, model, max_bytes=limit, scheme=scheme)
            tend = time.perf_counter()
            hist["encode_ms"].append((td - te) * 1e3)
            hist["decode_ms"].append((tend - td) * 1e3)
            hist["bytes_per_update"].append(len(blob))
            diff = {k: sent[k] - target[k] for k in sent}
            norm = st.l2_norm(target)
            hist["rel_err"].append(st.l2_norm(diff) / norm if norm else 0.0)
            hist["cosine"].append(st.cosine(sent, target))
            received.append((sent, upd.num_samples))
        if data["shards"]:  # committee: median default-rule score over the members' shards
            deltas, sizes = [d for d, _ in received], [m for _, m in received]
            per_member = [score_updates(DEFAULT_RULE, model, g, deltas, sh, sizes) for sh in data["shards"]]
            ok = [accept(DEFAULT_RULE, statistics.median(col)) for col in zip(*per_member, strict=True)]
            received = [x for x, keep in zip(received, ok, strict=True) if keep]
            hist["accepted"].append(sum(ok))
        if received:
            g = FedAvg().aggregate(g, received)
        hist["acc"].append(evaluate(model, g, data["test_small"]).accuracy)
        taken = f" accepted={hist['accepted'][-1]}/{n}" if hist["accepted"] else ""
        elapsed = time.perf_counter() - t0
        print(f"[{label}] round {r + 1:>2} acc={hist['acc'][-1]:.4f}{taken} t={elapsed:.0f}s", flush=True)
    hist["final_test"] = evaluate(model, g, data["test"]).as_dict()
    hist["bytes_per_round"] = sum(hist["bytes_per_update"]) / args.rounds
    hist["seconds"] = time.perf_counter() - t0
    return hist


def table(hists: list[dict], args: argparse.Namespace, command: str) -> str:
    base = next((h for h in hists if h["label"] == "float32"), hists[0])
    lines = [
        f"# compressed updates: Fashion-MNIST, {args.clients} providers, dominant-class {args.share:.0%},"
        f" FedAvg, {args.rounds} rounds x {args.steps} local steps (batch {args.batch}, lr {args.lr}),"
        f" model {args.model}, seed {args.seed}, "
        + (f"committee of {args.members} (default rule)" if args.members else "no committee"),
        f"# command: {command}",
        f"{'scheme':<20} {'bytes/update':>12} {'bytes/round':>12} {'ratio':>6} {'final acc':>9}"
        f" {'d acc':>7} {'rel err':>8} {'cosine':>7} {'accepted':>9} {'enc ms':>7} {'dec ms':>7}",
    ]
    for h in hists:
        acc = h["final_test"]["accuracy"]
        taken = f"{sum(h['accepted'])}/{args.clients * args.rounds}" if h["accepted"] else "all"
        lines.append(
            f"{h['label']:<20} {statistics.mean(h['bytes_per_update']):>12.0f} {h['bytes_per_round']:>12.0f}"
            f" {h['bytes_per_round'] / base['bytes_per_round']:>6.3f} {acc:>9.4f}"
            f" {acc - base['final_test']['accuracy']:>+7.4f} {statistics.mean(h['rel_err']):>8.4f}"
            f" {statistics.mean(h['cosine']):>7.4f} {taken:>9} {statistics.median(h['encode_ms']):>7.2f}"
            f" {statistics.median(h['decode_ms']):>7.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mlp-fmnist", help="mlp-fmnist (default, fast) or cnn-small, ...")
    ap.add_argument("--schemes", default=DEFAULT_SCHEMES, help="comma list; suffix /ef = error feedback")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--share", type=float, default=0.8, help="dominant-class share")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100, help="local SGD steps per round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-n", type=int, default=2000, help="test subset for per-round accuracy")
    ap.add_argument("--members", type=int, default=3, help="committee members; 0 = aggregate everything")
    ap.add_argument("--val-fraction", type=float, default=0.05, help="training share given to the committee")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the histories and table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/ml/compression_bench.py " + " ".join(sys.argv[1:])
    labels = [s.strip() for s in args.schemes.split(",") if s.strip()]
    for label in labels:  # fail fast on a typo, before loading data
        cz.get_scheme(label.partition("/")[0])

    t0 = time.perf_counter()
    train = load_fashion_mnist("train")
    shards = []
    if args.members > 0:  # committee validation shards carved from the training set (as in fl_bench)
        train, val = train_val_split(train, args.val_fraction, args.seed)
        shards = split_shards(val, args.members, args.seed)
    test = load_fashion_mnist("test")
    rng = np.random.default_rng(args.seed)
    parts = part.dominant_class(train.y.numpy(), args.clients, share=args.share, seed=args.seed)
    data = {"parts": [train.subset(p) for p in parts], "test": test, "shards": shards,
            "test_small": test.subset(np.sort(rng.permutation(len(test))[: args.eval_n]))}  # fmt: skip
    print(f"data loaded in {time.perf_counter() - t0:.0f}s; providers: {[len(p) for p in parts]}", flush=True)

    cache: dict = {}
    hists = [run_scheme(label, args, data, cache) for label in labels]
    text = table(hists, args, command)
    print(text, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "command": command, "table": text, "runs": hists,
                   "total_seconds": time.perf_counter() - t0}  # fmt: skip
        args.out.write_text(json.dumps(payload, indent=1, default=float))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
