"""Session hooks of the whole test run: the drill summaries printed at its end.

They live here, at the root of the collected tree (`pytest tests`, as scripts/test.sh runs it),
because pytest loads a conftest below that root only while collecting its folder, after
``pytest_sessionstart`` has fired: the same hooks in tests/integration/conftest.py never saw the
session start, so the summaries never printed. The integration fixtures stay in that conftest.

Standard library and pytest only: this file is loaded for every run, the unit suite's included.
"""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"

# The drills' summaries, in the order they are printed; any other reports/*.txt the run writes
# (a drill added later) follows them, so a new summary needs no change here.
DRILL_REPORTS = (
    "access-matrix.txt",
    "bad-input-summary.txt",
    "privacy-summary.txt",
    "load-summary.txt",
    "faults-summary.txt",
)

# File modification times come from the kernel's coarse clock, which may lag time.time() by a few
# milliseconds: without this slack a summary written right at the start could count as stale.
MTIME_SLACK_S = 0.1


def pytest_sessionstart(session):
    session.config._fc_started = time.time()


def fresh_reports(started: float | None) -> list[Path]:
    """The summaries under reports/ written since ``started`` (the session's start): only this
    run's drills, never a file left by an earlier run."""
    if started is None or not REPORTS.is_dir():
        return []
    fresh = [p for p in REPORTS.glob("*.txt") if p.stat().st_mtime >= started - MTIME_SLACK_S]
    order = {name: i for i, name in enumerate(DRILL_REPORTS)}
    return sorted(fresh, key=lambda p: (order.get(p.name, len(order)), p.name))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """At the end of the run, every drill summary this run wrote (counts of inputs, attempts, what
    was lost), so one place shows them all."""
    fresh = fresh_reports(getattr(config, "_fc_started", None))
    if not fresh:
        return
    terminalreporter.section("fedcommittee drill summaries")
    for path in fresh:
        terminalreporter.write_line(f"--- {path.relative_to(ROOT)}")
        for line in path.read_text().rstrip().splitlines():
            terminalreporter.write_line(line)
