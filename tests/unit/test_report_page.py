"""report.html as a page for people (issue 18, items 3 and 4): a summary table first, per-behaviour
counts, contract refusals from the agents' logs, round times from the agents' clocks, plots that tell
every provider apart with whole-round ticks; and one screenshot in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fedcommittee import report
from fedcommittee.experiment import load_experiment
from fedcommittee.ledger import FedcommitteeClient
from fedcommittee.roles.runtime import JsonLog

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5
T0 = 1_800_000_000.0
CLOSED = "update x{} is accepted, not pending: verdicts are closed"
REPLAY = "replay: sha256 {} was already submitted to model m as update " + "e" * 64


class FakeLedger(FedcommitteeClient):
    """The real client with the queries ``report.collect`` makes answered from a synthetic finished
    run of the default consortium: honest providers accepted, the attacker rejected, the free rider's
    first update rejected and its resubmissions refused by the contract (so never on the ledger)."""

    def __init__(self, exp) -> None:
        super().__init__(contract=None)
        self.exp = exp
        self.rounds = []
        self.updates: dict[int, list[dict]] = {}
        for r in range(1, ROUNDS + 1):
            opened = T0 + 10 * r
            self.rounds.append(
                {
                    "number": r,
                    "status": "done",
                    "openedAt": int(opened),
                    "confirmedAt": int(opened + 8.75),
                    "closedAt": int(opened + 7),
                    "openedTx": f"open{r}",
                    "confirmedTx": f"conf{r}",
                    "global": {"cid": f"g{r}", "sha256": "0" * 64},
                }
            )
            ups = []
            for p in exp.providers:
                if p.behaviour == "free_rider" and r > 1:
                    continue  # refused by the contract: see the logs
                ok = p.behaviour == "honest"
                score = (0.02 + 0.01 * r if ok else -0.05 - 0.01 * r) + 0.001 * len(ups)
                ups.append(
                    {
                        "id": f"{p.name}-{r}",
                        "round": r,
                        "provider": "id:" + p.name,
                        "status": "accepted" if ok else "rejected",
                        "medianScore": score,
                        "numSamples": 1000,
                        "submittedAt": int(opened + 3),
                    }
                )
            self.updates[r] = ups

    def get_model(self, model_id):
        return {
            "id": model_id,
            "mode": "federated",
            "status": "finished",
            "currentRound": ROUNDS,
            "architecture": {"name": "cnn"},
            "acceptance": {"threshold": 0.0},
        }

    def get_round(self, model_id, r):
        return self.rounds[r - 1]

    def list_round_updates(self, model_id, r, size, bookmark):
        return {"items": self.updates[r], "bookmark": ""}

    def leaderboard(self, model_id):
        out = []
        for p in self.exp.providers:
            ups = [u for r in self.updates.values() for u in r if u["provider"] == "id:" + p.name]
            acc = sum(u["status"] == "accepted" for u in ups)
            out.append(
                {
                    "identity": "id:" + p.name,
                    "net": 10 * acc - 5 * (len(ups) - acc),
                    "accepted": acc,
                    "rejected": len(ups) - acc,
                }
            )
        out += [
            {"identity": "id:" + m.name, "net": 2 * ROUNDS, "verdicts": 5 * ROUNDS}
            for m in self.exp.committee
        ]
        return out


def write_logs(folder: Path, exp) -> None:
    """The agents' JSON-lines logs of that run, written the way the agents write them."""
    logs = {
        n: JsonLog(folder / f"{n}.jsonl", n, role, echo=False)
        for n, role in [("publisher", "publisher")]
        + [(m.name, "committee") for m in exp.committee]
        + [(p.name, "provider") for p in exp.providers]
    }
    member = exp.committee[0].name
    free = next(p.name for p in exp.providers if p.behaviour == "free_rider")
    commits = []  # written with their own clock times below: the round's ends as the agents saw them
    for r in range(1, ROUNDS + 1):
        opened = T0 + 10 * r
        for log in logs.values():
            log.set_round(r)
        commits.append(
            {
                "ts": opened + 0.31,
                "agent": member,
                "role": "committee",
                "event": "submitted",
                "tx": "ConfirmAggregate",
                "txid": f"open{r}",
                "seconds": 0.2,
                "round": r - 1,
            }
        )
        for p in exp.providers:
            logs[p.name]("trained", round=r, seconds=2.0 + 0.1 * r)
            logs[p.name]("submitted", tx="SubmitUpdate", txid=f"{p.name}-{r}", seconds=0.12, round=r)
        logs[member]("scored", round=r, seconds=1.5)
        logs[member]("reference", round=r, seconds=1.25)
        logs[exp.committee[1].name]("scored", round=r, seconds=0.5)  # not the slowest member
        logs[member]("conflict", level="warning", tx="SubmitVerdicts", code="MVCC_READ_CONFLICT", attempt=0)
        logs[exp.committee[2].name](
            "verdict_refused", level="warning", update=f"x{r}", reason=CLOSED.format(r)
        )
        if r > 1:
            logs[free]("update_refused", level="warning", round=r, reason=REPLAY.format(f"{r:064d}"))
        commits.append(
            {
                "ts": opened + 9.04,
                "agent": member,
                "role": "committee",
                "event": "submitted",
                "tx": "ConfirmAggregate",
                "txid": f"conf{r}",
                "seconds": 0.25,
                "round": r,
            }
        )
        logs[member]("aggregate_checked", round=r, accuracy=0.5 + 0.05 * r)
    for log in logs.values():
        log.close()
    with open(folder / f"{member}.jsonl", "a") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in commits)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of a synthetic default-consortium run, built once for the module's tests."""
    tmp = tmp_path_factory.mktemp("report")
    exp = load_experiment(ROOT / "configs" / "default.yaml", model_id="m")
    home = tmp / "home"
    write_logs(home / "runs" / "m" / "logs", exp)
    names = {"id:" + p.name: p.name for p in exp.providers} | {"id:" + m.name: m.name for m in exp.committee}
    mp = pytest.MonkeyPatch()
    mp.setattr(report, "identity_names", lambda exp, profile: names)
    data = report.collect(FakeLedger(exp), "m", home=home, exp=exp)  # no store: no test evaluation
    mp.undo()
    data["test_accuracy"] = {r: 0.1 + 0.12 * r for r in range(1, ROUNDS + 2)}
    data["final_test_accuracy"] = data["test_accuracy"][ROUNDS + 1]
    data["wall_seconds"] = 236.4
    data["ledger_backend"] = "embedded ledger (devledger)"
    data["verify"] = {"checks": 145, "discrepancies": 0}
    data["final_backdoor_success"] = 0.031  # as a run with a backdoor attacker records it
    # Keep every figure open long enough to inspect it.
    import matplotlib.pyplot as plt

    figures = {}
    real_close = plt.close
    mp.setattr(plt, "close", lambda fig=None: figures.setdefault(len(figures), fig))
    page = report.render_report(data, tmp / "out")
    mp.undo()
    yield {"exp": exp, "data": data, "page": page, "figures": figures}
    for fig in figures.values():
        real_close(fig)


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.order.append((tag, dict(attrs)))


