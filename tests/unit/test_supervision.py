"""`fedcommittee run`'s restart policy (fedcommittee/supervision.py) on real child processes."""

from __future__ import annotations

from fedcommittee.supervision import MAX_RESTARTS, Child, Supervisor


def exits_with(tmp_path, name: str, code: int) -> Child:
    return Child(name, ["sh", "-c", f"exit {code}"], tmp_path / f"{name}.out")


def turns(sup: Supervisor, model: dict | None, n: int) -> None:
    """``n`` supervision turns, each after every child started so far has exited."""
    for _ in range(n):
        for c in sup.children:
            if c.proc is not None:
                c.proc.wait()
        sup.restart_exited(model)


def test_a_failing_agent_is_restarted_at_most_max_restarts_times(tmp_path):
    said: list[str] = []
    c = exits_with(tmp_path, "org1-a", 3)
    sup = Supervisor([c], gossip=False, say=said.append)
    sup.start_all()
    turns(sup, {"status": "active"}, MAX_RESTARTS + 3)
    assert c.restarts == MAX_RESTARTS
    assert c.exit_codes == [3] * (MAX_RESTARTS + 1)
    assert said[0] == f"org1-a exited with 3; restart 1/{MAX_RESTARTS} (see {c.log})"
    assert said[-1] == f"org1-a exited with 3; no restarts left (see {c.log})"
    assert len(said) == MAX_RESTARTS + 1


def test_a_clean_exit_is_restarted_only_while_the_model_is_active(tmp_path):
    done, early = exits_with(tmp_path, "publisher", 0), exits_with(tmp_path, "member1", 0)
    finished = Supervisor([done], gossip=False, say=lambda m: None)
    finished.start_all()
    turns(finished, {"status": "finished"}, 1)
    assert done.restarts == 0 and done.exit_codes == []

    active = Supervisor([early], gossip=False, say=lambda m: None)
    active.start_all()
    turns(active, {"status": "active"}, 1)
    assert early.restarts == 1 and early.exit_codes == [0]


def test_in_gossip_a_provider_may_finish_but_the_publisher_may_not(tmp_path):
    provider, publisher = exits_with(tmp_path, "org1-a", 0), exits_with(tmp_path, "publisher", 0)
    sup = Supervisor([provider, publisher], gossip=True, say=lambda m: None)
    sup.start_all()
    turns(sup, {"status": "active"}, 1)
    assert provider.restarts == 0 and provider.exit_codes == []
    assert publisher.restarts == 1 and publisher.exit_codes == [0]
    sup.stop_all()
