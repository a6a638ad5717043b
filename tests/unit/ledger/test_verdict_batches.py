"""A member's verdicts split into SubmitVerdicts inputs the contract takes (count and JSON size)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fedcommittee.ledger import contract
from fedcommittee.ledger.contract import MAX_BATCH_VERDICTS, MAX_INPUT_BYTES, verdict_batches

CHAINCODE = Path(__file__).resolve().parents[3] / "chaincode" / "fedcommittee"


def _item(i: int, reason: str = "") -> dict:
    return {"updateId": f"{i:064x}", "score": 0.5, "accept": True, "reason": reason}


def _input(batch: list) -> bytes:
    return contract._json({"verdicts": batch}).encode()


def test_a_thousand_verdicts_go_in_batches_the_contract_takes_in_order():
    items = [_item(i, "effect: sym t 1.2, cos 0.31") for i in range(1000)]
    batches = verdict_batches(items)
    assert [v for b in batches for v in b] == items
    assert all(0 < len(b) <= MAX_BATCH_VERDICTS and len(_input(b)) <= MAX_INPUT_BYTES for b in batches)
    assert [len(b) for b in batches] == [256, 256, 256, 232]  # short items: the count decides


def test_long_reasons_split_by_size_before_count():
    items = [_item(i, "x" * 900) for i in range(100)]
    batches = verdict_batches(items)
    assert len(batches) > 1 and all(len(_input(b)) <= MAX_INPUT_BYTES for b in batches)
    assert len(_input(batches[0] + batches[1][:1])) > MAX_INPUT_BYTES  # each as full as it can be
    assert verdict_batches([]) == [] and verdict_batches(items[:3]) == [items[:3]]


def test_the_limits_are_the_contracts():
    go = "".join(p.read_text() for p in CHAINCODE.glob("*.go") if not p.name.endswith("_test.go"))
    assert int(re.search(r"maxBatchVerdicts\s*=\s*(\d+)", go).group(1)) == MAX_BATCH_VERDICTS
    assert re.search(r"MaxInputBytes\s*=\s*64 \* 1024", go) and MAX_INPUT_BYTES == 64 * 1024
    assert json.loads(_input([_item(0)]))["verdicts"][0]["updateId"] == f"{0:064x}"
