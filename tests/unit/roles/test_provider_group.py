"""Several providers hosted in one process: exit codes and failure handling of ``run_providers``."""

from __future__ import annotations

import threading
import time

from fedcommittee.roles import provider as prov


class StubAgent:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def log(self, event: str, **fields) -> None:
        self.records.append((event, fields))


def test_group_returns_the_worst_exit_code_after_all_finish(monkeypatch):
    seen = []
    codes = {"a": 0, "b": 1, "c": 0}

    def fake(agent, name):
        seen.append((threading.current_thread().name, name))
        time.sleep(0.05)
        return codes[name]

    monkeypatch.setattr(prov, "run_provider", fake)
    agents = [(StubAgent(), n) for n in codes]
    assert prov.run_providers(agents) == 1
    assert sorted(n for _, n in seen) == ["a", "b", "c"]
    assert {t for t, _ in seen} == {"provider-a", "provider-b", "provider-c"}  # one thread each
    assert prov.run_providers([(StubAgent(), "a"), (StubAgent(), "c")]) == 0


def test_one_crash_ends_the_group_at_once_and_is_logged(monkeypatch):
    release = threading.Event()

    def fake(agent, name):
        if name == "bad":
            raise RuntimeError("gateway gone")
        release.wait(30)  # a healthy neighbour that would run for a long time
        return 0

    monkeypatch.setattr(prov, "run_provider", fake)
    bad = StubAgent()
    started = time.monotonic()
    assert prov.run_providers([(StubAgent(), "good"), (bad, "bad")]) == 1
    assert time.monotonic() - started < 10  # did not wait for the healthy one
    release.set()
    assert bad.records == [("crashed", {"level": "error", "error": "RuntimeError: gateway gone"})]
