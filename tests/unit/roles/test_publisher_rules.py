"""The publisher's round-closing rule (pure)."""

from __future__ import annotations

from fedcommittee.roles.publisher import should_close

ROUND = {"openedAt": 1000, "deadline": 1300}


def ups(*statuses: str, at: int = 1010) -> list[dict]:
    return [{"id": f"u{i}", "status": s, "submittedAt": at} for i, s in enumerate(statuses)]


def test_everyone_final_and_enough_accepted_closes_at_once():
    assert should_close(ROUND, ups("accepted", "accepted", "rejected"), 3, 2, 20, 1011) == (True, "everyone")


def test_pending_updates_hold_the_round_open():
    assert should_close(ROUND, ups("accepted", "accepted", "pending"), 3, 2, 20, 1200) == (False, "waiting")


def test_too_few_accepted_waits_for_the_deadline():
    assert should_close(ROUND, ups("accepted", "rejected", "rejected"), 3, 2, 20, 1200)[0] is False
    assert should_close(ROUND, ups("accepted", "rejected", "rejected"), 3, 2, 20, 1302) == (True, "deadline")


def test_a_silent_provider_does_not_stall_the_round():
    two = ups("accepted", "accepted")
    assert should_close(ROUND, two, 3, 2, 20, 1025)[0] is False
    assert should_close(ROUND, two, 3, 2, 20, 1031) == (True, "quiet")


def test_an_empty_round_closes_only_at_the_deadline():
    assert should_close(ROUND, [], 3, 1, 20, 1200)[0] is False
    assert should_close(ROUND, [], 3, 1, 20, 1400) == (True, "deadline")
