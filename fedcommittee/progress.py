"""The progress lines of ``fedcommittee run`` (and the dashboard's ledger line), read from the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable

from fedcommittee.ledger import ContractError, FedcommitteeClient, GatewayError, Mode, UpdateStatus


def progress_line(client: FedcommitteeClient, model: dict, rd: dict | None = None) -> str:
    """``rd``: the model's current round when the caller has read it with the model."""
    mid = model["id"]
    if model["mode"] == Mode.GOSSIP:
        ups = list(client.iter_round_updates(mid, 0))
        r_desc = "gossip"
    else:
        r = int(model.get("currentRound") or 0)
        if r < 1:
            return f"model {model['status']}: approvals {model.get('approvals', 0)}/{model['quorum']}"
        ups = list(client.iter_round_updates(mid, r))
        if rd is None or int(rd["number"]) != r:
            rd = client.get_round(mid, r)
        r_desc = f"round {r}/{model['roundRules']['maxRounds']} {rd['status']}"
    c = {s: sum(1 for u in ups if u["status"] == s) for s in UpdateStatus}
    return (
        f"model {model['status']}, {r_desc}: {len(ups)} updates, {c[UpdateStatus.ACCEPTED]} accepted, "
        f"{c[UpdateStatus.REJECTED]} rejected, {c[UpdateStatus.PENDING]} pending"
    )


class Progress:
    """Asks the ledger for the model each turn and says a line whenever it changes."""

    def __init__(self, client: FedcommitteeClient, model_id: str, *, started: float,
                 say: Callable[[str], None]) -> None:  # fmt: skip
        self.client = client
        self.model_id = model_id
        self.started = started
        self.say = say
        self.last = ""
        self.query_failing = False

    def poll(self) -> dict | None:
        """The model's record now; None while it is not published or the ledger does not answer."""
        try:
            model, rd, _ = self.client.get_model_state(self.model_id)
            line = progress_line(self.client, model, rd)
            self.query_failing = False
        except ContractError:
            return None
        except GatewayError as exc:
            # A peer too busy to answer in time (e.g. 100 agents on 2 cores) is no reason to stop
            # the experiment: the agents retry their own calls; we ask again on the next turn.
            if not self.query_failing:
                self.say(f"ledger query failed ({type(exc).__name__}: {exc}); retrying")
            self.query_failing = True
            return None
        if line != self.last:
            self.say(f"[{time.time() - self.started:6.1f} s] {line}")
            self.last = line
        return model
