"""The consortium relay's scheduler for anonymous lookups: meter, hold, mix, pad, route.

Why this module exists: key holders (the providers) must evaluate queriers' blinded
elements without learning which bank asked (DESIGN §6). Blinding hides *what* is asked;
the relay hides *who*: queriers submit to the relay, which meters the submission
(``node.lookup.metering``), logs it (``node.lookup.query_log``), holds it, and forwards
**mixed batches** that carry no querier identity, purpose or grant:

* a batch is released only when at least ``min_batch`` elements from at least
  ``min_queriers`` distinct organisations are waiting, or when the oldest waiting
  element has waited ``max_delay`` seconds. A timed-out batch is padded with dummy
  elements up to ``min_batch``: uniformly random ristretto255 points ``r * G`` (from
  ``node.crypto.oprf``), distributed exactly like real blinded elements ``r * H(x)``
  (both uniform over the non-identity points of a prime-order group), so a holder
  cannot tell how many elements in a batch are real;
* batches take the oldest ticket of every waiting organisation first, then fill up in
  arrival order, so a flood from one bank does not push the others out of its batch;
* inside a batch the elements are shuffled with a CSPRNG (``secrets.SystemRandom``), so
  position says nothing about submission order or submitter;
* batch and ticket ids are random, so they carry no order either.

This module is pure scheduling: time comes in as ``now``, randomness is injectable,
nothing talks to the network or the chain. One relay instance serves one key epoch.

**Proofs and what a querier receives.** Each key holder answers a whole forwarded batch
with ``k_i * B`` per element and *one* batched DLEQ proof (RFC 9497 VOPRF proof,
``threshold_oprf.evaluate_share``). That proof covers the whole mixed batch: it cannot
be checked on a subset. Two ways out: holders prove per ticket, or the relay hands each
querier the whole batch. This relay does the latter — every :class:`TicketAnswer`
carries the whole batch's elements, every holder's evaluations and proofs, and the
positions of the ticket's own elements — because per-ticket proofs would tell the
holders which elements were submitted together, i.e. hand them the grouping the relay
exists to hide (and a bank's typical request size can identify it). The price is
bandwidth (``64 * batch size`` bytes per holder per ticket) and verification over the
whole batch (``t * (2m + 4)`` scalar multiplications for a batch of ``m``); what the
querier additionally sees is other queriers' blinded elements and their evaluations,
which are uniformly random and useless without the blinds. The querier checks an answer
with ``node.lookup.epoch.verified_answers`` over :meth:`TicketAnswer.mixed_batch`, the
same check a publisher's own evaluation goes through, which keeps per-holder evaluations
of its own elements only, ready for ``threshold_oprf.combine`` and ``oprf.finalize``.
The relay itself verifies no proof: it is not trusted with integrity, the querier is the
one who must be convinced.

A relay restarted with elements held loses them after they were charged; queriers
resubmit after a timeout (this is a scheduler, persistence of held elements is not).
"""

from __future__ import annotations

import math
import random
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from node.crypto import oprf
from node.crypto.threshold_oprf import ShareEvaluation
from node.lookup.epoch import MixedBatch
from node.lookup.metering import Meter, check_grant_id, check_org, check_purpose
from node.lookup.query_log import QueryLog

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_TICKET",
    "DEFAULT_MIN_BATCH",
    "DEFAULT_MIN_QUERIERS",
    "BatchAlreadyDelivered",
    "EvaluationCountMismatch",
    "ForwardBatch",
    "InvalidEvaluation",
    "InvalidRelayPolicy",
    "InvalidSubmission",
    "Relay",
    "RelayConfigError",
    "RelayError",
    "RelayPolicy",
    "Ticket",
    "TicketAnswer",
    "UnknownBatch",
    "random_element",
]

DEFAULT_MIN_BATCH = 64
DEFAULT_MIN_QUERIERS = 2
DEFAULT_MAX_DELAY = 2.0
DEFAULT_MAX_BATCH = 1024
DEFAULT_MAX_TICKET = 256
# RFC 9497 batches (and so threshold_oprf.evaluate_share) hold at most 2^16 elements.
_OPRF_MAX_BATCH = 2**16
_ID_BYTES = 16


class RelayError(ValueError):
    """Base of this module's errors."""


class InvalidRelayPolicy(RelayError):
    """A policy value out of range; the message names the field."""


class RelayConfigError(RelayError):
    """The relay's collaborators cannot work together (e.g. meter and log databases)."""


class InvalidSubmission(RelayError):
    """A submission the relay refuses before charging or holding anything."""


class UnknownBatch(RelayError):
    """``deliver`` names a batch this relay never forwarded."""


