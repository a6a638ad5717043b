"""The Python enums of ``ledger.records`` hold exactly the chaincode's constants, wherever in
``chaincode/fedcommittee/*.go`` they are declared (``ModelProposed = "proposed"`` style)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from fedcommittee.ledger import records

CHAINCODE_DIR = Path(__file__).resolve().parents[3] / "chaincode" / "fedcommittee"

# Go constant name prefix -> the enum that mirrors that group. The prefix must be followed by an
# upper-case letter, so "Mode" does not take "ModelProposed".
GROUPS: dict[str, type[StrEnum]] = {
    "Model": records.ModelStatus,
    "Mode": records.Mode,
    "Rule": records.AcceptRule,
    "Update": records.UpdateStatus,
    "Round": records.RoundStatus,
    "Role": records.Role,
    "Alloc": records.AllocationRule,
    "Stop": records.StopReason,
    "Ev": records.EventType,
}

_CONST = re.compile(r'^\s*(?:const\s+)?([A-Z][A-Za-z0-9]*)\s*=\s*"([^"]*)"', re.MULTILINE)


def go_constants() -> dict[str, dict[str, str]]:
    """{prefix: {Go name: value}} over the package's non-test sources."""
    found: dict[str, dict[str, str]] = {p: {} for p in GROUPS}
    for go in sorted(CHAINCODE_DIR.glob("*.go")):
        if go.name.endswith("_test.go"):
            continue
        for name, value in _CONST.findall(go.read_text()):
            for prefix in GROUPS:
                if re.fullmatch(rf"{prefix}[A-Z]\w*", name):
                    found[prefix][name] = value
    return found


@pytest.mark.skipif(not CHAINCODE_DIR.is_dir(), reason="chaincode source not present")
@pytest.mark.parametrize("prefix", list(GROUPS))
def test_enum_equals_the_go_constants(prefix):
    go = go_constants()[prefix]
    assert go, f'no Go constants {prefix}<Name> = "..." found in {CHAINCODE_DIR}: did they move?'
    enum = GROUPS[prefix]
    ours, theirs = {m.value for m in enum}, set(go.values())
    only_go = {n: v for n, v in go.items() if v not in ours}
    only_py = sorted(ours - theirs)
    assert not only_go and not only_py, (
        f"{enum.__name__} differs from the chaincode's {prefix}* constants: "
        f"in Go only {only_go}, in Python only {only_py}"
    )


def test_members_compare_equal_to_their_json_strings():
    assert records.ModelStatus.ACTIVE == "active" and "finished" in {records.ModelStatus.FINISHED}
    assert records.RoundStatus("closed") is records.RoundStatus.CLOSED
    assert records.ModelStatus.REJECTED.final and not records.ModelStatus.PROPOSED.final
