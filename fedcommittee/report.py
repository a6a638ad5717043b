"""Run report: one HTML page with PNG plots, drawn from the ledger (the source of truth) and the agents'
JSON-lines logs (timings).

* accuracy per round: each round's global model (and the final one) evaluated on the experiment's test
  split when the config is known, plus the committee members' own shard accuracy from their logs;
* per-provider committee median scores per round, accepted (filled) or rejected (hollow);
* rewards: the model's leaderboard (net credits per identity);
* round time along the critical path: the slowest provider's training, the slowest member's scoring,
  ledger, IPFS and the rest; the members' scoring and reference training beside the providers'
  training in the summary;
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

from fedcommittee.ledger import Mode, Role, RoundStatus, UpdateStatus
from fedcommittee.logs import (
    RACE_WORDS,
    commit_times,
    contract_refusals,
    latency_by_tx,
    race_counts,
    read_logs,
    round_overhead,
    round_work,
)
from fedcommittee.roles.runtime import run_dir


def _short(identity: str, names: dict[str, str]) -> str:
    return names.get(identity) or identity.split("/")[0] + "/" + identity[-8:]


def identity_names(exp, profile) -> dict[str, str]:
    """identity key -> config name (provider / member / publisher), for readable plots."""
    from fedcommittee.roles.envelopes import identity_key

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


# How the report groups providers: the config's behaviour, in the words a reader expects.
BEHAVIOUR_GROUPS = ("honest", "attacker", "free rider")


def behaviour_group(behaviour: str | None) -> str:
    """``honest``, ``free rider`` or ``attacker`` (every poisoning behaviour); ``?`` without a config."""
    if behaviour is None:
        return "?"
    if behaviour in ("honest", "free_rider", "free rider"):  # the config's word or the page's
        return behaviour.replace("_", " ")
    return "attacker"


def participants(exp) -> dict[str, dict[str, str]]:
    """config name -> role and behaviour (providers), from the experiment config the report was given."""
    if exp is None:
        return {}
    out = {"publisher": {"role": str(Role.PUBLISHER), "behaviour": ""}}
    out.update({m.name: {"role": str(Role.COMMITTEE), "behaviour": ""} for m in exp.committee})
    out.update({p.name: {"role": str(Role.PROVIDER), "behaviour": p.behaviour} for p in exp.providers})
    return out


def round_times(rounds: list[dict], records: list[dict]) -> tuple[dict[int, float], dict[int, str]]:
    """Each ended round's wall seconds to 0.1 s, and where the figure came from.

    A round runs from the transaction that opened it (``openedTx``) to the one that confirmed its
    aggregate (``confirmedTx``; a skipped round: ``closedTx``). The agent that submitted each of those
    logged when it saw the commit (``submitted`` record, sub-second clock), so the difference is the
    round's time as the agents lived it: ``agents``. Where either record is missing (logs lost, a
    round opened by a restarted agent before its log) the ledger's block timestamps, whole seconds,
    stand in: ``ledger``.
    """
    seen = commit_times(records)
    ledger = round_walls(rounds)
    secs: dict[int, float] = {}
    source: dict[int, str] = {}
    for rd in rounds:
        r = int(rd["number"])
        if r not in ledger:
            continue
        end_tx = rd.get("confirmedTx") or (
            rd.get("closedTx") if rd.get("status") == RoundStatus.SKIPPED else None
        )
        start, end = seen.get(rd.get("openedTx") or ""), seen.get(end_tx or "")
        if start is not None and end is not None and end >= start:
            secs[r], source[r] = round(end - start, 1), "agents"
        else:
            secs[r], source[r] = ledger[r], "ledger"
    return secs, source


def round_walls(rounds: list[dict]) -> dict[int, float]:
    """Seconds from a round's opening to its end (aggregate confirmed, or closed when skipped), from
    the ledger's block timestamps (whole seconds)."""
    out = {}
    for rd in rounds:
        end = rd.get("confirmedAt") or (
            rd.get("closedAt") if rd.get("status") == RoundStatus.SKIPPED else None
        )
        if rd.get("openedAt") and end:
            out[int(rd["number"])] = float(int(end) - int(rd["openedAt"]))
    return out