class BatchAlreadyDelivered(RelayError):
    """``deliver`` for a batch whose answers were already routed: a replay."""


class EvaluationCountMismatch(RelayError):
    """A holder answered a different number of elements than the batch holds."""


class InvalidEvaluation(RelayError):
    """A holder's answer is malformed: no answers, duplicate holder, bad element or proof."""


@dataclass(frozen=True)
class RelayPolicy:
    """When the relay may forward, and how large submissions and batches may be.

    * ``min_batch`` (64): fewest elements in a forwarded batch; a timed-out batch is
      padded up to it, so a holder never sees fewer, whatever the load;
    * ``min_queriers`` (2): fewest distinct organisations whose elements a batch must
      mix before ``max_delay``; the anonymity set a holder faces;
    * ``max_delay`` (2 s): longest an element waits; bounds latency, and is when a
      batch goes out even if it mixes fewer organisations (padded);
    * ``max_batch`` (1024): most elements per forwarded batch (holders' proof cost);
    * ``max_ticket`` (256): most elements per submission (at most ``max_batch``, so
      every ticket fits one batch).
    """

    min_batch: int = DEFAULT_MIN_BATCH
    min_queriers: int = DEFAULT_MIN_QUERIERS
    max_delay: float = DEFAULT_MAX_DELAY
    max_batch: int = DEFAULT_MAX_BATCH
    max_ticket: int = DEFAULT_MAX_TICKET

    def __post_init__(self) -> None:
        for name in ("min_batch", "min_queriers", "max_batch", "max_ticket"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRelayPolicy(f"{name} must be a positive integer, got {value!r}")
        delay = self.max_delay
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not math.isfinite(delay)
            or delay <= 0
        ):
            raise InvalidRelayPolicy(
                f"max_delay must be a positive number of seconds, got {delay!r}"
            )
        if self.max_batch > _OPRF_MAX_BATCH:
            raise InvalidRelayPolicy(
                f"max_batch must be at most {_OPRF_MAX_BATCH} (RFC 9497 batch limit), "
                f"got {self.max_batch}"
            )
        if self.min_batch > self.max_batch:
            raise InvalidRelayPolicy(
                f"min_batch ({self.min_batch}) must not exceed max_batch ({self.max_batch})"
            )
        if self.max_ticket > self.max_batch:
            raise InvalidRelayPolicy(
                f"max_ticket ({self.max_ticket}) must not exceed max_batch ({self.max_batch})"
            )


@dataclass(frozen=True)
class Ticket:
    """The querier's receipt for one submission: collect its answer by ``ticket_id``."""

    ticket_id: bytes
    count: int


@dataclass(frozen=True)
class ForwardBatch:
    """What goes to the key holders: an id, the key epoch and shuffled elements. Nothing
    names a querier, a purpose or a grant, and dummies look like real elements."""

    batch_id: bytes
    epoch: int
    elements: tuple[bytes, ...]


@dataclass(frozen=True)
class TicketAnswer:
    """Everything a querier needs to verify and use its answer (see the module docstring).

    ``own[j]`` of the querier's submission is ``batch_elements[positions[j]]``; each
    evaluation covers the whole batch, with its holder's proof over the whole batch.
    """

    ticket_id: bytes
    querier_org: str
    batch_id: bytes
    epoch: int
    positions: tuple[int, ...]
    batch_elements: tuple[bytes, ...]
    evaluations: tuple[ShareEvaluation, ...]

    def mixed_batch(self) -> MixedBatch:
        """What the querier checks with ``epoch.verified_answers`` (every holder's proof
        over the whole batch; a failing holder dropped and named, the rest used)."""
        return MixedBatch(self.batch_elements, self.evaluations, self.positions)


@dataclass
class _Held:
    ticket_id: bytes
    org: str
    elements: tuple[bytes, ...]
    arrived: float


