"""`fedcommittee dashboard`: the log reader, the state model, the frame and the command, on fake
JSON-lines logs written the way ``roles.runtime.JsonLog`` writes them."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from fedcommittee.cli import main
from fedcommittee.dashboard import DashboardState, LedgerView, Section, fit, latest_run, render, run_dashboard
from fedcommittee.endpoints import NetworkNotRunning
from fedcommittee.logs import LogTail, latency_by_tx, latency_stats, percentile, read_logs

T = 1_700_000_000.0
MODEL = "demo-1"


def rec(ts: float, agent: str, role: str, event: str, **fields) -> dict:
    return {"ts": T + ts, "agent": agent, "role": role, "event": event, **fields}


def P(ts, event, **f):  # publisher
    return rec(ts, "publisher", "publisher", event, **f)


def A(ts, event, **f):  # honest provider
    return rec(ts, "org1-a", "provider", event, **f)


def B(ts, event, **f):  # free rider: refused in round 2
    return rec(ts, "org2-b", "provider", event, **f)


def M1(ts, event, **f):
    return rec(ts, "member-org1", "committee", event, **f)


def M2(ts, event, **f):
    return rec(ts, "member-org2", "committee", event, **f)


def fixture_logs() -> dict[str, list[dict]]:
    """Round 1 complete (two updates judged by two members, aggregated, checked, one mismatch);
    round 2 open: org1-a submitted, org2-b's update refused, no verdict yet."""
    return {
        "publisher": [
            P(0, "start", user="org1-user1", model=MODEL, pid=1),
            P(1, "published", model=MODEL, initial="bafyinit"),
            P(3, "submitted", tx="PublishModel", txid="tx-pub", block=5, seconds=2.0),
            P(30, "close_round", round=1, why="everyone", updates=2),
            P(31, "submitted", tx="CloseRound", txid="tx-close1", block=12, seconds=1.0),
            P(32, "aggregate", round=1, accepted=1, sha256="aa" * 32),
            P(34, "submitted", tx="RecordAggregate", txid="tx-agg1", block=13, seconds=2.2),
        ],
        "org1-a": [
            A(0, "start", user="org1-user2", model=MODEL, pid=2),
            A(0.5, "data", samples=500, behaviour="honest", dp=False),
            A(10, "trained", round=1, samples=500, sha256="a1", train_loss=0.91234, steps=20.0),
            A(12, "submitted", tx="SubmitUpdate", txid="tx-a1", block=8, seconds=1.0),
            A(40, "trained", round=2, samples=500, sha256="a2", train_loss=0.5, steps=20.0),
            A(42, "submitted", tx="SubmitUpdate", txid="tx-a2", block=15, seconds=3.0),
        ],
        "org2-b": [
            B(0, "start", user="org2-user2", model=MODEL, pid=3),
            B(11, "trained", round=1, samples=480, sha256="b1", train_loss=2.3),
            B(13, "submitted", tx="SubmitUpdate", txid="tx-b1", block=9, seconds=1.5),
            B(41, "trained", round=2, samples=480, sha256="b1", train_loss=2.3),
            B(43, "update_refused", level="warning", round=2, reason="duplicate object"),
        ],
        "member-org1": [
            M1(0, "start", user="org1-user3", model=MODEL, pid=4),
            M1(5, "submitted", tx="ApproveModel", txid="tx-ap1", block=6, seconds=2.5),
            M1(20, "scored", round=1, candidates=2, seconds=0.4),
            M1(21, "verdict", update="tx-a1", provider="Org1MSP/x", score=0.05, accept=True, reason=""),
            M1(22, "submitted", tx="SubmitVerdict", txid="tx-v1", block=10, seconds=2.0),
            M1(23, "conflict", level="warning", tx="SubmitVerdict", code="MVCC_READ_CONFLICT", attempt=0),
            M1(24, "verdict", update="tx-b1", provider="Org2MSP/y", score=-0.3, accept=False, reason=""),
            M1(25, "submitted", tx="SubmitVerdict", txid="tx-v2", block=11, seconds=4.0),
            M1(35, "aggregate_checked", round=1, sha256="aa" * 32, accuracy=0.71, loss=0.8),
        ],
        "member-org2": [
            M2(0, "start", user="org2-user3", model=MODEL, pid=5),
            M2(20, "scored", round=1, candidates=2, seconds=0.5),
            M2(21, "verdict", update="tx-a1", provider="Org1MSP/x", score=0.04, accept=True, reason=""),
            M2(22, "submitted", tx="SubmitVerdict", txid="tx-v3", block=10, seconds=2.0),
            M2(23, "verdict", update="tx-b1", provider="Org2MSP/y", score=-0.25, accept=False, reason=""),
            M2(24, "submitted", tx="SubmitVerdict", txid="tx-v4", block=11, seconds=3.0),
            M2(
                36,
                "aggregate_mismatch",
                level="error",
                round=1,
                recorded_by="Org9MSP/z",
                theirs="bb" * 32,
                ours="aa" * 32,
            ),  # fmt: skip
        ],
    }