def collect(
    client, model_id: str, *, home: Path, exp=None, store=None, profile=None, private_key=None
) -> dict[str, Any]:
    model = client.get_model(model_id)
    ledger = _ledger_records(client, model, identity_names(exp, profile))
    logs = _log_figures(read_logs(run_dir(home, model_id) / "logs"), ledger["rounds"], model["mode"])
    # In report.json's order: the ledger's records, then what the logs and the config say.
    data: dict[str, Any] = {"model": model, **ledger, "latency": logs.pop("latency"),
                            "participants": participants(exp), **logs}  # fmt: skip
    # Test accuracy of each round's global model (and the final one).
    data["test_accuracy"] = {}
    if exp is not None and store is not None:
        _test_accuracy(data, client, store, exp, private_key)
    return data


def _ledger_records(client, model: dict, names: dict[str, str]) -> dict[str, Any]:
    """Rounds, updates and the leaderboard as the ledger has them, identities by their config names."""
    model_id = model["id"]
    rounds_, updates = [], []
    rounds = range(1, int(model.get("currentRound") or 0) + 1) if model["mode"] == Mode.FEDERATED else [0]
    for r in rounds:
        rd = client.get_round(model_id, r) if r else {"number": 0, "status": model["status"], "global": None}
        ups = list(client.iter_round_updates(model_id, r))
        rounds_.append(rd)
        for u in ups:
            updates.append(
                {
                    "id": u["id"],
                    "round": u.get("round", 0),
                    "provider": _short(u["provider"], names),
                    "status": u["status"],
                    "median": u.get("medianScore"),
                    "samples": u.get("numSamples"),
                    "submittedAt": u.get("submittedAt"),
                    "finalizedAt": u.get("finalizedAt"),
                    "standing": u.get("standing"),  # gossip: what the committee chose the bars by
                }
            )
    leaderboard = [
        {
            "who": _short(e["identity"], names),
            "net": e.get("net", 0),
            "accepted": e.get("accepted", 0),
            "rejected": e.get("rejected", 0),
            "verdicts": e.get("verdicts", 0),
        }
        for e in client.leaderboard(model_id)
    ]
    return {"rounds": rounds_, "updates": updates, "leaderboard": leaderboard}


def _log_figures(records: list[dict], rounds: list[dict], mode: str) -> dict[str, Any]:
    """Timings, latencies, refusals, races and the committee's shard accuracy from the agents' logs."""
    shard_acc: dict[int, list[float]] = defaultdict(list)
    for rec in records:
        if rec.get("event") == "aggregate_checked":
            shard_acc[int(rec["round"])].append(float(rec["accuracy"]))
    out: dict[str, Any] = {
        "latency": latency_by_tx(records),
        "refusals": contract_refusals(records),
        "races": race_counts(records),
    }
    out["round_seconds"], out["round_seconds_source"] = (
        round_times(rounds, records) if mode == Mode.FEDERATED else ({}, {})
    )
    out["overhead"] = round_overhead(records, out["round_seconds"])
    out["work"] = round_work(records) if mode == Mode.FEDERATED else {}
    out["shard_accuracy"] = {r: statistics.median(v) for r, v in sorted(shard_acc.items())}
    return out


def _accuracy_points(data: dict, client) -> list[tuple[int, dict]]:
    """(x, weights reference) of each point of the accuracy curve: each round's global model and the
    final one; in gossip the initial weights (0), then every accepted update in submission order."""
    model = data["model"]
    if model["mode"] == Mode.GOSSIP:
        acc_ups = sorted(
            (u for u in data["updates"] if u["status"] == UpdateStatus.ACCEPTED),
            key=lambda u: (u["submittedAt"] or 0, u["id"]),
        )
        refs = [(0, model["initialWeights"])]
        for i, u in enumerate(acc_ups, 1):
            full = client.get_update(u["id"])
            refs.append((i, {"cid": full["cid"], "sha256": full["sha256"]}))
        return refs
    refs = [(int(rd["number"]), rd["global"]) for rd in data["rounds"] if rd.get("global")]
    if model.get("final"):
        refs.append((len(refs) + 1, model["final"]))
    return refs


