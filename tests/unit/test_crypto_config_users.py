"""FC_USERS_PER_ORG: the crypto config a new network is generated from (scripts/fabric.sh)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def render(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FC_USERS_PER_ORG"}
    if value is not None:
        env["FC_USERS_PER_ORG"] = value
    script = f'source "{ROOT}/scripts/lib.sh"; source "{ROOT}/scripts/fabric.sh"; fabric_crypto_config'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)


def user_counts(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"Users: \{Count: (\d+)\}", text)]


def test_default_is_the_checked_in_file():
    out = render(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "network" / "fabric" / "crypto-config.yaml").read_text()
    assert user_counts(out.stdout) == [15, 15, 15]


def test_the_variable_sets_every_org_and_nothing_else():
    out = render("36")
    assert out.returncode == 0, out.stderr
    assert user_counts(out.stdout) == [36, 36, 36]
    original = (ROOT / "network" / "fabric" / "crypto-config.yaml").read_text()
    assert re.sub(r"Count: 36\}", "Count: 15}", out.stdout) == original


def test_bad_values_are_refused_by_name():
    for bad in ("0", "-3", "many", "12345", "3 4"):
        out = render(bad)
        assert out.returncode != 0 and "FC_USERS_PER_ORG must be a number from 1 to 9999" in out.stderr, bad
