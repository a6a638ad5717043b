"""Several agents hosted in one process (``providers_per_process``): exit codes and failure handling
of ``driver.run_roles``."""

from __future__ import annotations

import threading
import time

from fedcommittee.roles import driver


class StubAgent:
    def __init__(self, name: str, role: str = "provider") -> None:
        self.name, self.role = name, role
        self.records: list[tuple[str, dict]] = []

    def log(self, event: str, **fields) -> None:
        self.records.append((event, fields))


def _jobs(*names):
    agents = [StubAgent(n) for n in names]
    return agents, [(a, lambda a=a: f"role of {a.name}") for a in agents]


def test_group_returns_the_worst_exit_code_after_all_finish(monkeypatch):
    seen = []
    codes = {"a": 0, "b": 1, "c": 0}

    def fake(agent, role):
        seen.append((threading.current_thread().name, role))
        time.sleep(0.05)
        return codes[agent.name]

    monkeypatch.setattr(driver, "run_role", fake)
    _, jobs = _jobs("a", "b", "c")
    assert driver.run_roles(jobs) == 1
    assert sorted(r for _, r in seen) == ["role of a", "role of b", "role of c"]  # each built its role
    assert {t for t, _ in seen} == {"provider-a", "provider-b", "provider-c"}  # one thread each
    assert driver.run_roles(_jobs("a", "c")[1]) == 0


def test_one_crash_ends_the_group_at_once_and_is_logged(monkeypatch):
    release = threading.Event()

    def fake(agent, role):
        if agent.name == "bad":
            raise RuntimeError("gateway gone")
        release.wait(30)  # a healthy neighbour that would run for a long time
        return 0

    monkeypatch.setattr(driver, "run_role", fake)
    (_, bad), jobs = _jobs("good", "bad")
    started = time.monotonic()
    assert driver.run_roles(jobs) == 1
    assert time.monotonic() - started < 10  # did not wait for the healthy one
    release.set()
    assert bad.records == [("crashed", {"level": "error", "error": "RuntimeError: gateway gone"})]
