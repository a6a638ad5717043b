"""Load drill: 20 providers and 5 committee members submitting concurrently, for several rounds.

On the session network, one federated model whose committee is 5 members spread over the 3 orgs
(quorum 3, acceptance threshold 0.5) and 20 provider identities, driven at the ledger level for
ROUNDS rounds (no training; the objects are small and distinct, but real, in the real IPFS node):

1. every provider puts its object into IPFS and submits its update: all 20 at once, each from its
   own thread through its own Gateway connection (to its org's peer);
2. the 5 members judge the round at once, each one verdict at a time, waiting for commit (the
   contract's rule, chaincode/README.md "Concurrency notes"); the scores are planned so that 4
   updates per round are rejected and the rest accepted;
3. the publisher closes the round and records the aggregate (a deterministic object derived from the
   accepted set); the 5 members recompute it from the ledger and confirm it at once: the quorum's
   confirmation opens the next round (or finishes the model after the last).

Every submit goes through the agents' own retry discipline, ``Agent.submit`` (before each try the
ledger is re-checked for the transaction's effect; MVCC/phantom conflicts and gateway errors are
retried; a refusal is re-checked against the ledger before it counts), called here on a stand-in
that has what it needs of an agent: ``client`` and ``log``. A call whose effect was already on the
ledger (the quorum finalized an update without this member, or confirmed the round) is *moot*.

Asserted: no call failed in the end; every invalid transaction of ours in the blocks is a conflict
its submitter saw and retried (code in RETRY_CODES), and every conflict a submitter saw is in the
blocks; every update is on the ledger once, with its object in IPFS; every update has exactly
``quorum`` verdicts from distinct members and each member's verdict count on the ledger equals the
verdicts it committed; each round's accepted set, aggregate and confirmations are the planned ones;
the leaderboard agrees. The figures per transaction type are printed and written to
reports/load-summary.txt.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from cryptography import x509
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import transaction_pb2

from fedcommittee.ledger import CommitError, ContractError, FedcommitteeClient, Gateway, GatewayError
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.runtime import RETRY_CODES, Agent
from fedcommittee.storage import ContentStore, IpfsClient
from tests.integration.drills import DrillLedger, model_spec
from tests.integration.network import ROOT

ROUNDS = int(os.environ.get("FC_LOAD_ROUNDS", "5"))
QUORUM = 3
THRESHOLD = 0.5
# Profile users 7..15 of each org: no other test module uses them (drills.py and the configs stay
# on users 1..6), so the drill's outcome does not depend on what ran before it.
CAST = [f"org{org}-user{n}" for n in range(7, 16) for org in (1, 2, 3)]
PUBLISHER = CAST[0]  # org1-user7
MEMBERS = CAST[1:6]  # org2-user7, org3-user7, org1-user8, org2-user8, org3-user8
PROVIDERS = CAST[6:26]  # 20 identities, 6 or 7 per org
ADMINS = ["org1-admin", "org2-admin", "org3-admin"]
ROLE_OF = {
    PUBLISHER: "publisher",
    **dict.fromkeys(MEMBERS, "committee"),
    **dict.fromkeys(PROVIDERS, "provider"),
}


def rejected_by_plan(provider: int, round_no: int) -> bool:
    """4 of the 20 updates of each round are designed to be rejected (a different 4 each round)."""
    return (provider + round_no) % 5 == 0


def verdict_of(provider: int, member: int, round_no: int) -> dict:
    if rejected_by_plan(provider, round_no):
        return {"score": round(0.10 + 0.03 * member, 2), "accept": False}
    return {"score": round(0.80 + 0.03 * member, 2), "accept": True}


# ----------------------------------------------------------------------------- counting


@dataclass
class Call:
    """One logical transaction: one ``Agent.submit`` call, with every try it made."""

    fn: str
    user: str
    attempts: int = 0  # submit_transaction calls (endorse, order, commit)
    endorsements: int = 0  # Endorse RPCs (the client retries a transient endorsement failure itself)
    codes: Counter = field(default_factory=Counter)  # validation codes of tries that did not commit
    invalid_txids: list[tuple[str, str]] = field(default_factory=list)
    unknown_txids: list[str] = field(default_factory=list)  # tries that ended on a gateway error
    refusals: list[str] = field(default_factory=list)  # chaincode messages (then re-checked)
    skipped: bool = False  # done() found the effect on the ledger
    txid: str | None = None
    block: int | None = None
    error: str | None = None
    seconds: float = 0.0  # from the call to its end, retries and ledger checks included
    commit_seconds: float | None = None  # of the try that committed


@dataclass
class TxStats:
    calls: int = 0
    committed: int = 0
    moot: int = 0
    attempts: int = 0
    retries: int = 0
    endorse_retries: int = 0
    gateway_errors: int = 0
    refused_then_moot: int = 0
    codes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    commit_seconds: list[float] = field(default_factory=list)
    wall: float = 0.0


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stats: dict[str, TxStats] = {}
        self.calls: list[Call] = []

    def _get(self, fn: str) -> TxStats:
        return self.stats.setdefault(fn, TxStats())

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            s = self._get(call.fn)
            s.calls += 1
            s.attempts += call.attempts
            s.retries += max(0, call.attempts - 1)
            s.endorse_retries += max(0, call.endorsements - call.attempts)
            s.gateway_errors += len(call.unknown_txids)
            s.codes.update(call.codes)
            if call.error is not None:
                s.failures.append(f"{call.user}: {call.error}")
            elif call.txid is not None:
                s.committed += 1
                s.seconds.append(call.seconds)
                s.commit_seconds.append(call.commit_seconds or 0.0)
            else:
                s.moot += 1
                s.refused_then_moot += bool(call.refusals)

    def add_wall(self, fn: str, seconds: float) -> None:
        with self.lock:
            self._get(fn).wall += seconds


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    ys = sorted(xs)
    return ys[max(0, math.ceil(q * len(ys)) - 1)]


# ----------------------------------------------------------------------------- submitters


class _CountingContract:
    """The submitter's Contract, counting what each try of the call in progress did."""

    def __init__(self, contract, owner: Submitter) -> None:
        self._contract = contract
        self._owner = owner

    def __getattr__(self, name):
        return getattr(self._contract, name)

    def submit_transaction(self, fn, *args, **kwargs):
        call = self._owner.call
        call.attempts += 1
        started = time.perf_counter()
        try:
            res = self._contract.submit_transaction(fn, *args, **kwargs)
        except CommitError as exc:
            call.codes[exc.validation_code] += 1
            call.invalid_txids.append((exc.txid or "", exc.validation_code))
            raise
        except ContractError as exc:
            call.refusals.append(exc.chaincode_message)
            raise
        except GatewayError as exc:
            call.unknown_txids.append(exc.txid or "")
            raise
        call.commit_seconds = time.perf_counter() - started
        call.txid, call.block = res.txid, res.block_number
        return res


