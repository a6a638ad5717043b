"""`fedcommittee dashboard`: a live terminal view of one run, from the agents' JSON-lines logs
(``$FC_HOME/runs/<model>/logs/*.jsonl``) and, where Fabric is reachable, the ledger.

Three parts, each usable alone:

* :class:`~fedcommittee.logs.LogTail` follows the log folder (new lines, new files; never from the
  start again; a half-written line waits for its newline, a bad line is counted and skipped);
* :class:`DashboardState` is a pure model of what the logs say: per agent (role, last event, counts,
  quiet for too long), per round (each provider's update and the committee's verdicts on it),
  submit-to-commit latency per transaction type, the last notable events. Time comes in as an
  argument, so the model is deterministic;
* :func:`render` draws one plain-text frame of a given size. :func:`run_dashboard` redraws it every
  ``interval`` seconds (ANSI clear/redraw only on a terminal).

The logs are the agents' view, not the truth: accepted/rejected is the ledger's to say, so the round
table shows the committee's votes as logged, and the ledger line (``progress.progress_line``) the outcome.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from fedcommittee.ledger.records import ModelStatus, Role, Tx
from fedcommittee.logs import LogTail, latency_by_tx, latency_stats

__all__ = [
    "AgentView",
    "DashboardState",
    "LedgerView",
    "Note",
    "RoundView",
    "Section",
    "UpdateView",
    "Verdict",
    "fit",
    "latest_run",
    "render",
    "round_summary",
    "run_dashboard",
]

# Counted per agent, in this column order.
COUNTS = ("trained", "submitted", "verdicts", "conflicts", "warnings", "errors")
_COUNT_EVENTS = {
    "trained": "trained",
    "submitted": "submitted",
    "verdict": "verdicts",
    "conflict": "conflicts",
}
# Warnings too routine to list among the notable events (they are counted), and events whose
# handler writes its own note.
_QUIET_WARNINGS = {"conflict"}
_NOTED_BY_HANDLER = {"update_refused", "aggregate_mismatch"}
FINAL_EVENTS = {"model_finished": ModelStatus.FINISHED, "model_rejected": ModelStatus.REJECTED}


@dataclass
class AgentView:
    name: str
    role: str = "?"
    first_ts: float = 0.0
    last_ts: float = 0.0
    last_event: str = ""
    starts: int = 0
    stopped: bool = False
    counts: Counter = field(default_factory=Counter)


@dataclass
class Verdict:
    member: str
    score: float | None
    accept: bool
    reason: str = ""


@dataclass
class UpdateView:
    """One provider update as the logs show it (federated: one per provider and round)."""

    round: int  # 0 in gossip mode
    provider: str
    step: int | None = None  # gossip: the provider's n-th update
    ts: float = 0.0
    samples: int | None = None
    loss: float | None = None
    uid: str | None = None  # the SubmitUpdate tx id = the update id on the ledger
    state: str = "trained"  # trained -> submitted | on ledger | refused
    reason: str = ""
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    def votes(self) -> tuple[int, int]:
        return sum(1 for v in self.verdicts.values() if v.accept), len(self.verdicts)


@dataclass(frozen=True)
class Note:
    ts: float
    agent: str
    text: str
    level: str = "info"


@dataclass
class RoundView:
    number: int
    updates: list[UpdateView]
    opened_ts: float | None = None
    closed_ts: float | None = None
    close_why: str = ""
    aggregate_ts: float | None = None
    checked: dict[str, float] = field(default_factory=dict)  # member -> shard accuracy of the aggregate
    mismatches: int = 0

    @property
    def status(self) -> str:
        if self.checked:
            return "checked"
        if self.aggregate_ts is not None:
            return "aggregated"
        if self.closed_ts is not None:
            return "closed"
        return "open"


def _num(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _int(x: Any) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


class DashboardState:
    """What the logs of one run say. Feed it records in any order across agents (each agent's own
    records in file order); every view is computed from what was fed, at the time it is asked for."""

    def __init__(self, model_id: str, *, late_seconds: float = 60.0, max_notes: int = 500) -> None:
        self.model_id = model_id
        self.late_seconds = late_seconds
        self.max_notes = max_notes
        self.agents: dict[str, AgentView] = {}
        self.records = 0
        self.bad_records = 0  # JSON objects without a usable ts/event
        self.bad_lines = 0  # set from the reader: lines that were not JSON objects
        self.final_status: str | None = None  # finished / rejected, from the logs
        self.final_ts: float | None = None
        self.ledger_status: str | None = None  # the model's status on the ledger, when known
        self._updates: dict[tuple[int, str, int | None], UpdateView] = {}
        self._uid_index: dict[str, tuple[int, str, int | None]] = {}
        self._awaiting_submit: dict[str, tuple[int, str, int | None]] = {}
        self._verdicts: dict[str, dict[str, Verdict]] = {}
        self._verdict_hint: dict[str, tuple[int | None, str]] = {}  # uid -> (member's round, provider)
        self._member_round: dict[str, int] = {}
        self._closed: dict[int, tuple[float, str]] = {}
        self._aggregated: dict[int, float] = {}
        self._checked: dict[int, dict[str, float]] = {}
        self._mismatch: Counter = Counter()
        self._seen_rounds: set[int] = set()
        self._latency: dict[str, list[float]] = {}
        self._notes: list[Note] = []

    # ------------------------------------------------------------------ ingest
    def feed(self, records: Iterable[dict]) -> None:
        for rec in records:
            self._feed_one(rec)
        if len(self._notes) > 2 * self.max_notes:
            self._notes.sort(key=lambda n: n.ts)
            del self._notes[: len(self._notes) - self.max_notes]

    def _note(self, ts: float, agent: str, text: str, level: str = "info") -> None:
        self._notes.append(Note(ts, agent, text, level))

    def _feed_one(self, rec: dict) -> None:
        ts, event = _num(rec.get("ts")), rec.get("event")
        if ts is None or not isinstance(event, str):
            self.bad_records += 1
            return
        self.records += 1
        name = str(rec.get("agent") or "?")
        a = self.agents.get(name)
        if a is None:
            a = self.agents[name] = AgentView(name, first_ts=ts)
        a.role = str(rec.get("role") or a.role)
        if ts >= a.last_ts:
            a.last_ts, a.last_event = ts, event
        level = str(rec.get("level") or "info")
        if event in _COUNT_EVENTS:
            a.counts[_COUNT_EVENTS[event]] += 1
        if level == "warning":
            a.counts["warnings"] += 1
        elif level == "error":
            a.counts["errors"] += 1
        if event == "start":
            a.starts += 1
            a.stopped = False
        elif event == "stop":
            a.stopped = True
        handler = getattr(self, "_on_" + event, None)
        if handler is not None:
            handler(rec, ts, name)
        if level in ("warning", "error") and event not in _QUIET_WARNINGS and event not in _NOTED_BY_HANDLER:
            detail = rec.get("reason") or rec.get("error") or ""
            self._note(ts, name, f"{event}{': ' + str(detail) if detail else ''}", level)

    # One handler per event that the views use; the record is trusted only as far as it parses.
    def _on_trained(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        step = None
        if r is None:  # gossip: the provider's step
            r, step = 0, _int(rec.get("step"))
        key = (r, name, step)
        upd = self._updates.get(key)
        if upd is None:
            upd = self._updates[key] = UpdateView(r, name, step)
        upd.ts = ts
        upd.samples = _int(rec.get("samples"))
        upd.loss = _num(rec.get("train_loss"))
        self._awaiting_submit[name] = key
        self._seen_rounds.add(r)

    def _on_submitted(self, rec: dict, ts: float, name: str) -> None:
        for tx, seconds in latency_by_tx([rec]).items():
            self._latency.setdefault(tx, []).extend(seconds)
        if rec.get("tx") != Tx.SUBMIT_UPDATE:
            return
        key = self._awaiting_submit.pop(name, None)
        if key is None:
            return
        upd = self._updates[key]
        upd.state = "submitted"
        if rec.get("txid"):
            upd.uid = str(rec["txid"])
            self._uid_index[upd.uid] = key

    def _on_skip_submit(self, rec: dict, ts: float, name: str) -> None:
        if rec.get("tx") == Tx.SUBMIT_UPDATE and name in self._awaiting_submit:
            self._updates[self._awaiting_submit.pop(name)].state = "on ledger"

    def _on_update_refused(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        if r is None:
            return
        key = (0, name, -r - 1) if r < 0 else (r, name, None)  # gossip passes -(step + 1)
        upd = self._updates.get(key)
        if upd is None:
            upd = self._updates[key] = UpdateView(key[0], name, key[2], ts=ts)
        upd.state, upd.reason = "refused", str(rec.get("reason") or "")
        self._awaiting_submit.pop(name, None)
        # A replay the contract refused is logged at info (expected), anything else at warning.
        self._note(ts, name, f"update refused (round {r}): {upd.reason}", str(rec.get("level") or "info"))

    def _on_scored(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        if r is not None:
            self._member_round[name] = r
            self._seen_rounds.add(r)

    def _on_verdict(self, rec: dict, ts: float, name: str) -> None:
        uid = rec.get("update")
        if not uid:
            return
        uid = str(uid)
        v = Verdict(name, _num(rec.get("score")), bool(rec.get("accept")), str(rec.get("reason") or ""))
        self._verdicts.setdefault(uid, {})[name] = v
        self._verdict_hint.setdefault(uid, (self._member_round.get(name), str(rec.get("provider") or "?")))

    def _on_close_round(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        if r is None:
            return
        why = str(rec.get("why") or ("overdue" if rec.get("event") == "close_overdue_round" else ""))
        if r not in self._closed or ts < self._closed[r][0]:
            self._closed[r] = (ts, why)
        self._seen_rounds.add(r)
        self._note(ts, name, f"round {r} closing ({why or 'closed'}, {rec.get('updates', '?')} updates)")

    _on_close_overdue_round = _on_close_round

    def _on_aggregate(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        if r is None:
            return
        self._aggregated[r] = min(ts, self._aggregated.get(r, ts))
        self._seen_rounds.add(r)
        acc = rec.get("accepted")
        self._note(
            ts, name, f"round {r} aggregate recorded" + (f" ({acc} accepted)" if acc is not None else "")
        )

    _on_record_own_aggregate = _on_aggregate

    def _on_aggregate_checked(self, rec: dict, ts: float, name: str) -> None:
        r, acc = _int(rec.get("round")), _num(rec.get("accuracy"))
        if r is not None and acc is not None:
            self._checked.setdefault(r, {})[name] = acc

    def _on_aggregate_mismatch(self, rec: dict, ts: float, name: str) -> None:
        r = _int(rec.get("round"))
        if r is not None:
            self._mismatch[r] += 1
        theirs, ours = str(rec.get("theirs") or "?")[:8], str(rec.get("ours") or "?")[:8]
        self._note(ts, name, f"AGGREGATE MISMATCH round {r}: recorded {theirs} != mine {ours}", "error")

    def _on_published(self, rec: dict, ts: float, name: str) -> None:
        self._note(ts, name, f"model {rec.get('model') or self.model_id} published")

    def _final(self, rec: dict, ts: float, name: str) -> None:
        status = FINAL_EVENTS[rec["event"]]
        if self.final_ts is None or ts < self.final_ts:
            self.final_status, self.final_ts = status, ts
            self._notes = [n for n in self._notes if n.text not in ("model finished", "model rejected")]
            self._note(ts, name, f"model {status}", "info" if status == ModelStatus.FINISHED else "error")

    _on_model_finished = _final
    _on_model_rejected = _final

    # ------------------------------------------------------------------ views
    @property
    def finished(self) -> bool:
        return self.final_status is not None or self.ledger_status in (
            ModelStatus.FINISHED,
            ModelStatus.REJECTED,
        )

    def is_late(self, agent: AgentView, now: float) -> bool:
        return not self.finished and not agent.stopped and now - agent.last_ts > self.late_seconds

    def agent_state(self, agent: AgentView, now: float) -> str:
        if self.is_late(agent, now):
            return "LATE"
        if agent.stopped:
            return "stopped"
        return "done" if self.finished else "ok"

    def late_agents(self, now: float) -> list[str]:
        return [a.name for a in self.agent_list() if self.is_late(a, now)]

    def agent_list(self) -> list[AgentView]:
        order = {Role.PUBLISHER: 0, Role.COMMITTEE: 1, Role.PROVIDER: 2}
        return sorted(self.agents.values(), key=lambda a: (order.get(a.role, 3), a.name))

    def members(self) -> list[str]:
        names = {a.name for a in self.agents.values() if a.role == Role.COMMITTEE}
        names |= {m for vs in self._verdicts.values() for m in vs}
        return sorted(names)

    def round_numbers(self) -> list[int]:
        return sorted(self._seen_rounds)

    def round(self, r: int) -> RoundView:
        ups = [
            replace(upd, verdicts=dict(self._verdicts.get(upd.uid, {})) if upd.uid else {})
            for key, upd in self._updates.items()
            if key[0] == r
        ]
        # Verdicts on updates whose submit the provider logs do not show (e.g. an agent restarted
        # after submitting): placed by the member's round, named by the MSP of the logged identity.
        for uid, vs in self._verdicts.items():
            if uid in self._uid_index:
                continue
            hint_round, who = self._verdict_hint.get(uid, (None, "?"))
            if (hint_round if hint_round is not None else 0) == r:
                who = "?" + who.split("/")[0]
                ups.append(UpdateView(r, who, uid=uid, state="unmatched", verdicts=dict(vs)))
        ups.sort(key=lambda u: (u.provider, u.step if u.step is not None else -1))
        firsts = [u.ts for u in ups if u.ts and u.state != "unmatched"]
        closed = self._closed.get(r)
        return RoundView(
            r,
            ups,
            opened_ts=min(firsts) if firsts else None,
            closed_ts=closed[0] if closed else None,
            close_why=closed[1] if closed else "",
            aggregate_ts=self._aggregated.get(r),
            checked=dict(self._checked.get(r, {})),
            mismatches=self._mismatch.get(r, 0),
        )

    def latency(self) -> dict[str, dict[str, float]]:
        return latency_stats(self._latency)

    def notes(self, limit: int = 10) -> list[Note]:
        notes = list(self._notes)
        opened: dict[int, float] = {}
        for (r, _, _), upd in self._updates.items():
            if r > 0 and upd.ts:
                opened[r] = min(upd.ts, opened.get(r, upd.ts))
        notes += [Note(ts, "", f"round {r} open (first update trained)") for r, ts in opened.items()]
        notes.sort(key=lambda n: n.ts)
        return notes[-limit:] if limit else notes


# ------------------------------------------------------------------------------ ledger


class LedgerView:
    """The ledger's line for the model (``progress.progress_line``), polled; never raises.

    ``connect()`` returns ``(gateway, client)`` or raises when the ledger is unreachable; it is tried
    again at most every ``retry_seconds``.
    """

    def __init__(
        self,
        connect: Callable[[], tuple[Any, Any]],
        model_id: str,
        *,
        retry_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect, self.model_id = connect, model_id
        self.retry_seconds, self.clock = retry_seconds, clock
        self.gateway = self.client = None
        self.line: str | None = None
        self.status: str | None = None
        self.error: str | None = None
        self._next_try = 0.0
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        from fedcommittee.endpoints import NetworkNotRunning
        from fedcommittee.ledger import ContractError, GatewayError, NotFound
        from fedcommittee.progress import progress_line

        if self.client is None:
            if self.clock() < self._next_try:
                return
            try:
                self.gateway, self.client = self.connect()
            except (NetworkNotRunning, GatewayError, OSError, KeyError, ValueError) as exc:
                self._fail(exc)
                return
        try:
            model = self.client.get_model(self.model_id)
            self.line, self.status, self.error = progress_line(self.client, model), model.get("status"), None
        except NotFound:
            self.line, self.status, self.error = "model not on the ledger (yet)", None, None
        except ContractError as exc:
            self._fail(exc)
        except (GatewayError, OSError, KeyError, ValueError) as exc:
            self._fail(exc)
            self.close()

    def refresh(self, wait: bool = True) -> None:
        """Poll now (``wait``), or in a background thread unless one is still running: a slow or
        unreachable peer then never holds up the frame."""
        if wait:
            self.poll()
        elif self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self.poll, name="dashboard-ledger", daemon=True)
            self._thread.start()

    def describe(self) -> str:
        """The one ledger line of the frame."""
        if self.line:
            return self.line
        if self.error:
            return f"not reachable, showing the logs only ({self.error})"
        return "connecting ..."

    def _fail(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        self.line = None
        self._next_try = self.clock() + self.retry_seconds

    def close(self) -> None:
        if self.gateway is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self.gateway.close()
        self.gateway = self.client = None


# ------------------------------------------------------------------------------ rendering


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 86400:
        days = s // 86400
        return f"{days}d{s % 86400 // 3600:02d}h" if days < 10 else f"{days}d"
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


@dataclass
class Section:
    """A block of the frame: ``head`` lines (a blank line, a title, a column header) that show
    whenever the section does, then ``body``, which may be cut to fit, keeping its first lines
    (``keep="head"``) or its last. When the frame is too tall, sections of lower ``priority`` are cut
    or left out first; a section that is not ``droppable`` is only ever cut."""

    name: str
    head: list[str]
    body: list[str]
    priority: int
    keep: str = "head"
    droppable: bool = True

    def lines(self, shown: int | None = None) -> list[str]:
        n = len(self.body) if shown is None else shown
        if n >= len(self.body):
            return self.head + self.body
        more = f"  ... {len(self.body) - n} more"
        if self.keep == "head":
            return self.head + self.body[:n] + [more]
        return self.head + [more] + self.body[len(self.body) - n :]


def _layout(sections: list[Section], height: int) -> list[int | None]:
    """How many body lines each section shows (None: left out) for the frame to fit ``height``."""
    shown: list[int | None] = [len(s.body) for s in sections]
    total = sum(len(s.lines()) for s in sections)
    for i in sorted(range(len(sections)), key=lambda i: sections[i].priority):
        excess = total - height
        if excess <= 0:
            break
        s, n = sections[i], len(sections[i].body)
        keep = n - excess - 1  # the "... n more" line costs one
        if keep >= 1 or (not s.droppable and n > 2):
            keep = max(keep, 1)
            shown[i] = keep
            total -= n - keep - 1
        elif s.droppable:
            shown[i] = None
            total -= len(s.lines())
    return shown


def fit(sections: list[Section], height: int | None) -> list[str]:
    """The frame's lines, in section order; with a ``height``, cut or leave out the bodies of the
    lowest-priority sections until it fits, and say which sections were left out."""
    if height is None:
        return [line for s in sections for line in s.lines()]
    shown = _layout(sections, height)
    if None in shown:
        shown = _layout(sections, height - 1)  # room for the line that names what was left out
    out = [line for s, n in zip(sections, shown, strict=True) if n is not None for line in s.lines(n)]
    left_out = [s.name for s, n in zip(sections, shown, strict=True) if n is None]
    if left_out:
        out = out[: height - 1] + [f"(no room for: {', '.join(left_out)}; a taller terminal shows them)"]
    return out[:height]


def _agent_table(state: DashboardState, now: float) -> tuple[str, list[str]]:
    agents = state.agent_list()
    w = max(8, min(20, max([len(a.name) for a in agents], default=0)))
    heads = "".join(f" {h:>3}" for h in ("trn", "sub", "vrd", "cfl", "wrn", "err"))
    header = f"{'agent':<{w}} {'role':<9} {'state':<7} {'ago':>6}  {'last event':<18}{heads}"
    body = []
    for a in agents:
        counts = "".join(f" {a.counts.get(c, 0):>3}" for c in COUNTS)
        restarts = f"  (started {a.starts}x)" if a.starts > 1 else ""
        body.append(f"{a.name[:w]:<{w}} {a.role[:9]:<9} {state.agent_state(a, now):<7} "
                    f"{_ago(now - a.last_ts):>6}  {a.last_event[:18]:<18}{counts}{restarts}")  # fmt: skip
    return header, body or ["(no agent has logged anything yet)"]


def round_summary(rv: RoundView) -> str:
    ups = rv.updates
    refused = sum(1 for u in ups if u.state == "refused")
    judged = [u for u in ups if u.verdicts]
    majority = sum(1 for u in judged if 2 * u.votes()[0] > u.votes()[1])
    label = "gossip   " if rv.number == 0 else f"round {rv.number:>3}"
    s = f"{label} {rv.status:<10}"
    if rv.mismatches:
        s += f" {rv.mismatches} MISMATCH,"
    s += f" {len(ups):>2} updates"
    if refused:
        s += f" ({refused} refused)"
    s += f", {len(judged)} judged, {majority} voted in"
    if rv.checked:
        accs = sorted(rv.checked.values())
        s += f", shard acc {accs[len(accs) // 2]:.3f}"
    return s


def _verdict_cell(v: Verdict | None) -> str:
    if v is None:
        return "."
    return ("?" if v.score is None else f"{v.score:+.4f}") + (" ok" if v.accept else " NO")


def _update_table(state: DashboardState, rv: RoundView, gossip_limit: int = 12) -> tuple[str, list[str]]:
    """The latest round: one row per provider update, one column per committee member."""
    members = state.members()
    ups = rv.updates
    label = f"round {rv.number}" if rv.number else "gossip (newest)"
    if rv.number == 0:
        ups = sorted(ups, key=lambda u: u.ts)[-gossip_limit:]
    names = [u.provider + (f"#{u.step}" if u.step is not None else "") for u in ups]
    w = max(len(label), min(16, max([len(n) for n in names], default=0)))
    header = (f"{label:<{w}} {'samples':>7} {'loss':>7} {'update':<10}"
              + "".join(f" {m[-11:]:>11}" for m in members) + "  accept")  # fmt: skip
    body = []
    for name, u in zip(names, ups, strict=True):
        what = (u.uid or "?")[:10] if u.state in ("submitted", "unmatched") else u.state
        loss = f"{u.loss:.4f}" if u.loss is not None else ""
        samples = "" if u.samples is None else str(u.samples)
        row = f"{name[:w]:<{w}} {samples:>7} {loss:>7} {what[:10]:<10}"
        row += "".join(f" {_verdict_cell(u.verdicts.get(m)):>11}" for m in members)
        yes, n = u.votes()
        row += f"  {yes}/{n}" if n else "  -"
        body.append(row)
    return header, body or ["(no update logged yet)"]


def render(
    state: DashboardState,
    *,
    now: float,
    width: int = 80,
    height: int | None = None,
    logs_dir: Path | None = None,
    ledger: str | None = None,
    interval: float | None = None,
) -> str:
    """One frame: every line at most ``width`` characters, at most ``height`` lines if given.

    ``ledger`` is the one line about the ledger (its view of the model, or why there is none)."""
    head = f"fedcommittee dashboard  model {state.model_id}  {_clock(now)}"
    if interval:
        head += f"  (every {interval:g} s; Ctrl-C quits)"
    top = [head]
    info = f"{len(state.agents)} agents, {state.records} records"
    skipped = state.bad_lines + state.bad_records
    if skipped:
        info += f", {skipped} unreadable line(s) skipped"
    if logs_dir:
        info += f" (logs: {logs_dir})"
    top.append(info)
    if ledger:
        top.append(f"ledger: {ledger}")
    if state.final_status:
        top.append(f"model {state.final_status} (first logged at {_clock(state.final_ts or now)})")
    late = state.late_agents(now)
    if late:
        top.append(f"LATE: no log line for more than {state.late_seconds:g} s from {', '.join(late)}")

    sections = [Section("summary", top, [], 9, droppable=False)]
    header, body = _agent_table(state, now)
    sections.append(Section("agents", ["", header], body, 8, droppable=False))
    rounds = state.round_numbers()
    if rounds:
        summaries = [round_summary(state.round(r)) for r in rounds]
        title = "rounds (as logged; the ledger decides acceptance)"
        sections.append(Section("rounds", ["", title], summaries, 3, "tail"))
        header, body = _update_table(state, state.round(rounds[-1]))
        sections.append(Section("latest round", ["", header], body, 6))
    notes = state.notes(10)
    if notes:
        body = [f"{_clock(n.ts)} {n.agent + ': ' if n.agent else ''}{n.text}" for n in notes]
        sections.append(Section("events", ["", "recent events"], body, 5, "tail"))
    lat = state.latency()
    if lat:
        wt = max(len("submit to commit (s)"), *(len(k) for k in lat))
        header = f"{'submit to commit (s)':<{wt}} {'n':>5} {'median':>8} {'p95':>8} {'max':>8}"
        body = [f"{tx:<{wt}} {s['n']:>5} {s['median']:>8.3f} {s['p95']:>8.3f} {s['max']:>8.3f}"
                for tx, s in lat.items()]  # fmt: skip
        sections.append(Section("latency", ["", header], body, 4))
    return "\n".join(line[:width] for line in fit(sections, height))


# ------------------------------------------------------------------------------ the loop


def latest_run(home: Path) -> str | None:
    """The model id of the most recently modified run under ``home/runs`` (its folder, its logs
    folder or any log file), or None."""
    runs = home / "runs"
    if not runs.is_dir():
        return None

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # removed meanwhile
            return -1.0

    best, best_t = None, -1.0
    for d in sorted(runs.iterdir()):
        if not d.is_dir():
            continue
        t = max(mtime(p) for p in [d, d / "logs", *(d / "logs").glob("*.jsonl")])
        if t > best_t:
            best, best_t = d.name, t
    return best


def run_dashboard(
    logs_dir: Path,
    model_id: str,
    *,
    interval: float = 2.0,
    once: bool = False,
    late_seconds: float = 60.0,
    ledger: LedgerView | None = None,
    ledger_off_reason: str | None = None,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Draw frames until Ctrl-C (or one with ``once``); returns 0."""
    out = out or sys.stdout
    tty = out.isatty()
    tail = LogTail(logs_dir)
    state = DashboardState(model_id, late_seconds=late_seconds)
    if tty and not once:
        out.write("\x1b[?25l")  # hide the cursor while redrawing
    try:
        while True:
            state.feed(tail.poll())
            state.bad_lines = tail.bad_lines
            if ledger is not None:
                ledger.refresh(wait=once)
                state.ledger_status = ledger.status
                line = ledger.describe()
            else:
                line = ledger_off_reason
            size = shutil.get_terminal_size()
            frame = render(
                state,
                now=clock(),
                width=size.columns,
                height=size.lines - 1 if tty else None,
                logs_dir=logs_dir,
                ledger=line,
                interval=None if once else interval,
            )
            if tty and not once:
                out.write("\x1b[H\x1b[2J" + frame + "\n")
            else:
                out.write(frame + "\n" + ("" if once else "\n"))
            out.flush()
            if once:
                return 0
            sleep(interval)
    except KeyboardInterrupt:
        return 0
    finally:
        if tty and not once:
            out.write("\x1b[?25h\n")
            out.flush()
        if ledger is not None:
            ledger.close()