def write_logs(folder: Path, logs: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for agent, recs in logs.items():
        with open(folder / f"{agent}.jsonl", "a") as fh:
            for r in recs:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return folder


@pytest.fixture
def run_home(tmp_path: Path) -> Path:
    write_logs(tmp_path / "runs" / MODEL / "logs", fixture_logs())
    return tmp_path


def state_of(home: Path, late_seconds: float = 60.0) -> DashboardState:
    state = DashboardState(MODEL, late_seconds=late_seconds)
    state.feed(read_logs(home / "runs" / MODEL / "logs"))
    return state


# ---------------------------------------------------------------------------------------- state


def test_agent_counts(run_home):
    state = state_of(run_home)
    a = state.agents
    assert set(a) == {"publisher", "org1-a", "org2-b", "member-org1", "member-org2"}
    assert state.records == sum(len(v) for v in fixture_logs().values()) == 34
    assert (a["org1-a"].role, a["org1-a"].counts["trained"], a["org1-a"].counts["submitted"]) == (
        "provider", 2, 2
    )  # fmt: skip
    assert a["org2-b"].counts["trained"] == 2 and a["org2-b"].counts["submitted"] == 1
    assert a["org2-b"].counts["warnings"] == 1 and a["org2-b"].last_event == "update_refused"
    m1 = a["member-org1"]
    assert (m1.counts["verdicts"], m1.counts["submitted"], m1.counts["conflicts"], m1.counts["warnings"]) == (
        2, 3, 1, 1
    )  # fmt: skip
    assert a["member-org2"].counts["errors"] == 1
    assert a["publisher"].last_event == "submitted" and a["publisher"].last_ts == T + 34
    # Ordered publisher, committee, providers.
    assert [x.name for x in state.agent_list()] == [
        "publisher", "member-org1", "member-org2", "org1-a", "org2-b"
    ]  # fmt: skip


def test_rounds_join_updates_and_verdicts(run_home):
    state = state_of(run_home)
    assert state.round_numbers() == [1, 2]
    assert state.members() == ["member-org1", "member-org2"]
    r1 = state.round(1)
    ups = {u.provider: u for u in r1.updates}
    assert ups["org1-a"].uid == "tx-a1" and ups["org1-a"].samples == 500
    assert {m: (v.score, v.accept) for m, v in ups["org1-a"].verdicts.items()} == {
        "member-org1": (0.05, True), "member-org2": (0.04, True)
    }  # fmt: skip
    assert ups["org1-a"].votes() == (2, 2) and ups["org2-b"].votes() == (0, 2)
    assert r1.status == "checked" and r1.checked == {"member-org1": 0.71}
    assert r1.closed_ts == T + 30 and r1.close_why == "everyone" and r1.mismatches == 1
    r2 = state.round(2)
    ups = {u.provider: u for u in r2.updates}
    assert ups["org1-a"].state == "submitted" and ups["org1-a"].uid == "tx-a2" and not ups["org1-a"].verdicts
    assert ups["org2-b"].state == "refused" and ups["org2-b"].reason == "duplicate object"
    assert r2.status == "open" and r2.opened_ts == T + 40


def test_verdict_read_before_the_providers_log_still_joins(run_home):
    # Records arrive file by file: a member's verdicts may be fed before the provider's submit.
    logs = fixture_logs()
    state = DashboardState(MODEL)
    state.feed(logs["member-org1"])
    assert [u.state for u in state.round(1).updates] == ["unmatched", "unmatched"]
    state.feed(logs["org1-a"])
    ups = {u.provider: u for u in state.round(1).updates}
    assert ups["org1-a"].verdicts["member-org1"].score == 0.05
    assert sum(1 for u in state.round(1).updates if u.state == "unmatched") == 1  # tx-b1: no provider log


def test_late_detection_with_an_injected_clock(run_home):
    state = state_of(run_home, late_seconds=60)
    # Last lines: publisher 34, org1-a 42, org2-b 43, member-org1 35, member-org2 36.
    assert state.late_agents(T + 90) == []
    assert state.late_agents(T + 94.5) == ["publisher"]
    assert state.late_agents(T + 102.5) == ["publisher", "member-org1", "member-org2", "org1-a"]
    assert state.agent_state(state.agents["org2-b"], T + 102.5) == "ok"
    # An agent that logged "stop" is stopped, not late.
    state.feed([A(50, "stop")])
    assert "org1-a" not in state.late_agents(T + 200)
    assert state.agent_state(state.agents["org1-a"], T + 200) == "stopped"
    # Once the model is finished nobody is late.
    state.feed([P(60, "model_finished", round=2), M1(61, "model_finished", discrepancies=0)])
    assert state.finished and state.final_status == "finished" and state.final_ts == T + 60
    assert state.late_agents(T + 10_000) == []
    assert state.agent_state(state.agents["member-org1"], T + 10_000) == "done"
    # The ledger's word counts too.
    other = state_of(run_home)
    other.ledger_status = "finished"
    assert other.late_agents(T + 10_000) == []


def test_latency_median_and_p95_by_hand():
    assert percentile(range(1, 21), 0.5) == pytest.approx(10.5)
    # p95 of 1..20: rank 0.95 * 19 = 18.05 -> 19 + 0.05 * (20 - 19)
    assert percentile(range(1, 21), 0.95) == pytest.approx(19.05)
    assert percentile([4.0], 0.95) == 4.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_latency_per_tx_from_the_logs(run_home):
    lat = state_of(run_home).latency()
    assert set(lat) == {"PublishModel", "CloseRound", "RecordAggregate", "SubmitUpdate", "ApproveModel",
                        "SubmitVerdict"}  # fmt: skip
    # SubmitUpdate: 1.0, 1.5, 3.0 -> median 1.5; p95 rank 1.9 -> 1.5 + 0.9 * 1.5 = 2.85
    assert lat["SubmitUpdate"] == pytest.approx({"n": 3, "median": 1.5, "p95": 2.85, "max": 3.0})
    # SubmitVerdict: 2.0, 2.0, 3.0, 4.0 -> median 2.5; p95 rank 2.85 -> 3.0 + 0.85 * 1.0 = 3.85
    assert lat["SubmitVerdict"] == pytest.approx({"n": 4, "median": 2.5, "p95": 3.85, "max": 4.0})
    # report.py reads the same helper.
    assert latency_stats(latency_by_tx(read_logs(run_home / "runs" / MODEL / "logs"))) == lat


def test_notable_events(run_home):
    state = state_of(run_home)
    texts = [n.text for n in state.notes(10)]
    assert len(texts) == 7
    assert texts[0] == "model demo-1 published"
    assert "round 1 open (first update trained)" in texts
    assert "round 1 closing (everyone, 2 updates)" in texts
    assert "round 1 aggregate recorded (1 accepted)" in texts
    assert any(t.startswith("AGGREGATE MISMATCH round 1") for t in texts)
    assert texts[-2:] == ["round 2 open (first update trained)", "update refused (round 2): duplicate object"]
    assert not any("conflict" in t for t in texts)  # counted, not listed
    assert [n.text for n in state.notes(2)] == texts[-2:]
    state.feed([P(70, "model_finished", round=2), M1(65, "model_finished", discrepancies=0)])
    finals = [n for n in state.notes(10) if n.text == "model finished"]
    assert len(finals) == 1 and finals[0].ts == T + 65


def test_bad_records_are_counted():
    state = DashboardState(MODEL)
    state.feed([{"agent": "x", "event": "start"}, {"ts": "soon", "event": "x"}, {"ts": 1.0}])
    assert state.bad_records == 3 and state.records == 0 and state.agents == {}


# ---------------------------------------------------------------------------------------- reader


def test_incremental_reading(tmp_path):
    logs = tmp_path / "logs"
    tail = LogTail(logs)
    assert tail.poll() == []  # the folder does not exist yet
    write_logs(logs, {"org1-a": [A(1, "start"), A(2, "data")]})
    assert [r["event"] for r in tail.poll()] == ["start", "data"]
    assert tail.poll() == []  # nothing new: nothing read again
    path = logs / "org1-a.jsonl"
    half = json.dumps(A(4, "submitted", tx="SubmitUpdate", seconds=1.0))
    with open(path, "a") as fh:
        fh.write(json.dumps(A(3, "trained", round=1)) + "\n" + half[:20])
    assert [r["event"] for r in tail.poll()] == ["trained"]  # the partial line is held back
    assert tail.poll() == []
    with open(path, "a") as fh:
        fh.write(half[20:] + "\n" + "not json at all\n" + "[1, 2]\n")
    write_logs(logs, {"publisher": [P(5, "start")]})  # a new file
    got = tail.poll()
    assert [(r["agent"], r["event"]) for r in got] == [("org1-a", "submitted"), ("publisher", "start")]
    assert got[0]["seconds"] == 1.0
    assert tail.bad_lines == 2 and tail.records_read == 5
    assert tail.files == [path, logs / "publisher.jsonl"]
    # A file replaced by a shorter one is read again from its start.
    path.write_text(json.dumps(A(9, "start")) + "\n")
    assert [r["ts"] for r in tail.poll()] == [T + 9]


def test_read_logs_takes_a_final_line_without_newline(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(A(1, "start")) + "\n" + json.dumps(A(2, "stop")))
    assert [r["event"] for r in read_logs(tmp_path)] == ["start", "stop"]
    assert [r["event"] for r in LogTail(tmp_path).poll()] == ["start"]


def test_a_state_fed_incrementally_matches_one_fed_at_once(run_home, tmp_path):
    logs = fixture_logs()
    folder = tmp_path / "live"
    tail, state = LogTail(folder), DashboardState(MODEL)
    for i in range(max(len(v) for v in logs.values())):
        write_logs(folder, {k: v[i : i + 1] for k, v in logs.items()})
        state.feed(tail.poll())
    whole = state_of(run_home)
    assert state.records == whole.records
    assert {k: dict(v.counts) for k, v in state.agents.items()} == {
        k: dict(v.counts) for k, v in whole.agents.items()
    }
    assert state.latency() == whole.latency()


# ---------------------------------------------------------------------------------------- frame


def test_frame_contents(run_home):
    state = state_of(run_home)
    frame = render(state, now=T + 100, width=120, ledger="not queried (--no-ledger)")
    lines = frame.splitlines()
    assert "model demo-1" in lines[0]
    assert "ledger: not queried (--no-ledger)" in lines
    assert "LATE: no log line for more than 60 s from publisher, member-org1, member-org2" in frame
    row = next(line for line in lines if line.startswith("member-org1 "))
    assert row.split()[1:] == ["committee", "LATE", "65s", "aggregate_checked", "0", "3", "2", "1", "1", "0"]
    assert re.search(r"^round 2 samples\s+loss update\s+member-org1 member-org2  accept$", frame, re.M)
    ok = next(line for line in lines if line.startswith("org1-a ") and "tx-a2" in line)
    assert ok.split()[1:] == ["500", "0.5000", "tx-a2", ".", ".", "-"]
    assert "round   1 checked    1 MISMATCH,  2 updates, 2 judged, 1 voted in, shard acc 0.710" in lines
    assert "round   2 open        2 updates (1 refused), 0 judged, 0 voted in" in lines
    refused = next(line for line in lines if line.startswith("org2-b ") and "2.3000" in line)
    assert refused.split()[1:] == ["480", "2.3000", "refused", ".", ".", "-"]
    assert re.search(r"SubmitUpdate\s+3\s+1\.500\s+2\.850\s+3\.000", frame)
    assert "member-org2: AGGREGATE MISMATCH round 1: recorded bbbbbbbb != mine aaaaaaaa" in frame


def test_frame_fits_the_terminal(run_home):
    state = state_of(run_home)
    for width, height in [(80, 24), (60, 15), (40, 10), (200, 100)]:
        lines = render(state, now=T + 50, width=width, height=height).splitlines()
        assert len(lines) <= height and max(len(x) for x in lines) <= width
    small = render(state, now=T + 50, width=80, height=24).splitlines()
    assert small[-1] == "(no room for: rounds, latency; a taller terminal shows them)"
    assert small[-2].endswith("org2-b: update refused (round 2): duplicate object")
    smaller = render(state, now=T + 50, width=80, height=21).splitlines()
    assert len(smaller) == 21 and "  ... 3 more" in smaller  # events cut to the newest, and says so
    assert smaller[-2].endswith("org2-b: update refused (round 2): duplicate object")
    assert [x.split()[0] for x in small if x.startswith(("member-", "org", "publisher "))][:5] == [
        "publisher", "member-org1", "member-org2", "org1-a", "org2-b"
    ]  # every agent is kept  # fmt: skip


def test_fit_cuts_lowest_priority_first():
    secs = [
        Section("top", ["top"], [], 9, droppable=False),
        Section("a", ["", "a"], [f"a{i}" for i in range(5)], 5, droppable=False),
        Section("b", ["", "b"], [f"b{i}" for i in range(5)], 1, "tail"),
    ]
    assert len(fit(secs, None)) == 1 + 7 + 7
    out = fit(secs, 13)  # "b" (lowest priority) keeps its last 2 lines and says what it cut
    assert len(out) == 13 and out[-3:] == ["  ... 3 more", "b3", "b4"] and "a4" in out
    out = fit(secs, 8)  # "b" is left out (and named), then "a" keeps its first lines
    assert out == ["top", "", "a", "a0", "a1", "a2", "  ... 2 more",
                   "(no room for: b; a taller terminal shows them)"]  # fmt: skip
    # Whatever still does not fit is cut at the bottom; the last line still names what is left out.
    assert fit(secs, 3) == ["top", "", "(no room for: b; a taller terminal shows them)"]


def test_ansi_only_on_a_tty_and_ctrl_c_exits_0(run_home):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    logs = run_home / "runs" / MODEL / "logs"
    plain = io.StringIO()
    assert run_dashboard(logs, MODEL, once=True, out=plain, clock=lambda: T + 50) == 0
    assert "\x1b" not in plain.getvalue() and "org1-a" in plain.getvalue()

    def interrupt(_):
        raise KeyboardInterrupt

    tty = Tty()
    assert run_dashboard(logs, MODEL, interval=1, out=tty, clock=lambda: T + 50, sleep=interrupt) == 0
    out = tty.getvalue()
    assert "\x1b[H\x1b[2J" in out and out.endswith("\x1b[?25h\n") and "org1-a" in out


def test_ledger_view_from_a_client_and_when_unreachable():
    from fedcommittee.ledger import FedcommitteeClient

    class FakeClient(FedcommitteeClient):  # the real client's iter_* over the page query below
        def __init__(self) -> None:
            super().__init__(contract=None)

        def get_model(self, mid):
            return {"id": mid, "status": "active", "mode": "federated", "currentRound": 2, "quorum": 2,
                    "roundRules": {"maxRounds": 5}}  # fmt: skip

        def list_round_updates(self, mid, r, limit, bookmark):
            return {"items": [{"status": "accepted"}, {"status": "pending"}], "bookmark": ""}

        def get_round(self, mid, r):
            return {"status": "open"}

    view = LedgerView(lambda: (None, FakeClient()), MODEL)
    view.refresh(wait=True)
    assert view.status == "active"
    assert view.describe() == "model active, round 2/5 open: 2 updates, 1 accepted, 0 rejected, 1 pending"

    tries = []

    def down():
        tries.append(1)
        raise NetworkNotRunning("endpoints.json not found")

    clock = [0.0]
    view = LedgerView(down, MODEL, retry_seconds=15, clock=lambda: clock[0])
    view.poll()
    view.poll()  # within retry_seconds: not tried again
    assert len(tries) == 1 and view.status is None
    assert (
        view.describe()
        == "not reachable, showing the logs only (NetworkNotRunning: endpoints.json not found)"
    )
    clock[0] = 16
    view.poll()
    assert len(tries) == 2


# ---------------------------------------------------------------------------------------- command


def test_cli_once_prints_a_frame(run_home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    rc = main(["--home", str(run_home), "dashboard", "--once", "--no-ledger", "--model-id", MODEL])
    out = capsys.readouterr().out
    assert rc == 0
    assert "\x1b" not in out
    for name in ("publisher", "member-org1", "member-org2", "org1-a", "org2-b"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert re.search(r"^org1-a\s+provider\s+LATE\s+\S+\s+submitted\s+2\s+2\s+0\s+0\s+0\s+0$", out, re.M)
    assert "5 agents, 34 records" in out
    assert "ledger: not queried (--no-ledger)" in out
    assert re.search(r"SubmitVerdict\s+4\s+2\.500\s+3\.850\s+4\.000", out)


def test_cli_defaults_to_the_newest_run(run_home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    old = write_logs(
        run_home / "runs" / "old-run" / "logs", {"org9-z": [rec(0, "org9-z", "provider", "start")]}
    )
    past = T - 86_400
    for p in [old, old.parent, *old.glob("*")]:
        os.utime(p, (past, past))
    assert latest_run(run_home) == MODEL
    assert main(["--home", str(run_home), "dashboard", "--once", "--no-ledger"]) == 0
    out = capsys.readouterr().out
    assert "model demo-1" in out and "org9-z" not in out
    assert main(["--home", str(run_home), "dashboard", "--once", "--no-ledger", "--model-id", "old-run"]) == 0
    assert "org9-z" in capsys.readouterr().out


def test_cli_missing_run_folder_exits_2(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "dashboard", "--once", "--no-ledger"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "runs") in err and "fedcommittee run CONFIG" in err
    (tmp_path / "runs").mkdir()
    assert main(["--home", str(tmp_path), "dashboard", "--once", "--model-id", "nope"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "runs" / "nope") in err and "fedcommittee run CONFIG" in err


def test_cli_without_a_network_still_shows_the_logs(run_home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    # No endpoints.json in this home: the ledger is unreachable, the frame comes from the logs.
    assert main(["--home", str(run_home), "dashboard", "--once", "--model-id", MODEL]) == 0
    out = capsys.readouterr().out
    ledger_lines = [x for x in out.splitlines() if x.startswith("ledger:")]
    assert len(ledger_lines) == 1
    assert ledger_lines[0].startswith("ledger: not reachable, showing the logs only (NetworkNotRunning: ")
    assert "endpoints.json not found" in ledger_lines[0] and re.search(r"^org2-b\s", out, re.M)


def test_cli_rejects_a_bad_interval(run_home, capsys):
    assert main(["--home", str(run_home), "dashboard", "--once", "--interval", "0"]) == 2
    assert "--interval" in capsys.readouterr().err


def test_gossip_updates_and_unmatched_verdicts():
    state = DashboardState(MODEL)
    state.feed(
        [
            A(1, "trained", step=0, parents=[], samples=500, train_loss=1.0),
            A(2, "submitted", tx="SubmitUpdate", txid="g-a0", seconds=1.0),
            A(9, "trained", step=1, parents=["g-a0"], samples=500, train_loss=0.7),
            A(10, "update_refused", level="warning", round=-2, reason="duplicate object"),
            M1(5, "verdict", update="g-a0", provider="Org1MSP/x", score=0.1, accept=True),
            M1(6, "verdict", update="g-zz", provider="Org2MSP/eDUwOTo6", score=-1.0, accept=False),
        ]
    )
    assert state.round_numbers() == [0]
    rv = state.round(0)
    rows = {(u.provider, u.step): u for u in rv.updates}
    assert rows[("org1-a", 0)].uid == "g-a0" and rows[("org1-a", 0)].votes() == (1, 1)
    assert rows[("org1-a", 1)].state == "refused"
    unmatched = rows[("?Org2MSP", None)]
    assert unmatched.state == "unmatched" and unmatched.votes() == (0, 1)
    frame = render(state, now=T + 20, width=100)
    assert re.search(r"^org1-a#0\s+500\s+1\.0000 g-a0\s+\+0\.1000 ok  1/1$", frame, re.M)
    assert re.search(r"^\?Org2MSP\s+g-zz\s+-1\.0000 NO  0/1$", frame, re.M)
    assert "gossip    open        3 updates (1 refused), 2 judged, 1 voted in" in frame


def test_report_collect_reads_the_logs_through_the_shared_reader(run_home):
    from fedcommittee.report import collect

    class FakeClient:
        def get_model(self, mid):
            return {"id": mid, "mode": "federated", "status": "active", "currentRound": 0}

        def leaderboard(self, mid):
            return []

    # A last line without its newline is still read by a one-off report.
    with open(run_home / "runs" / MODEL / "logs" / "member-org2.jsonl", "a") as fh:
        fh.write(json.dumps(M2(37, "aggregate_checked", round=1, accuracy=0.75)))
    data = collect(FakeClient(), MODEL, home=run_home)
    assert sorted(data["latency"]["SubmitUpdate"]) == [1.0, 1.5, 3.0]
    assert sorted(data["latency"]["SubmitVerdict"]) == [2.0, 2.0, 3.0, 4.0]
    assert data["shard_accuracy"] == {1: pytest.approx(0.73)}