class Submitter:
    """One identity with its own Gateway connection, and what ``Agent.submit`` uses of an agent:
    ``client`` (it submits through ``client.contract``), ``log`` (it reports skips and retries) and
    ``current_round`` (it tags the ``submitted`` record)."""

    current_round = 0

    def __init__(self, profile, user: str, tally: Tally) -> None:
        self.user, self.tally = user, tally
        self.gateway = Gateway.connect(profile, user=user)
        rpc = self.gateway._call

        def counting_call(name, *args, **kwargs):
            if name == "Endorse" and self.call is not None:
                self.call.endorsements += 1
            return rpc(name, *args, **kwargs)

        self.gateway._call = counting_call  # count the client's own endorsement retries
        self.call: Call | None = None
        self.client = FedcommitteeClient(_CountingContract(self.gateway.network().contract(), self))
        self.key = self.client.who_am_i()["identity"]

    def log(self, event: str, level: str = "info", **fields) -> None:
        if event == "skip_submit" and self.call is not None:
            self.call.skipped = True

    def submit(self, fn: str, *args: str, done) -> Call:
        call = self.call = Call(fn, self.user)
        started = time.perf_counter()
        try:
            # The raw transaction (this test drives the contract directly), through the agents' submit.
            Agent.submit(
                self, lambda *wire: self.client.contract.submit_transaction(fn, *wire), *args, done=done
            )
        except Exception as exc:  # noqa: BLE001 (a final failure: counted, and asserted to be none)
            call.error = f"{type(exc).__name__}: {exc}"[:300]
        call.seconds = time.perf_counter() - started
        self.call = None
        self.tally.add(call)
        return call

    def close(self) -> None:
        self.gateway.close()


