"""FC_BATCH_TIMEOUT_MS: the block timer of a new network, on both backends (scripts/lib.sh)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from fedcommittee.layout import devledger_config

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FC_BATCH_TIMEOUT_MS"}
    if value is not None:
        env["FC_BATCH_TIMEOUT_MS"] = value
    return subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib.sh"; {script}'],
                          capture_output=True, text=True, env=env)  # fmt: skip


def fabric_configtx(value: str | None) -> subprocess.CompletedProcess:
    # The template rendered as `up` renders it, with a stand-in for the crypto layout.
    script = f'source "{ROOT}/scripts/fabric.sh"; CRYPTO=/crypto; fabric_render_configtx'
    return run(script, value)


def test_fabric_template_takes_the_timer():
    default = fabric_configtx(None)
    assert default.returncode == 0, default.stderr
    assert re.findall(r"BatchTimeout: (\S+)", default.stdout) == ["30ms"]
    assert re.findall(r"BatchTimeout: (\S+)", fabric_configtx("15").stdout) == ["15ms"]


def test_embedded_ledger_config_takes_the_timer(tmp_path):
    assert devledger_config(tmp_path, 7000, "inproc")["batch_timeout_ms"] == 30
    assert devledger_config(tmp_path, 7000, "inproc", 15)["batch_timeout_ms"] == 15
    with pytest.raises(ValueError, match="batch_timeout_ms"):
        devledger_config(tmp_path, 7000, "inproc", 0)


def test_bad_values_are_refused_by_name():
    assert run("batch_timeout_ms", "2000").stdout.strip() == "2000"
    for bad in ("0", "-3", "fast", "2001", "10ms", "3 4"):
        out = run("batch_timeout_ms", bad)
        assert out.returncode != 0, bad
        assert "FC_BATCH_TIMEOUT_MS must be a number of milliseconds from 1 to 2000" in out.stderr, bad
        configtx = fabric_configtx(bad)
        assert configtx.returncode != 0 and "BatchTimeout" not in configtx.stdout, bad


def test_a_network_already_here_keeps_its_timer_and_up_says_so(tmp_path):
    def warn(home: Path, value: str | None) -> str:
        script = (
            f'FC_HOME="{home}"; source "{ROOT}/scripts/lib.sh"; source "{ROOT}/scripts/fabric.sh";'
            f' source "{ROOT}/scripts/devledger.sh"; warn_kept_batch_timeout'
        )
        out = run(script, value)
        assert out.returncode == 0, out.stderr
        return out.stderr

    assert warn(tmp_path / "none", "15") == ""  # no network yet: nothing kept
    fabric, dev = tmp_path / "fabric-home", tmp_path / "dev-home"
    (fabric / "fabric").mkdir(parents=True)
    (fabric / "fabric" / "configtx.yaml").write_text(fabric_configtx(None).stdout)
    (dev / "devledger").mkdir(parents=True)
    (dev / "devledger" / "config.json").write_text(
        json.dumps(devledger_config(dev, 7000, "inproc"), indent=2)
    )
    for home in (fabric, dev):
        assert "FC_BATCH_TIMEOUT_MS=15 applies to a new network" in warn(home, "15")
        assert "keeps its 30 ms" in warn(home, "15")
        assert warn(home, "30") == "" and warn(home, None) == ""
