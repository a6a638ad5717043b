"""Run report: one HTML page with PNG plots, drawn from the ledger (the source of truth) and the agents'
JSON-lines logs (timings).

* accuracy per round: each round's global model (and the final one) evaluated on the experiment's test
  split when the config is known, plus the committee members' own shard accuracy from their logs;
* per-provider committee median scores per round, accepted (filled) or rejected (hollow);
* rewards: the model's leaderboard (net credits per identity);
* ledger latency: submit-to-commit seconds per transaction type, from the agents' ``submitted`` records.
Also ``report.json`` with the same numbers.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from fedcommittee.logs import latency_by_tx, read_logs, round_overhead
from fedcommittee.roles.common import paged, run_dir


def _short(identity: str, names: dict[str, str]) -> str:
    return names.get(identity) or identity.split("/")[0] + "/" + identity[-8:]


def identity_names(exp, profile) -> dict[str, str]:
    """identity key -> config name (provider / member / publisher), for readable plots."""
    from fedcommittee.roles.common import identity_key

    out: dict[str, str] = {}
    if exp is None or profile is None:
        return out
    pairs = [(exp.publisher, "publisher")] + [(m.user, m.name) for m in exp.committee]
    pairs += [(p.user, p.name) for p in exp.providers]
    for user, name in pairs:
        try:
            ident, _ = profile.identity(user).load()
        except (KeyError, FileNotFoundError, ValueError):
            continue
        out[identity_key(ident.msp_id, ident.certificate)] = name
    return out


def round_walls(rounds: list[dict]) -> dict[int, float]:
    """Seconds from a round's opening to its end (aggregate confirmed, or closed when skipped), from
    the ledger's block timestamps (whole seconds)."""
    out = {}
    for rd in rounds:
        end = rd.get("confirmedAt") or (rd.get("closedAt") if rd.get("status") == "skipped" else None)
        if rd.get("openedAt") and end:
            out[int(rd["number"])] = float(int(end) - int(rd["openedAt"]))
    return out


def collect(
    client, model_id: str, *, home: Path, exp=None, store=None, profile=None, private_key=None
) -> dict[str, Any]:
    model = client.get_model(model_id)
    names = identity_names(exp, profile)
    data: dict[str, Any] = {"model": model, "rounds": [], "updates": [], "leaderboard": [], "latency": {}}
    rounds = range(1, int(model.get("currentRound") or 0) + 1) if model["mode"] == "federated" else [0]
    for r in rounds:
        rd = client.get_round(model_id, r) if r else {"number": 0, "status": model["status"], "global": None}
        ups = list(paged(lambda b, r=r: client.list_round_updates(model_id, r, 200, b)))
        data["rounds"].append(rd)
        for u in ups:
            data["updates"].append(
                {
                    "id": u["id"],
                    "round": u.get("round", 0),
                    "provider": _short(u["provider"], names),
                    "status": u["status"],
                    "median": u.get("medianScore"),
                    "samples": u.get("numSamples"),
                    "submittedAt": u.get("submittedAt"),
                    "finalizedAt": u.get("finalizedAt"),
                }
            )
    lb = client.get_leaderboard(model_id) or []
    lb = lb.get("items", lb) if isinstance(lb, dict) else lb
    data["leaderboard"] = [
        {
            "who": _short(e["identity"], names),
            "net": e.get("net", 0),
            "accepted": e.get("accepted", 0),
            "rejected": e.get("rejected", 0),
            "verdicts": e.get("verdicts", 0),
        }
        for e in lb
    ]
    # Timings from the agents' logs.
    records = read_logs(run_dir(home, model_id) / "logs")
    shard_acc: dict[int, list[float]] = defaultdict(list)
    for rec in records:
        if rec.get("event") == "aggregate_checked":
            shard_acc[int(rec["round"])].append(float(rec["accuracy"]))
    data["latency"] = latency_by_tx(records)
    data["overhead"] = (
        round_overhead(records, round_walls(data["rounds"])) if model["mode"] == "federated" else {}
    )
    data["shard_accuracy"] = {r: statistics.median(v) for r, v in sorted(shard_acc.items())}
    # Test accuracy of each round's global model (and the final one).
    data["test_accuracy"] = {}
    if exp is not None and store is not None:
        from fedcommittee import ml
        from fedcommittee.experiment import data_split
        from fedcommittee.roles.common import Reader
        from fedcommittee.storage.errors import EncryptedObject

        test = data_split(exp).test
        name = model["architecture"]["name"]
        # Gossip points are updates, which may be sealed: opened with our key where we are a recipient.
        reader = Reader(client, store, name, max_bytes=exp.max_update_bytes, private_key=private_key,
                        model_id=model_id)  # fmt: skip
        gossip = model["mode"] == "gossip"
        data["sealed_not_opened"] = 0

        def accuracy(ref: dict, update: bool) -> float | None:
            try:
                state = reader.fetch_weights(ref["cid"], ref["sha256"], update=update)
            except EncryptedObject:
                data["sealed_not_opened"] += 1
                return None
            return ml.evaluate(name, state, test).accuracy

        if gossip:
            # Initial weights (0), then every accepted update in submission order: the DAG's progress.
            acc_ups = sorted(
                (u for u in data["updates"] if u["status"] == "accepted"),
                key=lambda u: (u["submittedAt"] or 0, u["id"]),
            )
            refs = [(0, model["initialWeights"])]
            for i, u in enumerate(acc_ups, 1):
                full = client.get_update(u["id"])
                refs.append((i, {"cid": full["cid"], "sha256": full["sha256"]}))
        else:
            refs = [(int(rd["number"]), rd["global"]) for rd in data["rounds"] if rd.get("global")]
            if model.get("final"):
                refs.append((len(refs) + 1, model["final"]))
        for r, ref in refs:
            acc = accuracy(ref, update=gossip and r > 0)  # gossip point 0: the initial weights
            if acc is not None:
                data["test_accuracy"][r] = acc
        if model.get("final"):
            acc = accuracy(model["final"], update=gossip)  # gossip: the final model is an update
            if acc is not None:
                data["final_test_accuracy"] = acc
    return data


