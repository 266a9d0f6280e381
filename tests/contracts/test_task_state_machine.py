"""TaskRegistry against a Python model, over random call sequences by right and wrong callers.

Each example starts from the same chain snapshot and creates one task with 2-3
participants drawn from four nodes: bank-a's node (the creator's, on bank-a's own data
without a grant, or without any data), two bank-b nodes naming one bank-b grant (either
a two-use one, or a single-use one that the second acceptance exhausts) and the
regulator's node under its own grant. It then drives the task with random accept /
refuse / anchorInput / anchorCheckpoint / submitResult (digests from a set of two, so
participants sometimes disagree) / reportFailure / expire / revoke / time travel, by
the task's participants and by wrong callers. The model predicts every step's outcome
(the exact custom error, or the new state and the failure reason); after every step the
chain must agree with the model and with the lifecycle's invariants."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3.types import TxReceipt

from ledger import transactions
from ledger.clients import Clients
from ledger.clients.tasks import MIN_REPORTED_REASON, Participant, Reason, TaskState
from ledger.errors import ContractRevert, custom_error
from ledger.ids import name_id, task_id_for
from tests.conftest import Consortium
from tests.contracts.helpers import (  # _fast_senders: autouse fixture
    ALGO,
    EVIDENCE,
    HOUR,
    PARAMS,
    RESULT_1,
    RESULT_2,
    ZERO32,
    _fast_senders,  # noqa: F401
    add_node,
    approve_algorithm,
    eth_tester,
    make_grant,
    now,
    register_dataset,
    travel_to,
)

TERMINAL = {TaskState.COMPLETED, TaskState.DISPUTED, TaskState.FAILED, TaskState.EXPIRED}
CHECKPOINT = name_id("checkpoint", "digest")
OWN_COMMITMENT = name_id("commitment", "aggregator")
WRONG_ROOT = name_id("merkle-root", "wrong")
REASONS = st.sampled_from([int(r) for r in Reason])
# Result digests by name, so that a failing example prints readably.
DIGESTS = {"R1": RESULT_1, "R2": RESULT_2, "zero": ZERO32}
GOOD_DIGEST = st.sampled_from(["R1", "R2"]).map(DIGESTS.__getitem__)
ANY_DIGEST = st.sampled_from(list(DIGESTS)).map(DIGESTS.__getitem__)


@dataclass(frozen=True)
class Candidate:
    """A node that may take part, and what it names when it does."""

    key: str
    org: str
    account: LocalAccount
    clients: Clients
    participant: Participant
    commitment: bytes  # what anchorInput must carry


@dataclass
class World:
    """What every example starts from: the chain snapshot and the actors on it."""

    c: Consortium
    snapshot: int
    # "a" (own data), "a0" (no data), "b1", "b2" (shared grant), "b1-tight", "b2-tight"
    # (shared single-use grant), "r"
    candidates: dict[str, Candidate]
    callers: dict[str, tuple[LocalAccount, Clients]]
    grants: dict[bytes, int]  # grant id -> max uses
    grantors: dict[bytes, str]  # grant id -> owner org


def build_world(c: Consortium) -> World:
    approve_algorithm(c)
    orgs = c.orgs
    ds_a = register_dataset(orgs["bank-a"], "a-data")
    ds_b = register_dataset(orgs["bank-b"], "b-data")
    ds_r = register_dataset(orgs["regulator"], "r-data")
    grant_b = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=2)  # enough for b1 and b2
    grant_tight = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=1)  # b1 and b2 exhaust it
    grant_r = make_grant(c, "regulator", ds_r.dataset_id, max_uses=5)
    b2 = add_node(c, "bank-b")
    a_node, b_node, r_node = orgs["bank-a"].node, orgs["bank-b"].node, orgs["regulator"].node

    def cand(key: str, org: str, account: LocalAccount, p: Participant, com: bytes) -> Candidate:
        return Candidate(key, org, account, c.clients_for(account), p, com)

    candidates = {
        "a": cand(
            "a", "bank-a", a_node, Participant(a_node.address, ds_a.dataset_id, 1), ds_a.root
        ),
        "a0": cand("a0", "bank-a", a_node, Participant(a_node.address), OWN_COMMITMENT),
        **{
            f"{key}{suffix}": cand(
                key,
                "bank-b",
                account,
                Participant(account.address, ds_b.dataset_id, 1, grant),
                ds_b.root,
            )
            for key, account in (("b1", b_node), ("b2", b2.account))
            for suffix, grant in (("", grant_b), ("-tight", grant_tight))
        },
        "r": cand(
            "r",
            "regulator",
            r_node,
            Participant(r_node.address, ds_r.dataset_id, 1, grant_r),
            ds_r.root,
        ),
    }
    outsider = c.new_funded_account()
    callers: dict[str, tuple[LocalAccount, Clients]] = {
        k: (v.account, v.clients) for k, v in candidates.items() if k in ("a", "b1", "b2", "r")
    }
    callers["bank-a-admin"] = (orgs["bank-a"].admin, c.clients_for(orgs["bank-a"].admin))
    callers["bank-b-admin"] = (orgs["bank-b"].admin, c.clients_for(orgs["bank-b"].admin))
    callers["outsider"] = (outsider, c.clients_for(outsider))
    snapshot = int(eth_tester(c).take_snapshot())
    return World(
        c,
        snapshot,
        candidates,
        callers,
        {grant_b: 2, grant_tight: 1, grant_r: 5},
        {grant_b: "bank-b", grant_tight: "bank-b", grant_r: "regulator"},
    )


@dataclass
class SeatModel:
    cand: Candidate
    accepted: bool = False
    input: bool = False
    result: bytes | None = None
    next_round: int | None = None


@dataclass
class Outcome:
    error: str | None = None  # the custom error expected, or None for success
    state: TaskState | None = None  # the state expected afterwards when it changes
    reason: int | None = None  # TaskFailed reason expected in the receipt


@dataclass
class Model:
    seats: list[SeatModel]
    state: TaskState = TaskState.CREATED
    used: dict[bytes, int] = field(default_factory=dict)
    revoked: set[bytes] = field(default_factory=set)
    past_deadline: bool = False

    def seat_of(self, address: str) -> SeatModel | None:
        return next((s for s in self.seats if s.cand.account.address == address), None)

    def lapse(self) -> int:
        grants = {s.cand.participant.grant_id for s in self.seats}
        return int(Reason.GRANT_REVOKED) if grants & self.revoked else 0


# Who makes a call: "seat<i>" is the task's i-th participant (modulo their number), the
# others are fixed accounts that may or may not take part in the task.
WHO = st.sampled_from(
    ["seat0", "seat1", "seat2"] * 2
    + ["a", "b1", "b2", "r", "bank-a-admin", "bank-b-admin", "outsider"]
)
# What happens next. "progress" is one participant's next sensible step, "advance" every
# participant's, so that examples get to the end; the other actions are random calls
# (with random, often wrong, callers and arguments). Calm examples leave out the actions
# that end or poison a task (refusal, failure report, deadline, revocation).
CALM_ACTIONS = [
    *["progress"] * 4,
    *["advance"] * 3,
    "accept",
    "anchor_input",
    *["anchor_checkpoint"] * 2,
    "submit_result",
    "expire",
]
DISRUPTIONS = ["refuse", "report_failure", "deadline_passes", "expire", "revoke"]


class TaskMachine(RuleBasedStateMachine):
    world: World  # set on the subclass made per test

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        eth_tester(w.c).revert_to_snapshot(w.snapshot)
        transactions.reset_nonces()
        self.c = w.c
        self.tasks = w.c.orgs["bank-a"].clients.tasks
        self.auth = w.c.orgs["bank-a"].clients.authorizations
        self.model: Model | None = None
        self.actions: list[str] = CALM_ACTIONS
        self.terminal: TaskState | None = None
        self.request_id = name_id("task", "machine")
        self.task_id = task_id_for(w.c.orgs["bank-a"].org_id, self.request_id)
        self.deadline = 0

    # ------------------------------------------------------------------ setup

    @initialize(
        keys=st.lists(st.sampled_from(["a", "b1", "b2", "r"]), min_size=2, max_size=3, unique=True),
        a_without_data=st.booleans(),
        tight_grant=st.booleans(),
        calm=st.booleans(),
    )
    def create(self, keys: list[str], a_without_data: bool, tight_grant: bool, calm: bool) -> None:
        variants = {"a": "a0" if a_without_data else "a"}
        if tight_grant:
            variants |= {"b1": "b1-tight", "b2": "b2-tight"}
        cands = [self.world.candidates[variants.get(k, k)] for k in keys]
        self.deadline = now(self.c) + HOUR
        self.tasks.create(
            self.request_id, ALGO, PARAMS, self.deadline, [x.participant for x in cands]
        )
        self.model = Model([SeatModel(x) for x in cands])
        self.model.used = {g: 0 for g in self.world.grants}
        self.actions = CALM_ACTIONS if calm else CALM_ACTIONS + DISRUPTIONS

    # ----------------------------------------------------------------- driver

    @property
    def m(self) -> Model:
        assert self.model is not None
        return self.model

    def caller(self, who: str) -> tuple[LocalAccount, Clients]:
        if who.startswith("seat"):
            seat = self.m.seats[int(who[4:]) % len(self.m.seats)]
            return seat.cand.account, seat.cand.clients
        return self.world.callers[who]

    def execute(self, outcome: Outcome, send: Callable[[], TxReceipt]) -> None:
        """Run `send` and check it did what the model expects."""
        if outcome.error is not None:  # (that nothing changed is checked by the invariant)
            with pytest.raises(ContractRevert) as exc:
                send()
            assert exc.value.error_name == outcome.error, exc.value
            return
        receipt = send()
        failed = self.tasks.events_in(receipt, "TaskFailed")
        if outcome.reason is not None:
            assert [e["reasonCode"] for e in failed] == [outcome.reason]
        else:
            assert failed == []
        if outcome.state is not None:
            self.m.state = outcome.state

    def running_prologue(self, seat: SeatModel | None) -> Outcome | None:
        """The checks every anchoring step starts with; None if the step goes on."""
        m = self.m
        if seat is None:
            return Outcome("NotParticipant")
        if m.state != TaskState.RUNNING:
            return Outcome("InvalidTaskState")
        if m.past_deadline:
            return Outcome("DeadlinePassed")
        reason = m.lapse()
        if reason:
            return Outcome(None, TaskState.FAILED, reason)
        return None

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        action = data.draw(st.sampled_from(self.actions), label="action")
        if action in ("progress", "advance"):
            seats = self.pending_seats()
            if action == "progress" and seats:
                seats = [seats[data.draw(st.integers(0, 2), label="seat") % len(seats)]]
            for seat in seats:
                if self.m.state not in TERMINAL:
                    self.progress(seat, data.draw(GOOD_DIGEST, "digest"))
            return
        if action == "deadline_passes":
            self.deadline_passes()
        elif action == "revoke":
            self.revoke(data.draw(st.integers(0, 2), label="grant"))
        else:
            account, clients = self.caller(data.draw(WHO, label="who"))
            getattr(self, action)(account, clients, data)

    # ---------------------------------------------------------------- actions

    def accept(self, account: LocalAccount, clients: Clients, _: object = None) -> None:
        m, seat = self.m, self.m.seat_of(account.address)
        grant = seat.cand.participant.grant_id if seat else ZERO32
        if seat is None:
            outcome = Outcome("NotParticipant")
        elif m.state != TaskState.CREATED:
            outcome = Outcome("InvalidTaskState")
        elif m.past_deadline:
            outcome = Outcome("DeadlinePassed")
        elif seat.accepted:
            outcome = Outcome("AlreadyAccepted")
        elif grant != ZERO32 and grant in m.revoked:
            outcome = Outcome("GrantIsRevoked")
        elif grant != ZERO32 and m.used[grant] >= self.world.grants[grant]:
            outcome = Outcome("GrantExhausted")
        else:
            starts = sum(s.accepted for s in m.seats) + 1 == len(m.seats)
            if starts and m.lapse():
                # A grant revoked since its holder accepted: the task never starts.
                outcome = Outcome(None, TaskState.FAILED, m.lapse())
            else:
                outcome = Outcome(None, TaskState.RUNNING if starts else None)
        self.execute(outcome, lambda: clients.tasks.accept(self.task_id))
        if outcome.error is None:
            assert seat is not None
            seat.accepted = True
            if grant != ZERO32:
                m.used[grant] += 1

    def refuse(self, account: LocalAccount, clients: Clients, data: st.DataObject) -> None:
        reason = data.draw(REASONS, label="reason")
        seat = self.m.seat_of(account.address)
        if seat is None:
            outcome = Outcome("NotParticipant")
        elif self.m.state != TaskState.CREATED:
            outcome = Outcome("InvalidTaskState")
        else:
            outcome = self.reported(reason)
        self.execute(outcome, lambda: clients.tasks.refuse(self.task_id, reason))

    def reported(self, reason: int) -> Outcome:
        """A caller's reason code: recorded from 100; below, only a lapse the contract
        detects itself (here: a revoked grant) is recorded, with the contract's code."""
        if reason >= MIN_REPORTED_REASON:
            return Outcome(None, TaskState.FAILED, reason)
        lapse = self.m.lapse()
        return Outcome(None, TaskState.FAILED, lapse) if lapse else Outcome("ReservedReasonCode")

    def anchor_input(
        self, account: LocalAccount, clients: Clients, data: st.DataObject | None = None
    ) -> None:
        correct = True if data is None else data.draw(st.booleans(), label="correct")
        seat = self.m.seat_of(account.address)
        has_data = seat is not None and seat.cand.participant.dataset_id != ZERO32
        outcome = self.running_prologue(seat)
        if outcome is None:
            assert seat is not None
            if seat.input:
                outcome = Outcome("InputAlreadyAnchored")
            elif not correct:
                outcome = Outcome("InputCommitmentMismatch" if has_data else "InvalidDigest")
            else:
                outcome = Outcome()
        if correct and seat is not None:
            commitment = seat.cand.commitment
        elif has_data or seat is None:
            commitment = WRONG_ROOT
        else:
            commitment = ZERO32  # the only wrong commitment without a dataset
        self.execute(outcome, lambda: clients.tasks.anchor_input(self.task_id, commitment))
        if outcome.error is None and outcome.state is None:
            assert seat is not None
            seat.input = True

    def anchor_checkpoint(
        self, account: LocalAccount, clients: Clients, data: st.DataObject
    ) -> None:
        round_ = data.draw(st.integers(0, 3), label="round")
        zero = data.draw(st.booleans(), label="zero digest")
        seat = self.m.seat_of(account.address)
        outcome = self.running_prologue(seat)
        if outcome is None:
            assert seat is not None
            if seat.next_round is not None and round_ < seat.next_round:
                outcome = Outcome("CheckpointOutOfOrder")
            elif zero:
                outcome = Outcome("InvalidDigest")
            else:
                outcome = Outcome()
        digest = ZERO32 if zero else CHECKPOINT
        self.execute(outcome, lambda: clients.tasks.anchor_checkpoint(self.task_id, round_, digest))
        if outcome.error is None and outcome.state is None:
            assert seat is not None
            seat.next_round = round_ + 1

    def submit_result(
        self, account: LocalAccount, clients: Clients, data: st.DataObject | bytes
    ) -> None:
        digest = data if isinstance(data, bytes) else data.draw(ANY_DIGEST, label="digest")
        m, seat = self.m, self.m.seat_of(account.address)
        outcome = self.running_prologue(seat)
        if outcome is None:
            assert seat is not None
            if not seat.input:
                outcome = Outcome("InputNotAnchored")
            elif seat.result is not None:
                outcome = Outcome("ResultAlreadySubmitted")
            elif digest == ZERO32:
                outcome = Outcome("InvalidDigest")
            else:
                results = [s.result for s in m.seats if s is not seat] + [digest]
                if None in results:
                    outcome = Outcome()
                elif len(set(results)) == 1:
                    outcome = Outcome(None, TaskState.COMPLETED)
                else:
                    outcome = Outcome(None, TaskState.DISPUTED)
        self.execute(outcome, lambda: clients.tasks.submit_result(self.task_id, digest, EVIDENCE))
        if outcome.error is None and outcome.reason is None:
            assert seat is not None
            seat.result = digest

    def report_failure(self, account: LocalAccount, clients: Clients, data: st.DataObject) -> None:
        reason = data.draw(REASONS, label="reason")
        seat = self.m.seat_of(account.address)
        # the admin and the node of bank-a, the creator, are active members of it
        in_creator_org = account.address in (
            self.c.orgs["bank-a"].admin.address,
            self.c.orgs["bank-a"].node.address,
        )
        if seat is None and not in_creator_org:
            outcome = Outcome("NotParticipant")
        elif self.m.state not in (TaskState.CREATED, TaskState.RUNNING):
            outcome = Outcome("InvalidTaskState")
        else:
            outcome = self.reported(reason)
        self.execute(outcome, lambda: clients.tasks.report_failure(self.task_id, reason))

    def expire(self, _: LocalAccount, clients: Clients, __: object = None) -> None:
        if self.m.state not in (TaskState.CREATED, TaskState.RUNNING):
            outcome = Outcome("InvalidTaskState")
        elif not self.m.past_deadline:
            outcome = Outcome("DeadlineNotReached")
        else:
            outcome = Outcome(None, TaskState.EXPIRED)
        self.execute(outcome, lambda: clients.tasks.expire(self.task_id))

    def deadline_passes(self) -> None:
        if not self.m.past_deadline:
            travel_to(self.c, self.deadline)  # the next transaction is mined at the deadline
            self.m.past_deadline = True

    def revoke(self, which: int) -> None:
        grant = sorted(self.world.grants)[which]
        auth = self.c.orgs[self.world.grantors[grant]].clients.authorizations
        if grant in self.m.revoked:
            with pytest.raises(custom_error("GrantAlreadyRevoked")):
                auth.revoke(grant)
            return
        auth.revoke(grant)
        self.m.revoked.add(grant)

    def pending_seats(self) -> list[SeatModel]:
        """The participants with a sensible next step in the task's state."""
        if self.m.state == TaskState.CREATED:
            return [s for s in self.m.seats if not s.accepted]
        if self.m.state == TaskState.RUNNING:
            return [s for s in self.m.seats if s.result is None]
        return []

    def progress(self, seat: SeatModel, digest: bytes) -> None:
        """The participant's next sensible step: accept, anchor its input, submit."""
        account, clients = seat.cand.account, seat.cand.clients
        if not seat.accepted:
            self.accept(account, clients)
        elif not seat.input:
            self.anchor_input(account, clients)
        elif seat.result is None:
            self.submit_result(account, clients, digest)

    # ------------------------------------------------------------- invariants

    @invariant()
    def chain_agrees_with_model(self) -> None:
        if self.model is None:
            return
        m = self.m
        info = self.tasks.info(self.task_id)
        assert info.state == m.state
        statuses = [
            self.tasks.participant_status(self.task_id, s.cand.account.address) for s in m.seats
        ]
        assert info.accepted_count == sum(s.accepted for s in statuses)
        assert info.result_count == sum(s.result_submitted for s in statuses)
        for seat, status in zip(m.seats, statuses, strict=True):
            assert status.accepted == seat.accepted
            assert status.input_anchored == seat.input
            assert status.result_submitted == (seat.result is not None)
            assert status.result_digest == (seat.result or ZERO32)

        results = {s.result_digest for s in statuses}
        all_submitted = all(s.result_submitted for s in statuses)
        if info.state == TaskState.COMPLETED:
            assert all(s.accepted for s in statuses)
            assert all_submitted and len(results) == 1
        if info.state == TaskState.DISPUTED:
            assert all_submitted and len(results) > 1
        if info.state == TaskState.RUNNING:
            assert all(s.accepted for s in statuses)

        for grant in {s.cand.participant.grant_id for s in m.seats} - {ZERO32}:
            naming = sum(
                st_.accepted
                for seat, st_ in zip(m.seats, statuses, strict=True)
                if seat.cand.participant.grant_id == grant
            )
            assert self.auth.info(grant).used == naming == m.used[grant]

        if self.terminal is not None:
            assert info.state == self.terminal
        elif info.state in TERMINAL:
            self.terminal = info.state
            event(f"reached {info.state.name}")


def run_in_fresh_thread(fn: Callable[[], None]) -> None:
    """Run `fn` in a new thread and re-raise whatever it raised.

    Purely for speed. CPython 3.11 keeps frames in 16 KiB chunks and frees a chunk as soon
    as the frame that opened it returns; at the call depth of pytest plus hypothesis,
    py-evm's opcode loop sat right on a chunk boundary and paid an mmap and a munmap per
    opcode (about half of this test's time was system time). A new thread starts shallow.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="task-state-machine")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_task_lifecycle_matches_model(consortium: Consortium) -> None:
    world = build_world(consortium)

    class Machine(TaskMachine):
        pass

    Machine.world = world
    run_in_fresh_thread(
        lambda: run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=40,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no db, no explain
                stateful_step_count=12,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
    )