@dataclass
class _Sent:
    elements: tuple[bytes, ...]
    # ticket id -> (org, positions of its elements in the batch, in submission order)
    routes: dict[bytes, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    delivered: bool = False


def random_element() -> bytes:
    """A uniformly random non-identity ristretto255 point: a dummy blinded element."""
    return oprf.public_key(oprf.random_scalar())


def _check_now(now: object) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise InvalidSubmission(f"now must be a finite number of seconds, got {now!r}")
    return float(now)


class Relay:
    """Holds metered submissions and releases mixed, padded, shuffled batches."""

    def __init__(
        self,
        meter: Meter,
        policy: RelayPolicy | None = None,
        *,
        epoch: int = 0,
        query_log: QueryLog | None = None,
        rng: random.Random | None = None,
        make_dummy: Callable[[], bytes] = random_element,
        new_id: Callable[[], bytes] = lambda: secrets.token_bytes(_ID_BYTES),
    ) -> None:
        """``query_log``, if given, must live in the meter's database: a submission's
        charge and its log records are then one transaction. ``rng`` shuffles batches
        (a CSPRNG by default); ``make_dummy`` and ``new_id`` are injectable for tests."""
        if query_log is not None and query_log.db is not meter.db:
            raise RelayConfigError(
                "query_log must share the meter's Database, so that a charge and its log "
                "records commit together; open both on the same Database object"
            )
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise RelayConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.meter = meter
        self.policy = policy if policy is not None else RelayPolicy()
        self.epoch = epoch
        self.query_log = query_log
        self._rng: random.Random = rng if rng is not None else secrets.SystemRandom()
        self._make_dummy = make_dummy
        self._new_id = new_id
        self._waiting: list[_Held] = []
        self._sent: dict[bytes, _Sent] = {}
        self._lock = threading.Lock()

    # --- submitting ----------------------------------------------------------------

    def submit(
        self,
        querier_org: str,
        purpose: str,
        grant_id: bytes,
        blinded_elements: Sequence[bytes],
        now: float,
    ) -> Ticket:
        """Check, charge, log and hold a querier's blinded elements; return its ticket.

        Every element must be a canonical non-identity ristretto255 encoding: one bad
        element would make every holder refuse (or fail to prove) the whole mixed
        batch, i.e. one querier could deny service to the others. Nothing is charged,
        logged or held unless all checks pass; ``QuotaExhausted`` comes from the meter.
        """
        org = check_org(querier_org)
        purpose = check_purpose(purpose)
        grant_id = check_grant_id(grant_id)
        moment = _check_now(now)
        if isinstance(blinded_elements, bytes | str) or not isinstance(blinded_elements, Sequence):
            raise InvalidSubmission("blinded_elements must be a sequence of 32-byte elements")
        elements = tuple(blinded_elements)
        if not 1 <= len(elements) <= self.policy.max_ticket:
            raise InvalidSubmission(
                f"a submission holds 1..{self.policy.max_ticket} elements, got {len(elements)}; "
                "split larger requests into several submissions"
            )
        for i, element in enumerate(elements):
            try:
                oprf.check_element(element, f"blinded_elements[{i}]")
            except oprf.OprfError as exc:
                raise InvalidSubmission(str(exc)) from None

        log = self.query_log

        def write_log(session: Session) -> None:
            if log is not None:
                log.append_in(session, org, purpose, elements, moment, self.epoch)

        with self._lock:
            self.meter.charge(org, purpose, grant_id, len(elements), moment, also=write_log)
            ticket = Ticket(self._new_id(), len(elements))
            self._waiting.append(_Held(ticket.ticket_id, org, elements, moment))
        return ticket

    # --- releasing -----------------------------------------------------------------

    def waiting(self) -> int:
        """Number of real elements held."""
        with self._lock:
            return sum(len(h.elements) for h in self._waiting)

    def next_deadline(self) -> float | None:
        """When the oldest held element times out (call ``due`` then); None if idle."""
        with self._lock:
            if not self._waiting:
                return None
            return min(h.arrived for h in self._waiting) + self.policy.max_delay

    def due(self, now: float) -> ForwardBatch | None:
        """The next batch to forward at ``now``, or None if none may go yet.

        Call again until it returns None: a backlog may fill several batches.
        """
        moment = _check_now(now)
        with self._lock:
            if not self._waiting:
                return None
            chosen = self._choose()
            size = sum(len(h.elements) for h in chosen)
            orgs = {h.org for h in chosen}
            full = size >= self.policy.min_batch and len(orgs) >= self.policy.min_queriers
            oldest = min(h.arrived for h in self._waiting)
            if not full and moment - oldest < self.policy.max_delay:
                return None
            return self._release(chosen)

    def _choose(self) -> list[_Held]:
        """The tickets of the next batch: each organisation's oldest first, then FIFO,
        as long as they fit ``max_batch`` (the first ticket always fits)."""
        order = sorted(self._waiting, key=lambda h: h.arrived)
        firsts: dict[str, _Held] = {}
        for held in order:
            firsts.setdefault(held.org, held)
        chosen: list[_Held] = []
        taken: set[bytes] = set()
        room = self.policy.max_batch
        for held in [*firsts.values(), *order]:
            if held.ticket_id in taken or len(held.elements) > room:
                continue
            chosen.append(held)
            taken.add(held.ticket_id)
            room -= len(held.elements)
        return chosen

    def _release(self, chosen: list[_Held]) -> ForwardBatch:
        slots: list[tuple[bytes | None, int, bytes]] = []  # (ticket, index in ticket, element)
        for held in chosen:
            slots.extend((held.ticket_id, j, e) for j, e in enumerate(held.elements))
        while len(slots) < self.policy.min_batch:
            slots.append((None, 0, oprf.check_element(self._make_dummy(), "dummy element")))
        self._rng.shuffle(slots)
        positions: dict[bytes, list[int]] = {h.ticket_id: [0] * len(h.elements) for h in chosen}
        for p, (ticket_id, j, _) in enumerate(slots):
            if ticket_id is not None:
                positions[ticket_id][j] = p
        batch_id = self._new_id()
        sent = _Sent(elements=tuple(e for _, _, e in slots))
        for held in chosen:
            sent.routes[held.ticket_id] = (held.org, tuple(positions[held.ticket_id]))
        self._sent[batch_id] = sent
        taken = {h.ticket_id for h in chosen}
        self._waiting = [h for h in self._waiting if h.ticket_id not in taken]
        return ForwardBatch(batch_id, self.epoch, sent.elements)

    # --- answers -------------------------------------------------------------------

    def deliver(
        self, batch_id: bytes, evaluations: Sequence[ShareEvaluation]
    ) -> list[TicketAnswer]:
        """Route the holders' answers to a forwarded batch to its tickets.

        ``evaluations`` holds one ``ShareEvaluation`` per answering holder, each over
        the whole batch in batch order. Dummy positions belong to no ticket: their
        answers reach queriers only as part of the batch the proofs cover. Raises
        :class:`UnknownBatch`, :class:`BatchAlreadyDelivered` (a replay),
        :class:`EvaluationCountMismatch` or :class:`InvalidEvaluation`; on any error
        nothing is routed and the batch stays deliverable.
        """
        if not isinstance(batch_id, bytes):
            raise UnknownBatch(f"batch_id must be bytes, got {type(batch_id).__name__}")
        with self._lock:
            sent = self._sent.get(batch_id)
            if sent is None:
                raise UnknownBatch(f"no batch 0x{batch_id.hex()} was forwarded by this relay")
            if sent.delivered:
                raise BatchAlreadyDelivered(
                    f"batch 0x{batch_id.hex()} was already delivered; answers are routed once"
                )
            answers = tuple(self._checked(sent, evaluations))
            sent.delivered = True
            sent_elements, routes = sent.elements, sent.routes
            # Keep only the delivered flag (replay detection); free the rest.
            sent.elements, sent.routes = (), {}
            return [
                TicketAnswer(
                    ticket_id=ticket_id,
                    querier_org=org,
                    batch_id=batch_id,
                    epoch=self.epoch,
                    positions=positions,
                    batch_elements=sent_elements,
                    evaluations=answers,
                )
                for ticket_id, (org, positions) in routes.items()
            ]

    @staticmethod
    def _checked(sent: _Sent, evaluations: Sequence[ShareEvaluation]) -> list[ShareEvaluation]:
        if isinstance(evaluations, ShareEvaluation) or not evaluations:
            raise InvalidEvaluation("evaluations must be a non-empty sequence, one per holder")
        seen: set[int] = set()
        checked = []
        for evaluation in evaluations:
            if not isinstance(evaluation, ShareEvaluation):
                raise InvalidEvaluation(
                    f"expected ShareEvaluation, got {type(evaluation).__name__}"
                )
            index = evaluation.index
            if isinstance(index, bool) or not isinstance(index, int):
                raise InvalidEvaluation(f"holder index must be an int, got {index!r}")
            if index in seen:
                raise InvalidEvaluation(f"holder {index} answered twice")
            seen.add(index)
            elements = tuple(evaluation.evaluated_elements)
            if len(elements) != len(sent.elements):
                raise EvaluationCountMismatch(
                    f"holder {index} answered {len(elements)} elements; "
                    f"the batch holds {len(sent.elements)}"
                )
            for p, element in enumerate(elements):
                if not isinstance(element, bytes) or len(element) != oprf.ELEMENT_BYTES:
                    raise InvalidEvaluation(
                        f"holder {index} evaluated_elements[{p}] is not {oprf.ELEMENT_BYTES} bytes"
                    )
            proof = evaluation.proof
            if not isinstance(proof, bytes) or len(proof) != oprf.PROOF_BYTES:
                raise InvalidEvaluation(f"holder {index} proof is not {oprf.PROOF_BYTES} bytes")
            checked.append(ShareEvaluation(index, list(elements), proof))
        return checked