def concurrently(tally: Tally, fn: str, jobs: list) -> list[Call]:
    """Run each job (a callable returning the Calls it made) in its own thread, all released at
    once; the phase's wall time counts towards ``fn``'s throughput."""
    barrier = threading.Barrier(len(jobs) + 1)
    results: list[list[Call]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def run(i, job):
        barrier.wait()
        try:
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(600)
    tally.add_wall(fn, time.perf_counter() - started)
    assert not any(t.is_alive() for t in threads), f"{fn}: a thread did not finish in 600 s"
    if errors:
        raise errors[0]
    return [c for r in results for c in r]


def settle(ledger: DrillLedger, calls: list[Call]) -> None:
    """Wait until every peer has the last block any of ``calls`` committed in."""
    blocks = [c.block for c in calls if c.block is not None]
    if blocks:
        ledger.sync(max(blocks), timeout=60)


# ----------------------------------------------------------------------------- the protocol


def aggregate_bytes(client: FedcommitteeClient, model_id: str, round_no: int) -> bytes:
    """The round's aggregate, recomputed by anyone from the ledger: global model + accepted set."""
    rd = client.get_round(model_id, round_no)
    lines = [f"load-drill aggregate of {model_id} round {round_no}", f"global {rd['global']['sha256']}"]
    for uid in rd["accepted"]:
        u = client.get_update(uid)
        assert u["status"] == "accepted" and u["round"] == round_no, u
        lines.append(f"{uid} {u['sha256']} {u['numSamples']}")
    return "\n".join(lines).encode()


def has_role(sub: Submitter, admin: Submitter, role: str) -> bool:
    try:
        return role in (admin.client.get_account(sub.key).get("roles") or [])
    except ContractError:  # no account yet
        return False


@dataclass
class Drill:
    ledger: DrillLedger
    model_id: str
    subs: dict[str, Submitter]
    stores: dict[str, ContentStore]
    tally: Tally
    planned: dict[int, dict[str, dict]] = field(default_factory=dict)  # round -> provider key -> object

    def grant_roles(self) -> None:
        def admin_job(admin: str):
            a = self.subs[admin]
            mine = [u for u in ROLE_OF if u.split("-")[0] == admin.split("-")[0]]
            out = []
            for user in mine:
                sub, role = self.subs[user], ROLE_OF[user]
                out.append(
                    a.submit(
                        "GrantRole", sub.key, role, done=lambda sub=sub, role=role: has_role(sub, a, role)
                    )
                )
            return out

        settle(self.ledger, concurrently(self.tally, "GrantRole", [lambda a=a: admin_job(a) for a in ADMINS]))

    def publish(self) -> None:
        pub = self.subs[PUBLISHER]
        keys = SimpleNamespace(key=lambda user: self.subs[user].key)
        spec = model_spec(
            keys,
            self.stores[PUBLISHER],
            self.model_id,
            quorum=QUORUM,
            committee_users=MEMBERS,
            threshold=THRESHOLD,
            federated_rules={"minAccepted": 1, "deadlineSeconds": 3600, "maxRounds": ROUNDS, "maxParents": 0},
        )

        def published() -> bool:
            try:
                return pub.client.get_model(self.model_id) is not None
            except ContractError:
                return False

        started = time.perf_counter()
        call = pub.submit("PublishModel", json.dumps(spec, separators=(",", ":")), done=published)
        self.tally.add_wall("PublishModel", time.perf_counter() - started)
        settle(self.ledger, [call])

    def approve(self) -> None:
        def member_job(j: int, user: str):
            m = self.subs[user]

            def voted() -> bool:
                if m.client.get_model(self.model_id)["status"] != "proposed":
                    return True  # the quorum activated it without us
                return any(v.get("member") == m.key for v in m.client.get_model_votes(self.model_id) or [])

            return [m.submit("ApproveModel", self.model_id, str(0.5 + 0.01 * j), done=voted)]

        jobs = [lambda j=j, u=u: member_job(j, u) for j, u in enumerate(MEMBERS)]
        settle(self.ledger, concurrently(self.tally, "ApproveModel", jobs))

    def submit_updates(self, r: int) -> None:
        g = self.subs[PUBLISHER].client.get_model(self.model_id)["global"]

        def provider_job(i: int, user: str):
            p = self.subs[user]
            data = f"{self.model_id} round {r} provider {i} ({user}) {uuid.uuid4().hex}".encode()
            obj = self.stores[user].put(data)
            doc = {
                "round": r,
                "baseCid": g["cid"],
                "baseSha256": g["sha256"],
                "cid": obj.cid,
                "sha256": obj.sha256_hex,
                "numSamples": 100 + i,
                "metrics": {"loss": 0.5 - 0.01 * i},
            }
            self.planned.setdefault(r, {})[p.key] = {"i": i, "cid": obj.cid, "sha256": obj.sha256_hex}

            def submitted() -> bool:
                mine = p.client.iter_provider_updates(self.model_id, p.key)
                return any(u["round"] == r for u in mine)

            return [p.submit("SubmitUpdate", self.model_id, json.dumps(doc), done=submitted)]

        jobs = [lambda i=i, u=u: provider_job(i, u) for i, u in enumerate(PROVIDERS)]
        settle(self.ledger, concurrently(self.tally, "SubmitUpdate", jobs))

    def judge(self, r: int) -> None:
        index = {k: v["i"] for k, v in self.planned[r].items()}

        def member_job(j: int, user: str):
            m = self.subs[user]
            updates = sorted(m.client.iter_round_updates(self.model_id, r), key=lambda u: u["id"])
            assert len(updates) == len(PROVIDERS), f"{user} sees {len(updates)} updates of round {r}"
            out = []
            for u in updates:
                uid = u["id"]

                def judged(uid=uid) -> bool:
                    if m.client.get_update(uid)["status"] != "pending":
                        return True  # finalized by the quorum without us: our verdict is moot
                    return any(v.get("member") == m.key for v in m.client.get_verdicts(uid) or [])

                doc = verdict_of(index[u["provider"]], j, r)
                out.append(m.submit("SubmitVerdict", uid, json.dumps(doc), done=judged))
            return out

        jobs = [lambda j=j, u=u: member_job(j, u) for j, u in enumerate(MEMBERS)]
        settle(self.ledger, concurrently(self.tally, "SubmitVerdict", jobs))

    def close_and_record(self, r: int) -> None:
        pub = self.subs[PUBLISHER]
        started = time.perf_counter()
        call = pub.submit(
            "CloseRound",
            self.model_id,
            str(r),
            done=lambda: pub.client.get_round(self.model_id, r)["status"] != "open",
        )
        self.tally.add_wall("CloseRound", time.perf_counter() - started)
        settle(self.ledger, [call])
        started = time.perf_counter()
        obj = self.stores[PUBLISHER].put(aggregate_bytes(pub.client, self.model_id, r))

        def recorded() -> bool:
            cands = pub.client.get_aggregates(self.model_id, r) or []
            return any(c.get("recordedBy") == pub.key for c in cands)

        call = pub.submit(
            "RecordAggregate",
            self.model_id,
            str(r),
            json.dumps({"cid": obj.cid, "sha256": obj.sha256_hex}),
            done=recorded,
        )
        self.tally.add_wall("RecordAggregate", time.perf_counter() - started)
        settle(self.ledger, [call])

    def confirm(self, r: int) -> None:
        def member_job(j: int, user: str):
            m = self.subs[user]
            sha = hashlib.sha256(aggregate_bytes(m.client, self.model_id, r)).hexdigest()
            cands = m.client.get_aggregates(self.model_id, r) or []
            assert [c["sha256"] for c in cands] == [sha], f"{user}: candidates {cands} vs recomputed {sha}"

            def confirmed() -> bool:
                if m.client.get_round(self.model_id, r)["status"] != "closed":
                    return True  # the quorum confirmed it without us
                cands = m.client.get_aggregates(self.model_id, r) or []
                return any(
                    c.get("member") == m.key for cand in cands for c in cand.get("confirmations") or []
                )

            doc = {"sha256": sha, "score": round(0.7 + 0.01 * j, 2)}
            return [m.submit("ConfirmAggregate", self.model_id, str(r), json.dumps(doc), done=confirmed)]

        jobs = [lambda j=j, u=u: member_job(j, u) for j, u in enumerate(MEMBERS)]
        settle(self.ledger, concurrently(self.tally, "ConfirmAggregate", jobs))


# ----------------------------------------------------------------------------- blocks


def our_transactions(ledger: DrillLedger, first: int, end: int, keys: set[str]) -> dict[str, str]:
    """txid -> validation code name of every endorser transaction by one of ``keys`` in [first, end)."""
    out = {}
    for number in range(first, end):
        blk = ledger.block(number)
        flags = blk.metadata.metadata[common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER]
        for i, raw in enumerate(blk.data.data):
            payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(raw).payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if header.type != common_pb2.HeaderType.ENDORSER_TRANSACTION:
                continue
            creator = identities_pb2.SerializedIdentity.FromString(
                common_pb2.SignatureHeader.FromString(payload.header.signature_header).creator
            )
            key = identity_key(creator.mspid, x509.load_pem_x509_certificate(creator.id_bytes))
            if key in keys:
                out[header.tx_id] = transaction_pb2.TxValidationCode.Name(flags[i])
    return out


# ----------------------------------------------------------------------------- the test


ORDER = ["GrantRole", "PublishModel", "ApproveModel", "SubmitUpdate", "SubmitVerdict", "CloseRound"]
ORDER += ["RecordAggregate", "ConfirmAggregate"]


def summary_table(tally: Tally, wall: float, blocks: int, txs_in_blocks: int, max_per_block: int) -> str:
    head = (
        f"{'transaction':<17}{'calls':>6}{'commit':>7}{'moot':>6}{'tries':>7}{'retry':>6}{'mvcc':>6}"
        f"{'phant':>6}{'endrs':>6}{'gwerr':>6}{'fail':>5}{'p50 ms':>8}{'p95 ms':>8}{'c-p50':>7}{'tx/s':>7}"
    )
    rows = [head, "-" * len(head)]
    total = TxStats()
    for fn in ORDER + sorted(set(tally.stats) - set(ORDER)):
        s = tally.stats.get(fn)
        if s is None:
            continue
        rows.append(
            f"{fn:<17}{s.calls:>6}{s.committed:>7}{s.moot:>6}{s.attempts:>7}{s.retries:>6}"
            f"{s.codes['MVCC_READ_CONFLICT']:>6}{s.codes['PHANTOM_READ_CONFLICT']:>6}{s.endorse_retries:>6}"
            f"{s.gateway_errors:>6}{len(s.failures):>5}{1000 * pct(s.seconds, 0.5):>8.0f}"
            f"{1000 * pct(s.seconds, 0.95):>8.0f}{1000 * pct(s.commit_seconds, 0.5):>7.0f}"
            f"{s.committed / s.wall if s.wall else 0:>7.1f}"
        )
        for name in ("calls", "committed", "moot", "attempts", "retries", "endorse_retries"):
            setattr(total, name, getattr(total, name) + getattr(s, name))
        total.gateway_errors += s.gateway_errors
        total.codes.update(s.codes)
        total.failures += s.failures
        total.seconds += s.seconds
        total.commit_seconds += s.commit_seconds
    rows.append("-" * len(head))
    rows.append(
        f"{'all':<17}{total.calls:>6}{total.committed:>7}{total.moot:>6}{total.attempts:>7}{total.retries:>6}"
        f"{total.codes['MVCC_READ_CONFLICT']:>6}{total.codes['PHANTOM_READ_CONFLICT']:>6}"
        f"{total.endorse_retries:>6}{total.gateway_errors:>6}{len(total.failures):>5}"
        f"{1000 * pct(total.seconds, 0.5):>8.0f}{1000 * pct(total.seconds, 0.95):>8.0f}"
        f"{1000 * pct(total.commit_seconds, 0.5):>7.0f}{total.committed / wall:>7.1f}"
    )
    other = {k: v for k, v in total.codes.items() if k not in ("MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT")}
    legend = [
        f"load drill: {len(PROVIDERS)} providers, {len(MEMBERS)} committee members (quorum {QUORUM}), "
        f"{ROUNDS} rounds, {wall:.1f} s; {blocks} blocks, {txs_in_blocks} of our transactions in them "
        f"(at most {max_per_block} in one block)",
        *rows,
        "calls = logical transactions (one Agent.submit each); commit = committed by this call; moot = the "
        "ledger already had the effect (quorum reached without this member); tries = submit attempts; "
        "retry = tries after the first; mvcc/phant = MVCC_READ_CONFLICT/PHANTOM_READ_CONFLICT commits seen "
        "and retried; endrs = endorsements the client retried itself; gwerr = other gateway errors retried; "
        "fail = calls that failed in the end; p50/p95 = call latency (committed calls, retries included); "
        "c-p50 = latency of the committing try; tx/s = committed per second of the phases running it.",
    ]
    if other:
        legend.append(f"other validation codes seen: {dict(other)}")
    return "\n".join(legend)


@pytest.fixture(scope="module")
def load_drill(local_network, fabric):
    ledger = DrillLedger(fabric)
    missing = [u for u in [*CAST[:26], *ADMINS] if u not in ledger.profile.identities]
    assert not missing, (
        f"the connection profile lacks {missing}: network/fabric/crypto-config.yaml needs 15 users"
    )
    tally = Tally()
    subs: dict[str, Submitter] = {}
    clients: list[IpfsClient] = []
    try:
        for user in [*ADMINS, PUBLISHER, *MEMBERS, *PROVIDERS]:
            subs[user] = Submitter(ledger.profile, user, tally)
        stores = {}
        for user in [PUBLISHER, *PROVIDERS]:  # one IPFS client per thread that writes
            clients.append(IpfsClient(local_network["ipfs_api"], timeout=60))
            stores[user] = ContentStore(clients[-1])
        model_id = f"load-{uuid.uuid4().hex[:8]}"
        drill = Drill(ledger, model_id, subs, stores, tally)
        first_block = ledger.height(1)
        started = time.perf_counter()
        drill.grant_roles()
        drill.publish()
        drill.approve()
        rounds = []
        for r in range(1, ROUNDS + 1):
            t0 = time.perf_counter()
            drill.submit_updates(r)
            drill.judge(r)
            drill.close_and_record(r)
            drill.confirm(r)
            rounds.append(time.perf_counter() - t0)
        wall = time.perf_counter() - started
        end_block = ledger.height(1)
        keys = {s.key for s in subs.values()}
        in_blocks = our_transactions(ledger, first_block, end_block, keys)
        per_block = Counter()
        for number in range(first_block, end_block):
            blk = ledger.block(number)
            per_block[number] = len(blk.data.data)
        yield SimpleNamespace(
            ledger=ledger,
            model_id=model_id,
            drill=drill,
            tally=tally,
            wall=wall,
            rounds=rounds,
            in_blocks=in_blocks,
            blocks=end_block - first_block,
            max_per_block=max(per_block.values(), default=0),
            ipfs_api=local_network["ipfs_api"],
        )
    finally:
        for s in subs.values():
            s.close()
        for c in clients:
            c.close()
        ledger.close()


def test_load_summary_and_no_failures(load_drill):
    d = load_drill
    table = summary_table(d.tally, d.wall, d.blocks, len(d.in_blocks), d.max_per_block)
    table += "\nround wall times: " + ", ".join(f"{s:.1f} s" for s in d.rounds)
    print("\n" + table)
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "load-summary.txt").write_text(table + "\n")

    failures = [f for s in d.tally.stats.values() for f in s.failures]
    assert not failures, failures
    # Every conflict a submitter saw is an invalid transaction in the blocks with that code, and
    # every invalid transaction of ours in the blocks was seen (or its try ended on a gateway error)
    # and retried: none is left unhandled.
    seen = {txid: code for c in d.tally.calls for txid, code in c.invalid_txids}
    unknown = {txid for c in d.tally.calls for txid in c.unknown_txids}
    assert all(code in RETRY_CODES for code in seen.values()), seen
    for txid, code in seen.items():
        assert d.in_blocks.get(txid) == code, (txid, code, d.in_blocks.get(txid))
    invalid = {txid: code for txid, code in d.in_blocks.items() if code != "VALID"}
    unhandled = {txid: code for txid, code in invalid.items() if txid not in seen and txid not in unknown}
    assert not unhandled, unhandled
    committed = {c.txid for c in d.tally.calls if c.txid}
    assert committed == {txid for txid, code in d.in_blocks.items() if code == "VALID"}

    s = d.tally.stats
    n = len(PROVIDERS) * ROUNDS
    assert s["SubmitUpdate"].committed == n
    assert s["SubmitVerdict"].committed == QUORUM * n
    assert s["SubmitVerdict"].calls == len(MEMBERS) * n
    assert s["ConfirmAggregate"].committed == QUORUM * ROUNDS
    assert s["CloseRound"].committed == s["RecordAggregate"].committed == ROUNDS
    assert s["ApproveModel"].committed == QUORUM