def _test_accuracy(data: dict, client, store, exp, private_key) -> None:
    from fedcommittee import ml
    from fedcommittee.experiment import data_split
    from fedcommittee.roles.reader import Reader
    from fedcommittee.storage.errors import EncryptedObject

    model = data["model"]
    test = data_split(exp).test
    name = model["architecture"]["name"]
    # Gossip points are updates, which may be sealed: opened with our key where we are a recipient.
    reader = Reader(client, store, name, max_bytes=exp.max_update_bytes, private_key=private_key,
                    model_id=model["id"])  # fmt: skip
    gossip = model["mode"] == Mode.GOSSIP
    data["sealed_not_opened"] = 0

    def weights(ref: dict, update: bool) -> dict | None:
        try:
            return reader.fetch_weights(ref["cid"], ref["sha256"], update=update)
        except EncryptedObject:
            data["sealed_not_opened"] += 1
            return None

    for r, ref in _accuracy_points(data, client):
        state = weights(ref, update=gossip and r > 0)  # gossip point 0: the initial weights
        if state is not None:
            data["test_accuracy"][r] = ml.evaluate(name, state, test).accuracy
    prop = model.get("finalProposal") or {}
    if prop.get("cid"):  # gossip: the mix the committee judged, chosen or not
        mix = weights({"cid": prop["cid"], "sha256": prop["sha256"]}, update=False)
        if mix is not None:
            data["mix_test_accuracy"] = ml.evaluate(name, mix, test).accuracy
    final = weights(model["final"], update=gossip) if model.get("final") else None  # gossip: an update
    if final is not None:
        data["final_test_accuracy"] = ml.evaluate(name, final, test).accuracy
        if any(p.behaviour == "backdoor" for p in exp.providers):
            # What the simulated backdoor attackers achieved: their trigger on the final model.
            data["final_backdoor_success"] = ml.backdoor_success(name, final, test)


# Markers per behaviour group, so a reader tells an attacker from a free rider without the colour
# (and two providers of one group apart by colour and, after the first few, by marker).
_MARKERS = {"honest": "ovph*<>", "attacker": "X^P", "free rider": "sD", "?": "ov^sDXP"}


def provider_styles(data: dict) -> dict[str, tuple[str, str]]:
    """provider -> (colour, marker): a distinct colour each (tab20 past ten), a marker per behaviour."""
    provs = sorted({u["provider"] for u in data["updates"]} | set(data.get("refusals") or {}))
    provs = [p for p in provs if _role(data, p) in (Role.PROVIDER, "?")]
    used: dict[str, int] = defaultdict(int)
    out = {}
    for i, p in enumerate(provs):
        group = behaviour_group(_behaviour(data, p))
        marks = _MARKERS.get(group, _MARKERS["?"])
        colour = f"C{i}" if len(provs) <= 10 else f"tab20:{i % 20}"
        out[p] = (colour, marks[used[group] % len(marks)])
        used[group] += 1
    return out


def _role(data: dict, name: str) -> str:
    return (data.get("participants") or {}).get(name, {}).get("role", "?")


def _behaviour(data: dict, name: str) -> str | None:
    return (data.get("participants") or {}).get(name, {}).get("behaviour")


def _label(data: dict, name: str) -> str:
    b = _behaviour(data, name)
    return f"{name} ({b.replace('_', ' ')})" if b else name


def _colour(spec: str):
    if spec.startswith("tab20:"):
        import matplotlib

        return matplotlib.colormaps["tab20"](int(spec.split(":")[1]))
    return spec