def _plots(data: dict, out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []

    def save(fig, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        figs.append((name, title))

    # accuracy per round
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if data["test_accuracy"]:
        xs = sorted(data["test_accuracy"])
        ax.plot(xs, [data["test_accuracy"][x] for x in xs], "o-", label="global model, test split")
    if data["shard_accuracy"]:
        xs = sorted(data["shard_accuracy"])
        ax.plot(
            [x + 1 for x in xs],
            [data["shard_accuracy"][x] for x in xs],
            "s--",
            label="committee shards (median)",
        )
    gossip = data["model"]["mode"] == "gossip"
    ax.set_xlabel(
        "accepted update, in order (0 = initial)" if gossip else "global model of round (last = final)"
    )
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "accuracy.png", "Accuracy per round")

    # per-provider scores
    fig, ax = plt.subplots(figsize=(7, 3.8))
    provs = sorted({u["provider"] for u in data["updates"]})
    for i, p in enumerate(provs):
        ups = [u for u in data["updates"] if u["provider"] == p and u["median"] is not None]
        for u in ups:
            acc = u["status"] == "accepted"
            ax.scatter(u["round"] + (i - len(provs) / 2) * 0.04, u["median"], color=f"C{i}",
                       facecolors=f"C{i}" if acc else "none", label=p if u is ups[0] else None)  # fmt: skip
    ax.axhline(float((data["model"]["acceptance"] or {}).get("threshold") or 0), color="grey", lw=0.8, ls=":")
    ax.set_xlabel("round (gossip: 0)")
    ax.set_ylabel("committee median score")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save(fig, "scores.png", "Committee scores per provider (filled = accepted, hollow = rejected)")

    # rewards
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lb = data["leaderboard"]
    ax.bar(
        [e["who"] for e in lb], [e["net"] for e in lb], color=["C2" if e["net"] >= 0 else "C3" for e in lb]
    )
    ax.set_ylabel("net reward")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    save(fig, "rewards.png", "Rewards (leaderboard, net credits)")

    # where each round's time went
    if data.get("overhead"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        rs = sorted(data["overhead"])
        bottom = [0.0] * len(rs)
        for kind, colour in (("compute", "C0"), ("ledger", "C1"), ("ipfs", "C2"), ("other", "C7")):
            vals = [data["overhead"][r][kind] for r in rs]
            ax.bar(rs, vals, bottom=bottom, color=colour, label=kind)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xlabel("round")
        ax.set_ylabel("seconds (critical path)")
        ax.legend(fontsize=7, ncol=4)
        save(fig, "overhead.png", "Round time: training and scoring, ledger, IPFS, other (waiting, decoding)")

    # latency
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lat = data["latency"]
    if lat:
        keys = sorted(lat)
        ax.boxplot([lat[k] for k in keys], tick_labels=keys)
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.set_ylabel("submit to commit (s)")
    save(fig, "latency.png", "Ledger latency per transaction type")
    return figs


def write_report(
    client,
    endpoints,
    model_id: str,
    *,
    home: Path,
    exp=None,
    out: Path | None = None,
    wall_seconds=None,
    private_key=None,
) -> Path:
    """``private_key``: ours, to open sealed gossip updates we are a recipient of (else those points
    are left out of the accuracy plot and counted in ``sealed_not_opened``)."""
    from fedcommittee.ledger import load_profile
    from fedcommittee.storage import ContentStore, IpfsClient

    out = Path(out) if out else run_dir(home, model_id) / "report"
    out.mkdir(parents=True, exist_ok=True)
    profile = load_profile(endpoints.connection_profile) if endpoints.connection_profile else None
    with IpfsClient(endpoints.ipfs_api, timeout=60) as ipfs:
        store = ContentStore(ipfs, pin=False)
        data = collect(
            client, model_id, home=home, exp=exp, store=store, profile=profile, private_key=private_key
        )
    data["wall_seconds"] = wall_seconds
    data["ledger_backend"] = endpoints.ledger_words
    figs = _plots(data, out)
    summary = summarize(data)
    (out / "report.json").write_text(json.dumps({"summary": summary, **data}, indent=2, default=str))
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(u['round']))}</td><td>{e(u['provider'])}</td><td>{e(u['status'])}</td>"
        f"<td>{_fmt(u['median'])}</td><td>{u['samples']}</td></tr>"
        for u in data["updates"]
    )
    lat_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{len(v)}</td><td>{statistics.median(v):.3f}</td><td>{max(v):.3f}</td></tr>"
        for k, v in sorted(data["latency"].items())
    )
    kinds = ("wall", "compute", "ledger", "ipfs", "other")
    ov_rows = "".join(
        f"<tr><td>{r}</td>{''.join(f'<td>{v[k]:.2f}</td>' for k in kinds)}<td>{v['overhead']:.1%}</td></tr>"
        for r, v in sorted((data.get("overhead") or {}).items())
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>fedcommittee report {e(model_id)}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}</style></head><body>
<h1>Run report: {e(model_id)}</h1>
<pre>{e(json.dumps(summary, indent=2))}</pre>
{"".join(f'<h2>{e(t)}</h2><img src="{n}">' for n, t in figs)}
<h2>Updates</h2><table>
<tr><th>round</th><th>provider</th><th>status</th><th>median score</th><th>samples</th></tr>
{rows}</table>
<h2>Round time on the critical path (s)</h2><table>
<tr><th>round</th><th>wall</th><th>train + score</th><th>ledger</th><th>IPFS</th><th>other</th>
<th>ledger + IPFS share</th></tr>{ov_rows}</table>
<h2>Ledger latency (s)</h2><table>
<tr><th>transaction</th><th>n</th><th>median</th><th>max</th></tr>{lat_rows}</table>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _fmt(x) -> str:
    return "" if x is None else f"{x:.4f}"