def test_load_final_state(load_drill):
    d = load_drill
    drill, mid = d.drill, d.model_id
    q = d.ledger.client("org1-admin")
    model = q.get_model(mid)
    assert model["status"] == "finished" and model["stopReason"] == "maxRounds", model
    assert int(model["currentRound"]) == ROUNDS
    member_keys = [drill.subs[u].key for u in MEMBERS]
    assert [seat["member"] for seat in model["committee"]] == member_keys
    verdicts_by_member: Counter = Counter()
    objects = []
    outcomes: dict[str, list[str]] = {}
    for r in range(1, ROUNDS + 1):
        plan = drill.planned[r]
        updates = list(q.iter_round_updates(mid, r))
        # Every update recorded once: one per provider, with the object the provider put.
        assert sorted(u["provider"] for u in updates) == sorted(plan), f"round {r}"
        assert len({u["id"] for u in updates}) == len(PROVIDERS)
        expected_accepted = []
        for u in updates:
            p = plan[u["provider"]]
            assert (u["cid"], u["sha256"], u["round"]) == (p["cid"], p["sha256"], r), u
            want = "rejected" if rejected_by_plan(p["i"], r) else "accepted"
            assert u["status"] == want, (r, p["i"], u["status"])
            outcomes.setdefault(u["provider"], []).append(u["status"])
            if want == "accepted":
                expected_accepted.append(u["id"])
            # Every verdict recorded once: exactly the quorum, from distinct seated members.
            vs = q.get_verdicts(u["id"])
            members = [v["member"] for v in vs]
            assert len(members) == QUORUM == len(set(members)) and set(members) <= set(member_keys), vs
            verdicts_by_member.update(members)
            objects.append((f"round {r} update {u['id']}", u["cid"], u["sha256"]))
        rd = q.get_round(mid, r)
        assert rd["status"] == "done", rd
        assert rd["accepted"] == sorted(expected_accepted), f"round {r} accepted set"
        agg = aggregate_bytes(q, mid, r)
        assert rd["aggregate"]["sha256"] == hashlib.sha256(agg).hexdigest(), f"round {r} aggregate"
        cands = q.get_aggregates(mid, r)
        assert len(cands) == 1 and cands[0]["recordedBy"] == drill.subs[PUBLISHER].key, cands
        confirmers = [c["member"] for c in cands[0]["confirmations"]]
        assert len(confirmers) == QUORUM == len(set(confirmers)) and set(confirmers) <= set(member_keys)
        objects.append((f"round {r} aggregate", rd["aggregate"]["cid"], rd["aggregate"]["sha256"]))
        if r < ROUNDS:
            assert q.get_round(mid, r + 1)["global"] == rd["aggregate"]
    # Each member's verdicts on the ledger are exactly those it committed (no duplicate, none lost).
    committed_by = Counter(
        drill.subs[c.user].key for c in d.tally.calls if c.fn == "SubmitVerdict" and c.txid is not None
    )
    assert verdicts_by_member == committed_by
    # The leaderboard agrees with the outcomes and the verdicts.
    board = {e["identity"]: e for e in q.get_leaderboard(mid)}
    for prov, sts in outcomes.items():
        assert board[prov]["accepted"] == sts.count("accepted"), prov
        assert board[prov]["rejected"] == sts.count("rejected"), prov
    for key, n in verdicts_by_member.items():
        assert board[key]["verdicts"] == n
    # Every object is in IPFS with the recorded sha256.
    with IpfsClient(d.ipfs_api, timeout=60) as ipfs:
        store = ContentStore(ipfs, pin=False)
        for where, cid, sha in objects:
            assert store.get(cid, sha, 1 << 20), where
    print(
        f"\nload drill final state: {len(objects)} objects re-verified from IPFS, "
        f"{sum(verdicts_by_member.values())} verdicts, {sum(len(v) for v in outcomes.values())} updates"
    )
