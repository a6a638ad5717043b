"""The drill summaries print at the end of the test run under the README's command.

scripts/test.sh runs ``python -m pytest tests``. Each check runs that command in a subprocess on a
tiny generated project: the real pyproject.toml (pytest's settings) and tests/conftest.py, and one
"drill" test that writes summaries to reports/ as the integration drills do. No network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "fedcommittee drill summaries"

DRILL_TEST = """
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_drill_writes_its_summary():
    (ROOT / "reports").mkdir(exist_ok=True)
    # Written in the reverse of the printing order: the hook orders them, not the clock.
    (ROOT / "reports" / "faults-summary.txt").write_text("fault drills summary\\n  lost: 0\\n")
    (ROOT / "reports" / "access-matrix.txt").write_text("access matrix\\n  denied as expected: 42\\n")
"""


def make_project(tmp_path: Path, *, hooks_in_integration_conftest: bool = False) -> Path:
    project = tmp_path / "project"
    integration = project / "tests" / "integration"
    integration.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "tests" / "__init__.py").write_text("")
    (integration / "__init__.py").write_text("")
    hooks = (ROOT / "tests" / "conftest.py").read_text()
    if hooks_in_integration_conftest:
        # Where the hooks used to be: run as a conftest below the collected root.
        (integration / "conftest.py").write_text(hooks.replace("parents[1]", "parents[2]"))
    else:
        (project / "tests" / "conftest.py").write_text(hooks)
    (integration / "test_drill.py").write_text(DRILL_TEST)
    # A summary an earlier run left behind: it must not be shown as this run's.
    reports = project / "reports"
    reports.mkdir()
    stale = reports / "load-summary.txt"
    stale.write_text("load drill from an earlier run\n")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    return project


def run_pytest_tests(project: Path) -> str:
    """``python -m pytest tests``, as scripts/test.sh runs it; its whole output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def test_summaries_written_during_the_run_print_at_its_end(tmp_path):
    out = run_pytest_tests(make_project(tmp_path))
    assert SECTION in out, out
    summary = out[out.index(SECTION) :]
    assert "--- reports/access-matrix.txt" in summary
    assert "denied as expected: 42" in summary
    # A summary the hook does not know by name (a drill added later) is shown too, after the known ones.
    assert "--- reports/faults-summary.txt" in summary
    assert summary.index("access-matrix.txt") < summary.index("faults-summary.txt")
    assert "load-summary.txt" not in summary, "a stale summary from an earlier run was printed"


def test_the_same_hooks_below_the_collected_root_never_fire(tmp_path):
    # Why the hooks live in tests/conftest.py: pytest loads tests/integration/conftest.py only when
    # it collects that folder, after pytest_sessionstart, so the summaries silently never printed.
    out = run_pytest_tests(make_project(tmp_path, hooks_in_integration_conftest=True))
    assert SECTION not in out, out


def test_integration_conftest_keeps_no_session_hooks():
    source = (ROOT / "tests" / "integration" / "conftest.py").read_text()
    for hook in ("pytest_sessionstart", "pytest_terminal_summary"):
        assert f"def {hook}" not in source, f"{hook} belongs in tests/conftest.py"