def summarize(data: dict) -> dict:
    m = data["model"]
    ups = data["updates"]
    by_provider: dict[str, dict[str, int]] = defaultdict(lambda: {"accepted": 0, "rejected": 0, "pending": 0})
    for u in ups:
        by_provider[u["provider"]][u["status"]] += 1
    acc = data["test_accuracy"]
    return {
        "model": m["id"],
        "status": m["status"],
        "mode": m["mode"],
        "rounds": int(m.get("currentRound") or 0),
        "updates": len(ups),
        "accepted": sum(1 for u in ups if u["status"] == "accepted"),
        "rejected": sum(1 for u in ups if u["status"] == "rejected"),
        "per_provider": dict(by_provider),
        "test_accuracy_initial": acc.get(min(acc)) if acc else None,
        "test_accuracy_final": data.get("final_test_accuracy", acc.get(max(acc)) if acc else None),
        "wall_seconds": data.get("wall_seconds"),
        "ledger_backend": data.get("ledger_backend"),
        **overhead_summary(data.get("overhead") or {}),
    }


def overhead_summary(overhead: dict[int, dict[str, float]]) -> dict:
    """Medians over the rounds of the critical-path breakdown (``logs.round_overhead``)."""
    if not overhead:
        return {}
    rows = list(overhead.values())
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "compute", "ledger", "ipfs", "other")}
    total = sum(r["wall"] for r in rows)
    return {
        "round_seconds_median": med["wall"],
        "round_breakdown_median_seconds": {k: round(v, 3) for k, v in med.items() if k != "wall"},
        "ledger_ipfs_share_of_round_time": (
            round(sum(r["ledger"] + r["ipfs"] for r in rows) / total, 4) if total else None
        ),
    }