def _plots(data: dict, out: Path) -> list[tuple[str, str]]:
    """Draw each plot that has something to show into ``out``; returns (file name, title) of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    for draw in (_accuracy_plot, _scores_plot, _rewards_plot, _overhead_plot, _latency_plot):
        drawn = draw(data, plt)
        if drawn is None:
            continue
        fig, name, title = drawn
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        figs.append((name, title))
    return figs


def _whole_rounds(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    # Rounds are counted, never halved: no 2.5 on the axis.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _accuracy_plot(data: dict, plt):
    fig, ax = plt.subplots(figsize=(7, 3.5))
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
    gossip = data["model"]["mode"] == Mode.GOSSIP
    ax.set_xlabel(
        "accepted update, in order (0 = initial)" if gossip else "global model of round (last = final)"
    )
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    _whole_rounds(ax)
    if ax.lines:
        ax.legend(loc="lower right", fontsize=8)
    return fig, "accuracy.png", "Accuracy per round"


def _scores_plot(data: dict, plt):
    """One colour and marker per provider, filled = accepted, hollow = rejected."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9, 4))
    styles = provider_styles(data)
    handles = []
    for i, (p, (colour, marker)) in enumerate(styles.items()):
        c = _colour(colour)
        ups = [u for u in data["updates"] if u["provider"] == p and u["median"] is not None]
        for u in ups:
            acc = u["status"] == UpdateStatus.ACCEPTED
            # A small sideways offset per provider keeps equal scores of one round from hiding each other.
            ax.scatter(u["round"] + (i - len(styles) / 2) * 0.03, u["median"], marker=marker, s=40,
                       edgecolors=[c], facecolors=[c] if acc else "none", linewidths=1.2)  # fmt: skip
        handles.append(Line2D([], [], ls="", marker=marker, color=c, markersize=7, label=_label(data, p)))
    handles += [
        Line2D([], [], ls="", marker="o", color="grey", label="filled: accepted"),
        Line2D([], [], ls="", marker="o", color="grey", markerfacecolor="none", label="hollow: rejected"),
    ]
    threshold = (data["model"].get("acceptance") or {}).get("threshold")
    if threshold is not None:
        ax.axhline(float(threshold), color="grey", lw=0.8, ls=":")
        handles.append(Line2D([], [], color="grey", lw=0.8, ls=":", label="acceptance threshold"))
    gossip = data["model"]["mode"] == Mode.GOSSIP
    ax.set_xlabel("gossip: every update (round 0)" if gossip else "round")
    ax.set_ylabel("committee median score")
    _whole_rounds(ax)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig, "scores.png", "Committee scores per provider (filled = accepted, hollow = rejected)"


def _rewards_plot(data: dict, plt):
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(8, 3.8))
    lb = data["leaderboard"]
    ax.bar(
        [_label(data, e["who"]) for e in lb],
        [e["net"] for e in lb],
        color=["C2" if e["net"] >= 0 else "C3" for e in lb],
    )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("net reward")
    ax.tick_params(axis="x", rotation=40, labelsize=8)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")
    if lb:
        ax.legend(
            handles=[Patch(color="C2", label="net gain"), Patch(color="C3", label="net loss")], fontsize=8
        )
    return fig, "rewards.png", "Rewards (leaderboard, net credits)"


# The parts of a round's critical path, in the order the table and the plot show them.
PATH_PARTS = ("training", "scoring", "ledger", "ipfs", "other")


def critical_path(data: dict) -> dict[int, dict[str, float]]:
    """Per timed round, its critical path in ``PATH_PARTS``: the breakdown of ``logs.round_overhead``
    with its compute split into the slowest provider's training and the slowest member's scoring
    (``logs.round_work``; the two sum to it). A round without work records shows its compute as
    training."""
    ov, work = data.get("overhead") or {}, data.get("work") or {}
    out = {}
    for r, row in ov.items():
        split = work.get(r) or {"training": row["compute"], "scoring": 0.0}
        out[r] = {"training": split["training"], "scoring": split["scoring"],
                  **{k: row[k] for k in ("ledger", "ipfs", "other")}}  # fmt: skip
    return out


