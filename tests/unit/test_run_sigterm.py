"""A SIGTERM to ``fedcommittee run`` stops its agents, as Ctrl-C does (``run.sigterm_interrupts``).

The agents run in sessions of their own, so nothing else stops them: before, a terminated run left
the members and the publisher running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

# A stand-in for run_experiment: an "agent" in its own session, stopped in a finally block.
SCRIPT = textwrap.dedent(
    """
    import subprocess, sys, time
    from fedcommittee.run import sigterm_interrupts

    # The agent must not hold our stdout: were we killed, the test's read would wait on it.
    agent = subprocess.Popen(["sleep", "120"], start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        with sigterm_interrupts():
            print(agent.pid, flush=True)  # only now: a SIGTERM before the handler would kill us
            time.sleep(120)
    except KeyboardInterrupt:
        sys.stdout.write("interrupted\\n")
    finally:
        agent.terminate()
        agent.wait()
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_the_run_stops_its_agents():
    run = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        agent = int(run.stdout.readline())
        assert alive(agent)
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=30)
        assert "interrupted" in out
        for _ in range(50):
            if not alive(agent):
                break
            time.sleep(0.1)
        assert not alive(agent)
    finally:
        run.kill()


def test_the_previous_handler_is_back_after_the_block():
    from fedcommittee.run import sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