def dom(text: str) -> list[tuple[str, dict]]:
    d = _Dom()
    d.feed(text)
    return d.order


def _text(html_text: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_text)))


def test_the_page_opens_with_a_summary_table_not_a_json_dump(built):
    page = built["page"].read_text()
    assert "<pre>" not in page
    tags = dom(page)
    first_table = next(i for i, (t, _) in enumerate(tags) if t == "table")
    first_img = next(i for i, (t, _) in enumerate(tags) if t == "img")
    assert tags[first_table][1].get("class") == "summary" and first_table < first_img
    text = _text(page)
    for words in (
        "Ledger embedded ledger (devledger)",
        "0.220 initial → 0.820 final",
        "clean: 145 checks, 0 discrepancies",
        "Wall time 3 min 56 s",
        "Refused by the contract 4 (org3-freerider: 4 identical update resubmitted)",
        "Round time (median) 8.7 s (agents' clocks, 0.1 s)",
        "Expected races (logged at info) 14 (per round below)",
        "Backdoor success (final model) 3.1% of triggered test images",
    ):
        assert words in text, words
    assert "standing when sent" not in text  # a gossip column: federated updates carry no standing


def test_members_scoring_is_reported_beside_the_providers_training(built):
    # The fixture's providers train 2.0 + 0.1 r seconds in round r; the slowest member scores 1.5 s.
    training = statistics.median(2.0 + 0.1 * r for r in range(1, ROUNDS + 1))
    s = report.summarize(built["data"])
    assert s["work_median_seconds"] == {
        "training": pytest.approx(training),
        "reference": 1.25,
        "scoring": 1.5,
    }
    text = _text(built["page"].read_text())
    assert (
        f"Work per round (median, slowest agent) providers' training {training:.2f} s; members' scoring"
        " 1.50 s, and their reference training 1.25 s while the providers train"
    ) in text
    # The round table splits the critical path's compute into the two, which sum to it.
    assert "round wall clock training scoring ledger IPFS other" in text
    path = report.critical_path(built["data"])[3]
    assert path["training"] == pytest.approx(2.3) and path["scoring"] == 1.5
    assert path["training"] + path["scoring"] == pytest.approx(built["data"]["overhead"][3]["compute"])


def test_accepted_rejected_and_refused_per_behaviour_and_participant(built):
    s = report.summarize(built["data"])
    assert s["per_behaviour"] == {
        "honest": {
            "providers": 4,
            "updates": 20,
            "accepted": 20,
            "rejected": 0,
            "refused": 0,
            "net_reward": 200,
        },
        "attacker": {
            "providers": 1,
            "updates": 5,
            "accepted": 0,
            "rejected": 5,
            "refused": 0,
            "net_reward": -25,
        },
        "free rider": {
            "providers": 1,
            "updates": 1,
            "accepted": 0,
            "rejected": 1,
            "refused": 4,
            "net_reward": -5,
        },
    }
    people = s["per_participant"]
    assert list(people)[:6] == [p.name for p in built["exp"].providers]
    assert people["org2-attacker"]["behaviour"] == "sign flip"
    assert people["member-org1"]["role"] == "committee" and people["member-org1"]["verdicts"] == 25
    assert s["refusals"] == {"org3-freerider": {"identical update resubmitted": 4}}