def _overhead_plot(data: dict, plt):
    """Where each round's time went; no plot where no round was timed."""
    path = critical_path(data)
    if not path:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    rs = sorted(path)
    bottom = [0.0] * len(rs)
    colours = {"training": "C0", "scoring": "C4", "ledger": "C1", "ipfs": "C2", "other": "C7"}
    for kind in PATH_PARTS:
        vals = [path[r][kind] for r in rs]
        ax.bar(rs, vals, bottom=bottom, color=colours[kind], label=kind)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("seconds (critical path)")
    _whole_rounds(ax)
    ax.legend(fontsize=7, ncol=5)
    return fig, "overhead.png", "Round time: training, scoring, ledger, IPFS, other (waiting, decoding)"


def _latency_plot(data: dict, plt):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lat = data["latency"]
    if lat:
        keys = sorted(lat)
        ax.boxplot([lat[k] for k in keys], tick_labels=keys)
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.set_ylabel("submit to commit (s)")
    return fig, "latency.png", "Ledger latency per transaction type"


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
    verify: dict | None = None,
) -> Path:
    """``private_key``: ours, to open sealed gossip updates we are a recipient of (else those points
    are left out of the accuracy plot and counted in ``sealed_not_opened``). ``verify``: the audit's
    result where the caller ran it (``{"checks": n, "discrepancies": n}``), else the page says so."""
    from fedcommittee.ledger import load_profile
    from fedcommittee.storage import ContentStore, IpfsClient

    out = Path(out) if out else run_dir(home, model_id) / "report"
    profile = load_profile(endpoints.connection_profile) if endpoints.connection_profile else None
    with IpfsClient(endpoints.ipfs_api, timeout=60) as ipfs:
        store = ContentStore(ipfs, pin=False)
        data = collect(
            client, model_id, home=home, exp=exp, store=store, profile=profile, private_key=private_key
        )
    data["wall_seconds"] = wall_seconds
    data["ledger_backend"] = endpoints.ledger_words
    data["verify"] = verify
    return render_report(data, out)


def render_report(data: dict, out: Path) -> Path:
    """Plots, ``report.json`` and ``report.html`` in ``out`` from ``collect``'s data (plus
    ``wall_seconds``, ``ledger_backend``, ``verify``); the page opens with the summary tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_id = str(data["model"]["id"])
    figs = _plots(data, out)
    summary = summarize(data)
    (out / "report.json").write_text(json.dumps({"summary": summary, **data}, indent=2, default=str))
    (out / "report.html").write_text(_page(data, summary, figs, model_id))
    return out / "report.html"


# ------------------------------------------------------------------ the page
_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 10px;font-size:14px}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.summary th{width:14em}img{max-width:100%;border:1px solid #eee}h2{margin-top:1.6em}
.muted{color:#777}"""


def _duration(seconds) -> str:
    if seconds is None:
        return "not recorded"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s"


def _acc(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _verify_words(verify: dict | None) -> str:
    if not verify:
        return "not passed to the report (see the run's verify line, or run fedcommittee verify)"
    n, bad = verify.get("checks"), verify.get("discrepancies")
    verdict = "clean" if bad == 0 else "DISCREPANCIES"
    return f"{verdict}: {n} checks, {bad} discrepancies"


def _table(head: list[str], rows: list[list], cls: str = "") -> str:
    e = html.escape

    def cell(v) -> str:
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        return f'<td class="n">{v}</td>' if numeric else f"<td>{e(str(v))}</td>"

    if head:
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        hd = "".join(f"<th>{e(h)}</th>" for h in head)
        return f'<table class="{cls}"><tr>{hd}</tr>{body}</table>'
    # No column heads: a table of label and value, the label as the row's head.
    body = "".join(f"<tr><th>{e(str(row[0]))}</th>{''.join(cell(v) for v in row[1:])}</tr>" for row in rows)
    return f'<table class="{cls}">{body}</table>'


def _summary_rows(data: dict, s: dict) -> list[list[str]]:
    refused_total = sum(sum(v.values()) for v in s["refusals"].values())
    refused_words = "; ".join(
        f"{who}: {', '.join(f'{n} {kind}' for kind, n in kinds.items())}"
        for who, kinds in s["refusals"].items()
    )
    rs = data.get("round_seconds_source") or {}
    clocks = "agents' clocks, 0.1 s" if rs and all(v == "agents" for v in rs.values()) else (
        "ledger block time, whole seconds" if rs and all(v == "ledger" for v in rs.values())
        else "agents' clocks where logged, else ledger whole seconds")  # fmt: skip
    median = s.get("round_seconds_median")
    rows = [
        ["Model", f"{s['model']} ({s['mode']}, {s['status']})"],
        ["Ledger", s.get("ledger_backend") or "not recorded"],
        ["Rounds", s["rounds"] if s["mode"] == Mode.FEDERATED else "gossip (no rounds)"],
        [
            "Test accuracy",
            f"{_acc(s['test_accuracy_initial'])} initial → {_acc(s['test_accuracy_final'])} final",
        ],
        *(
            [
                [
                    "Backdoor success (final model)",
                    f"{s['backdoor_success_final']:.1%} of triggered test images",
                ]
            ]
            if s.get("backdoor_success_final") is not None
            else []
        ),
        *([["Final model (chosen by the committee)", s["final_model"]]] if s.get("final_model") else []),
        ["Updates", f"{s['updates']} on the ledger: {s['accepted']} accepted, {s['rejected']} rejected"],
        ["Refused by the contract", f"{refused_total}" + (f" ({refused_words})" if refused_words else "")],
        ["Verify (audit)", _verify_words(data.get("verify"))],
        ["Wall time", _duration(s.get("wall_seconds"))],
        ["Round time (median)", f"{median:.1f} s ({clocks})" if median is not None else "n/a"],
        *(
            [["Work per round (median, slowest agent)", _work_words(s["work_median_seconds"])]]
            if s.get("work_median_seconds")
            else []
        ),
        ["Expected races (logged at info)", f"{s['races_total']} (per round below)"],
    ]
    return [[label, str(value)] for label, value in rows]  # a value reads as text here, left-aligned


def _work_words(w: dict[str, float]) -> str:
    return (f"providers' training {w['training']:.2f} s; members' scoring {w['scoring']:.2f} s, and their"
            f" reference training {w['reference']:.2f} s while the providers train")  # fmt: skip


def _round_rows(data: dict) -> tuple[list[str], list[list]]:
    """The race kinds seen, and a row per timed round: wall, clock, breakdown, races per kind."""
    rs = data.get("round_seconds_source") or {}
    races = data.get("races") or {}
    race_kinds = sorted({k for v in races.values() for k in v})
    ov, path = data.get("overhead") or {}, critical_path(data)
    round_rows = [
        [r, f"{data['round_seconds'][r]:.1f}", rs.get(r, ""),
         *(f"{path[r][k]:.2f}" for k in PATH_PARTS), f"{ov[r]['overhead']:.1%}",
         *(races.get(r, {}).get(k, 0) for k in race_kinds)]
        for r in sorted(data.get("round_seconds") or {})
        if r in ov
    ]  # fmt: skip
    return race_kinds, round_rows


def _page(data: dict, summary: dict, figs: list[tuple[str, str]], model_id: str) -> str:
    e = html.escape
    rows = _summary_rows(data, summary)
    by_group = [
        [g, v["providers"], v["updates"], v["accepted"], v["rejected"], v["refused"], v["net_reward"]]
        for g, v in summary["per_behaviour"].items()
    ]
    people = [
        [name, v["role"], v["behaviour"], v["accepted"], v["rejected"], v["pending"], v["refused"],
         v["verdicts"], v["net_reward"]]
        for name, v in summary["per_participant"].items()
    ]  # fmt: skip
    standings = any(u.get("standing") is not None for u in data["updates"])
    updates = [
        [
            u["round"],
            u["provider"],
            u["status"],
            _fmt(u["median"]),
            u["samples"] if u["samples"] is not None else "",
            *([standing_words(u.get("standing"))] if standings else []),
        ]
        for u in data["updates"]
    ]
    race_kinds, round_rows = _round_rows(data)
    lat_rows = [
        [k, len(v), f"{statistics.median(v):.3f}", f"{max(v):.3f}"]
        for k, v in sorted(data["latency"].items())
    ]
    plots = "".join(f'<h2>{e(t)}</h2><img src="{e(n)}" alt="{e(t)}">' for n, t in figs)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>fedcommittee report {e(model_id)}</title><style>{_CSS}</style></head><body>
<h1>Run report: {e(model_id)}</h1>
<h2>Summary</h2>
{_table([], rows, "summary")}
<h2>Accepted and rejected, by behaviour</h2>
{_table(["behaviour", "providers", "updates", "accepted", "rejected", "refused by the contract",
         "net reward"], by_group, "behaviour")}
<h2>Per participant</h2>
{_table(["name", "role", "behaviour", "accepted", "rejected", "pending", "refused by the contract",
         "verdicts", "net reward"], people, "participants")}
{plots}
<h2>Round time (s)</h2>
<p class="muted">Wall: from the commit that opened the round to the one that confirmed its aggregate, as
the submitting agents saw them. The breakdown is the critical path (slowest provider, slowest member,
publisher): training is the slowest provider's, scoring the slowest member's (its reference training
runs beside the providers' and is in the summary). Races: expected protocol races the agents logged at
info in that round.</p>
{_table(["round", "wall", "clock", "training", "scoring", "ledger", "IPFS", "other", "ledger + IPFS share",
         *(RACE_WORDS.get(k, k) for k in race_kinds)], round_rows, "rounds")}
<h2>Updates</h2>
{_table(["round", "provider", "status", "median score", "samples",
         *(["the provider's standing when sent"] if standings else [])], updates, "updates")}
<h2>Ledger latency (s)</h2>
{_table(["transaction", "n", "median", "max"], lat_rows, "latency")}
</body></html>"""  # fmt: skip


def standing_words(s: dict | None) -> str:
    """A gossip update's recorded standing, as a person reads it: what its provider's earlier updates
    had come to when it was sent ("" for an update recorded without one)."""
    if s is None:
        return ""
    earlier, ago = int(s.get("earlier") or 0), int(s.get("lastRejectedAgo") or 0)
    if not earlier:
        return "first update"
    words = f"{int(s.get('accepted') or 0)} of {earlier} accepted"
    if ago == 1:
        return words + ", the previous one rejected"
    return words + (f", the last rejection {ago} updates before" if ago else "")


def _fmt(x) -> str:
    return "" if x is None else f"{x:.4f}"


def summarize(data: dict) -> dict:
    m = data["model"]
    ups = data["updates"]
    by_provider: dict[str, dict[str, int]] = defaultdict(lambda: {"accepted": 0, "rejected": 0, "pending": 0})
    for u in ups:
        by_provider[u["provider"]][u["status"]] += 1
    acc = data["test_accuracy"]
    refusals = data.get("refusals") or {}
    rewards = {e["who"]: e for e in data.get("leaderboard") or []}
    people = _participant_rows(data, by_provider, refusals, rewards)
    groups: dict[str, dict[str, int]] = {}
    for row in people.values():
        if row["role"] != Role.PROVIDER:
            continue
        g = groups.setdefault(
            behaviour_group(row["behaviour"] or None),
            {"providers": 0, "updates": 0, "accepted": 0, "rejected": 0, "refused": 0, "net_reward": 0},
        )
        g["providers"] += 1
        g["updates"] += row["accepted"] + row["rejected"] + row["pending"]
        for k in ("accepted", "rejected", "refused", "net_reward"):
            g[k] += row[k]
    order = {g: i for i, g in enumerate(BEHAVIOUR_GROUPS)}
    secs = data.get("round_seconds") or {}
    return {
        "model": m["id"],
        "status": m["status"],
        "mode": m["mode"],
        "rounds": int(m.get("currentRound") or 0),
        "updates": len(ups),
        "accepted": sum(1 for u in ups if u["status"] == UpdateStatus.ACCEPTED),
        "rejected": sum(1 for u in ups if u["status"] == UpdateStatus.REJECTED),
        "per_provider": dict(by_provider),
        "per_participant": people,
        "per_behaviour": dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], 99))),
        "refusals": refusals,
        "races_total": sum(sum(v.values()) for v in (data.get("races") or {}).values()),
        "test_accuracy_initial": acc.get(min(acc)) if acc else None,
        "test_accuracy_final": data.get("final_test_accuracy", acc.get(max(acc)) if acc else None),
        "backdoor_success_final": data.get("final_backdoor_success"),
        "final_model": gossip_final_words(m, ups),
        "test_accuracy_mix": data.get("mix_test_accuracy"),  # gossip: the proposed mix
        "wall_seconds": data.get("wall_seconds"),
        "ledger_backend": data.get("ledger_backend"),
        "verify": data.get("verify"),
        **overhead_summary(data.get("overhead") or {}),
        "work_median_seconds": work_summary(data.get("work") or {}),
        # From the agents' clocks (0.1 s) where they logged both ends of the round.
        "round_seconds_median": round(statistics.median(secs.values()), 1) if secs else None,
    }


def gossip_final_words(m: dict, ups: list[dict]) -> str | None:
    """What the committee finished a gossip model on (``finalProposal``), in words; None otherwise."""
    prop = m.get("finalProposal") or {}
    med = prop.get("medians")
    if m["mode"] != Mode.GOSSIP or not med:
        return None
    best_single = f"{max(med[1:]):.3f}" if len(med) > 1 else "none proposed"
    if m.get("finalMix"):
        return (f"the mean of {len(prop['mix'])} providers' best models, committee median quality "
                f"{med[0]:.3f} (best single accepted model: {best_single})")  # fmt: skip
    uid = m.get("finalUpdate") or ""
    provider = next((u["provider"] for u in ups if u["id"] == uid), "?")
    q = med[prop["candidates"].index(uid) + 1] if uid in prop["candidates"] else float("nan")
    return (f"{provider}'s accepted update {uid[:12]}…, committee median quality {q:.3f} "
            f"(the mean of the providers' best: {med[0]:.3f})")  # fmt: skip


def _participant_rows(data: dict, by_provider: dict, refusals: dict, rewards: dict) -> dict[str, dict]:
    """One row per participant: the config's (providers, then members, then the publisher), then any
    name only the ledger or the logs know."""
    known = data.get("participants") or {}
    names = [n for n, v in known.items() if v["role"] == Role.PROVIDER]
    names += [n for n, v in known.items() if v["role"] == Role.COMMITTEE]
    names += [n for n in known if known[n]["role"] == Role.PUBLISHER]
    names += sorted((set(by_provider) | set(refusals) | set(rewards)) - set(names))
    out = {}
    for n in names:
        role = known.get(n, {}).get("role") or (
            str(Role.PROVIDER) if n in by_provider or n in refusals else "?"
        )
        counts = by_provider.get(n, {"accepted": 0, "rejected": 0, "pending": 0})
        lb = rewards.get(n, {})
        out[n] = {
            "role": role,
            "behaviour": (known.get(n, {}).get("behaviour") or "").replace("_", " "),
            "accepted": counts["accepted"],
            "rejected": counts["rejected"],
            "pending": counts["pending"],
            "refused": sum((refusals.get(n) or {}).values()),
            "verdicts": lb.get("verdicts", 0),
            "net_reward": lb.get("net", 0),
        }
    return out


def work_summary(work: dict[int, dict[str, float]]) -> dict[str, float]:
    """Medians over the rounds of the slowest agent's training, reference training and scoring
    (``logs.round_work``): what the committee's scoring costs beside the providers' training."""
    if not work:
        return {}
    return {
        k: round(statistics.median(w[k] for w in work.values()), 3)
        for k in ("training", "reference", "scoring")
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