def test_round_times_come_from_the_agents_clocks_to_a_tenth(built):
    data = built["data"]
    # opened at +0.31 s, confirmed at +9.04 s of the round's ten: 8.73 -> 8.7, not the ledger's 8
    assert data["round_seconds"] == {r: 8.7 for r in range(1, ROUNDS + 1)}
    assert set(data["round_seconds_source"].values()) == {"agents"}
    assert data["overhead"][1]["wall"] == 8.7
    # A round whose opening commit nobody logged falls back to the ledger's whole seconds.
    rounds = [
        {
            "number": 1,
            "status": "done",
            "openedAt": 10,
            "confirmedAt": 19,
            "openedTx": "a",
            "confirmedTx": "b",
        }
    ]
    recs = [{"event": "submitted", "txid": "b", "ts": 19.46}]
    assert report.round_times(rounds, recs) == ({1: 9.0}, {1: "ledger"})
    recs.append({"event": "submitted", "txid": "a", "ts": 10.02})
    assert report.round_times(rounds, recs) == ({1: 9.4}, {1: "agents"})


def test_every_provider_has_its_own_style_and_rounds_are_whole(built):
    styles = report.provider_styles(built["data"])
    assert len(styles) == 6 and len(set(styles.values())) == 6
    assert len({c for c, _ in styles.values()}) == 6  # a colour each
    assert styles["org2-attacker"][1] != styles["org3-freerider"][1]
    figures = list(built["figures"].values())
    scores = next(f for f in figures if f.axes[0].get_ylabel() == "committee median score")
    ax = scores.axes[0]
    assert ax.get_xlabel() == "round"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for p in built["exp"].providers:
        assert any(lab.startswith(p.name + " (") for lab in labels), p.name
    for fig in figures:
        axis = fig.axes[0]
        if axis.get_xlabel() in ("round", "global model of round (last = final)"):
            ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), (axis.get_xlabel(), ticks)


def _chromium() -> str | None:
    return next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )


def test_the_report_renders_in_headless_chromium(built, tmp_path):
    """The one browser check: the page loads in Chromium with its summary table and every plot, and the
    screenshot is not blank. scripts/setup.sh installs chromium, so a skip here means set-up was not run."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (scripts/setup.sh installs the Debian package chromium)")
    from PIL import Image

    page = built["page"]
    shot = tmp_path / "report.png"
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        "--user-data-dir=" + str(tmp_path / "profile"),
    ]
    out = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    tags = dom(out.stdout)
    assert any(t == "table" and a.get("class") == "summary" for t, a in tags), "summary table missing"
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert {"accuracy.png", "scores.png", "rewards.png", "overhead.png", "latency.png"} <= set(imgs)
    for src in imgs:
        with Image.open(page.parent / src) as im:
            assert im.width > 100 and im.height > 100, src
    run = subprocess.run(
        [*flags, "--window-size=1100,5200", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "blank screenshot"
    # Plots drew: matplotlib's first colour (C0, #1f77b4), which nothing else on the page uses.
    assert sum(n for n, c in colours if abs(c[0] - 0x1F) + abs(c[1] - 0x77) + abs(c[2] - 0xB4) < 30) > 500
    keep = ROOT / "reports" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "report.png")


def test_the_summary_says_what_the_committee_finished_a_gossip_model_on():
    prop = {"mix": ["a", "b"], "candidates": ["b", "a"], "medians": [0.45, 0.52, 0.40]}
    ups = [{"id": "a", "provider": "honest1"}, {"id": "b", "provider": "honest2"}]
    model = {"mode": "gossip", "finalProposal": prop, "finalUpdate": "b"}
    assert report.gossip_final_words(model, ups) == (
        "honest2's accepted update b…, committee median quality 0.520 "
        "(the mean of the providers' best: 0.450)"
    )
    prop["medians"] = [0.55, 0.52, 0.40]
    model = {"mode": "gossip", "finalProposal": prop, "finalMix": ["a", "b"]}
    assert report.gossip_final_words(model, ups) == (
        "the mean of 2 providers' best models, committee median quality 0.550 "
        "(best single accepted model: 0.520)"
    )
    assert report.gossip_final_words({"mode": "federated"}, ups) is None


def test_a_gossip_updates_standing_reads_as_words():
    assert report.standing_words(None) == ""
    assert report.standing_words({"earlier": 0, "accepted": 0, "lastRejectedAgo": 0}) == "first update"
    caught = {"previous": "p", "earlier": 3, "accepted": 1, "lastRejectedAgo": 1}
    assert report.standing_words(caught) == "1 of 3 accepted, the previous one rejected"
    caught["lastRejectedAgo"] = 2
    assert report.standing_words(caught) == "1 of 3 accepted, the last rejection 2 updates before"
    assert report.standing_words({"earlier": 2, "accepted": 2, "lastRejectedAgo": 0}) == "2 of 2 accepted"
