"""An epoch's public key material for anonymous lookups, and evaluating ``F(k, .)`` under it.

Why this module exists: every party of a lookup epoch must agree on *one* threshold OPRF
key ``k`` (DESIGN §6, ``docs/threshold-oprf.md``) without anyone holding it. What they
can agree on is public: the DKG's Feldman commitments give the joint public key
``K = k*G`` and every holder's public share ``K_i = k_i*G``. :class:`EpochKeys` is that
public material in one canonical form, and its digest is anchored on chain together
with the union's digest (:class:`EpochDescriptor`), so a querier checks holders' proofs
against shares the consortium committed to, and a union against the key it was built
under, instead of trusting whoever serves them.

Both providers (publishing their own entries) and queriers need the same client half of
the threshold evaluation: blind, have holders answer, check each holder's batched DLEQ
proof against its anchored public share, drop (and name) a holder whose proof fails,
combine ``t`` verified answers and finalize. :func:`evaluate_obliviously` is that one
routine, so the two roles cannot drift apart (a drift would make listed identifiers
silently never match).

:func:`run_dkg` runs the joint-Feldman DKG among ``n`` in-process holders for tests and
the demo; the networked DKG sends the same messages between nodes. A share that fails
its dealer's commitments stops the DKG with :class:`DkgComplaintError` naming every
culprit, because holders that silently combined over different dealer sets would hold
shares of different keys.

``EpochKeys.list_name`` names the union the key serves. A union may carry one list
(``"blacklist"``, ``"lending"``, ... ``"verify"``): then a querier refuses to ask it about
another list, which would otherwise answer "not listed" forever. Any other name (e.g.
``"anti-fraud"``) is a combined union carrying several lists, which ``inputs.py``'s
per-list domain separation keeps apart inside one table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

from ledger.canonical import digest_json
from node.crypto import oprf, threshold_oprf
from node.crypto.oprf import OprfError
from node.crypto.threshold_oprf import (
    Dealing,
    InvalidDealingError,
    KeyShare,
    ShareEvaluation,
    ThresholdOprfError,
)

__all__ = [
    "KEYS_VERSION",
    "MAX_BATCH",
    "PARALLEL_MIN_ELEMENTS",
    "DkgComplaintError",
    "DkgError",
    "EpochDescriptor",
    "EpochError",
    "EpochKeys",
    "EpochKeysFormatError",
    "EpochKeysMismatch",
    "Evaluate",
    "EvaluationAnswer",
    "MixedBatch",
    "MixedBatchError",
    "OnDropped",
    "Pending",
    "StaleEpochError",
    "TooFewHoldersError",
    "blind_all",
    "commitments_digest",
    "evaluate_obliviously",
    "keys_from_dealings",
    "run_dkg",
    "unblind_verified",
    "verified_answers",
]

KEYS_VERSION = 1
MAX_BATCH = 0x10000  # elements per evaluation round: RFC 9497's batch index is two bytes
PARALLEL_MIN_ELEMENTS = 128
"""Rounds smaller than this run inline even with an executor: below it, handing work to a
worker (a pickled batch to another process) costs more than the work saves."""
PART_ELEMENTS = 256  # elements per executor task when blinding, combining and finalizing
_MAX_SAFE_INT = 2**53 - 1  # canonical JSON integers, as union epochs
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class EpochError(ValueError):
    """Base of this module's errors, a ``ValueError`` like the union's and the OPRF's."""


class StaleEpochError(EpochError):
    """A request for an epoch other than the holder's current one.

    Old epochs stop answering (issue 15, epoch rotation); an epoch the holder does not
    know yet means the asker is ahead of it. Either way the asker must fetch the current
    anchored epoch and its keys, then ask again.
    """

    def __init__(self, asked: int, current: int) -> None:
        self.asked = asked
        self.current = current
        why = "is stale" if asked < current else "is not known here"
        super().__init__(
            f"epoch {asked} {why}: this key holder answers epoch {current} only; "
            "fetch the anchored keys of the current epoch and ask again"
        )


class EpochKeysFormatError(EpochError):
    """Epoch keys (or a descriptor) that are malformed: bad field, size, range or element."""


class EpochKeysMismatch(EpochError):
    """Key material that differs from what was anchored or from the holder's own share."""


class DkgError(EpochError):
    """DKG inputs that cannot produce a key: bad parameters or too few qualified dealers."""


class DkgComplaintError(DkgError):
    """Some holders received shares that fail their dealer's Feldman commitments.

    ``complaints`` maps each culprit dealer to the holders that complained. Every holder
    must now agree to exclude those dealers (a dealer who cannot answer the complaint
    with a valid share is disqualified by everyone) and combine over the same qualified
    set: ``keys_from_dealings(..., exclude=error.dealers)``.
    """

    def __init__(self, complaints: Mapping[int, Sequence[int]]) -> None:
        self.complaints = {d: tuple(sorted(h)) for d, h in sorted(complaints.items())}
        self.dealers = frozenset(self.complaints)
        detail = "; ".join(
            f"dealer {d} (complaints from holders {list(h)})" for d, h in self.complaints.items()
        )
        super().__init__(
            f"DKG complaint: shares fail their dealer's commitments: {detail}; exclude these "
            "dealers on every holder and combine again over the same qualified set"
        )


class TooFewHoldersError(EpochError):
    """Fewer than ``t`` key holders gave a verified answer: no output can be computed.

    ``valid`` lists the holders whose proofs checked, ``dropped`` the others and why.
    """

    def __init__(self, t: int, valid: Sequence[int], dropped: Mapping[int, str]) -> None:
        self.t = t
        self.valid = tuple(valid)
        self.dropped = dict(dropped)
        detail = "; ".join(f"holder {i}: {why}" for i, why in sorted(self.dropped.items()))
        super().__init__(
            f"need verified answers from {t} key holders, got {len(self.valid)} "
            f"({list(self.valid)})"
            + (f"; dropped {detail}" if detail else "")
            + "; ask again when more holders are online"
        )


class MixedBatchError(EpochError):
    """A relayed mixed batch that does not contain the elements this party sent."""


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EpochKeysFormatError(f"{what} must be an int in [{low}, {high}], got {value!r}")
    return value


def _check_name(list_name: object) -> str:
    if not isinstance(list_name, str) or _NAME.fullmatch(list_name) is None:
        raise EpochKeysFormatError(
            f"list_name must be 1-64 chars of [a-z0-9-] starting alphanumeric, got {list_name!r}"
        )
    return list_name


def _from_hex(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise EpochKeysFormatError(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise EpochKeysFormatError(f"{what} is not hex") from None
    if len(raw) != size or raw.hex() != value:
        raise EpochKeysFormatError(f"{what} must be {size} bytes in lower-case hex")
    return raw


def _element(value: bytes, what: str) -> bytes:
    try:
        return oprf.check_element(value, what)
    except OprfError as exc:
        raise EpochKeysFormatError(str(exc)) from None


def commitments_digest(all_commitments: Mapping[int, Sequence[bytes]]) -> bytes:
    """The digest of every qualified dealer's Feldman commitments, keyed by dealer index."""
    return digest_json(
        "lookup-dkg-commitments",
        {str(d): [c.hex() for c in all_commitments[d]] for d in sorted(all_commitments)},
    )


@dataclass(frozen=True)
class EpochKeys:
    """One epoch's public threshold-key material: what holders' proofs are checked against.

    ``public_shares[i] = k_i * G`` for holders ``1..n``; ``public_key = k * G``;
    ``commitments_digest`` commits to the DKG commitments these were derived from, so
    anyone holding the commitments can recheck the shares (:meth:`check_commitments`).
    """

    epoch: int
    list_name: str
    t: int
    n: int
    public_key: bytes
    public_shares: Mapping[int, bytes]
    commitments_digest: bytes

    def __post_init__(self) -> None:
        _check_int(self.epoch, "epoch", 0, _MAX_SAFE_INT)
        _check_name(self.list_name)
        _check_int(self.n, "n", 1, threshold_oprf.MAX_HOLDERS)
        _check_int(self.t, "t", 1, self.n)
        _element(self.public_key, "public_key")
        if set(self.public_shares) != set(range(1, self.n + 1)):
            raise EpochKeysFormatError(f"public_shares must hold exactly holders 1..{self.n}")
        for index, share in self.public_shares.items():
            _element(share, f"public share of holder {index}")
        if not isinstance(self.commitments_digest, bytes) or len(self.commitments_digest) != 32:
            raise EpochKeysFormatError("commitments_digest must be 32 bytes")
        # A private copy: a caller mutating its dict must not change anchored material.
        object.__setattr__(self, "public_shares", dict(sorted(self.public_shares.items())))

    @classmethod
    def from_commitments(
        cls,
        epoch: int,
        list_name: str,
        t: int,
        n: int,
        all_commitments: Mapping[int, Sequence[bytes]],
    ) -> EpochKeys:
        """Derive the public material from the qualified dealers' commitments alone.

        Every dealer must have committed to exactly ``t`` coefficients: a higher degree
        would make ``t`` answers combine to something other than ``k * B``.
        """
        for dealer, commitments in all_commitments.items():
            if len(commitments) != t:
                raise DkgError(
                    f"dealer {dealer} committed to {len(commitments)} coefficients, t={t}"
                )
        try:
            key = threshold_oprf.public_key(all_commitments)
            shares = {i: threshold_oprf.public_share(all_commitments, i) for i in range(1, n + 1)}
        except ThresholdOprfError as exc:
            raise DkgError(str(exc)) from None
        return cls(epoch, list_name, t, n, key, shares, commitments_digest(all_commitments))

    def check_commitments(self, all_commitments: Mapping[int, Sequence[bytes]]) -> None:
        """Raise :class:`EpochKeysMismatch` unless these keys derive from ``all_commitments``."""
        if commitments_digest(all_commitments) != self.commitments_digest:
            raise EpochKeysMismatch("the DKG commitments do not match the epoch keys' digest")
        derived = EpochKeys.from_commitments(
            self.epoch, self.list_name, self.t, self.n, all_commitments
        )
        if derived != self:
            raise EpochKeysMismatch("public key or shares differ from those the commitments give")

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (bytes as lower-case hex, holder indices as strings)."""
        return {
            "version": KEYS_VERSION,
            "epoch": self.epoch,
            "list_name": self.list_name,
            "t": self.t,
            "n": self.n,
            "public_key": self.public_key.hex(),
            "public_shares": {str(i): s.hex() for i, s in self.public_shares.items()},
            "commitments_digest": self.commitments_digest.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> EpochKeys:
        """Parse and check :meth:`to_json`'s form; :class:`EpochKeysFormatError` if bad."""
        fields = {
            "version",
            "epoch",
            "list_name",
            "t",
            "n",
            "public_key",
            "public_shares",
            "commitments_digest",
        }
        if not isinstance(data, dict) or set(data) != fields:
            raise EpochKeysFormatError(f"epoch keys must be an object with fields {sorted(fields)}")
        if data["version"] != KEYS_VERSION:
            raise EpochKeysFormatError(f"unsupported epoch keys version {data['version']!r}")
        n = _check_int(data["n"], "n", 1, threshold_oprf.MAX_HOLDERS)
        shares = data["public_shares"]
        if not isinstance(shares, dict) or set(shares) != {str(i) for i in range(1, n + 1)}:
            raise EpochKeysFormatError(f"public_shares must have keys '1'..'{n}'")
        return cls(
            epoch=_check_int(data["epoch"], "epoch", 0, _MAX_SAFE_INT),
            list_name=_check_name(data["list_name"]),
            t=_check_int(data["t"], "t", 1, n),
            n=n,
            public_key=_from_hex(data["public_key"], "public_key", oprf.ELEMENT_BYTES),
            public_shares={
                int(i): _from_hex(s, f"public share {i}", oprf.ELEMENT_BYTES)
                for i, s in shares.items()
            },
            commitments_digest=_from_hex(data["commitments_digest"], "commitments_digest", 32),
        )

    @cached_property
    def digest(self) -> bytes:
        """``digest_json("lookup-epoch-keys", to_json())``: what the descriptor anchors."""
        return digest_json("lookup-epoch-keys", self.to_json())


@dataclass(frozen=True)
class EpochDescriptor:
    """What is anchored on chain per epoch: the keys digest and the union digest.

    Binding both in one record means a union cannot be presented under another epoch's
    keys (its PRF values would not match) nor keys under another union.
    """

    epoch: int
    keys_digest: bytes
    union_digest: bytes

    def __post_init__(self) -> None:
        _check_int(self.epoch, "epoch", 0, _MAX_SAFE_INT)
        for what, value in (("keys_digest", self.keys_digest), ("union_digest", self.union_digest)):
            if not isinstance(value, bytes) or len(value) != 32:
                raise EpochKeysFormatError(f"{what} must be 32 bytes")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": KEYS_VERSION,
            "epoch": self.epoch,
            "keys_digest": self.keys_digest.hex(),
            "union_digest": self.union_digest.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> EpochDescriptor:
        fields = {"version", "epoch", "keys_digest", "union_digest"}
        if not isinstance(data, dict) or set(data) != fields:
            raise EpochKeysFormatError(
                f"a descriptor must be an object with fields {sorted(fields)}"
            )
        if data["version"] != KEYS_VERSION:
            raise EpochKeysFormatError(f"unsupported descriptor version {data['version']!r}")
        return cls(
            epoch=_check_int(data["epoch"], "epoch", 0, _MAX_SAFE_INT),
            keys_digest=_from_hex(data["keys_digest"], "keys_digest", 32),
            union_digest=_from_hex(data["union_digest"], "union_digest", 32),
        )

    @cached_property
    def digest(self) -> bytes:
        return digest_json("lookup-epoch", self.to_json())


# --- DKG (in-process, for tests and the demo) ----------------------------------------


def keys_from_dealings(
    epoch: int,
    list_name: str,
    t: int,
    n: int,
    dealings: Mapping[int, Dealing],
    *,
    exclude: Collection[int] = (),
) -> tuple[EpochKeys, list[KeyShare]]:
    """Steps 2-5 of the DKG: every holder checks every qualified dealer, then combines.

    All holders' checks run before anyone combines, so a bad dealer stops everyone with
    one :class:`DkgComplaintError` rather than leaving some holders with shares of a
    different key. ``exclude`` is the complaint round's outcome: dealers disqualified by
    everyone. At least ``t`` dealers must remain, so that fewer than ``t`` colluders can
    never have dealt every part of the key.
    """
    _check_int(n, "n", 1, threshold_oprf.MAX_HOLDERS)
    _check_int(t, "t", 1, n)
    qualified = sorted(set(dealings) - set(exclude))
    if any(not 1 <= d <= n for d in qualified):
        raise DkgError(f"dealer indices must be in 1..{n}, got {qualified}")
    if len(qualified) < t:
        raise DkgError(f"{len(qualified)} qualified dealers remain, need at least t={t}")
    complaints: dict[int, list[int]] = {}
    for holder in range(1, n + 1):
        for dealer in qualified:
            dealing = dealings[dealer]
            share = dealing.shares.get(holder)
            try:
                if share is None or len(dealing.commitments) != t:
                    raise InvalidDealingError(dealer, "missing share or wrong degree")
                threshold_oprf.verify_share(dealing.commitments, holder, share, dealer=dealer)
            except InvalidDealingError:
                complaints.setdefault(dealer, []).append(holder)
    if complaints:
        raise DkgComplaintError(complaints)
    all_commitments = {d: dealings[d].commitments for d in qualified}
    keys = EpochKeys.from_commitments(epoch, list_name, t, n, all_commitments)
    shares = [
        threshold_oprf.combine_dealings(
            holder, {d: (dealings[d].commitments, dealings[d].shares[holder]) for d in qualified}
        )
        for holder in range(1, n + 1)
    ]
    for key_share in shares:
        if key_share.public != keys.public_shares[key_share.index]:  # pragma: no cover
            raise EpochKeysMismatch(
                f"holder {key_share.index}'s share differs from its public share"
            )
    return keys, shares


def run_dkg(
    t: int, n: int, *, epoch: int = 1, list_name: str = "blacklist"
) -> tuple[EpochKeys, list[KeyShare]]:
    """The whole DKG among ``n`` in-process holders: every holder deals, then all combine."""
    _check_int(n, "n", 1, threshold_oprf.MAX_HOLDERS)
    _check_int(t, "t", 1, n)
    dealings = {i: threshold_oprf.deal(t, n) for i in range(1, n + 1)}
    return keys_from_dealings(epoch, list_name, t, n, dealings)


# --- the client half of a threshold evaluation ----------------------------------------


@dataclass(frozen=True)
class MixedBatch:
    """Holders' answers over a relay's mixed batch that *contains* this party's elements.

    A holder's batched DLEQ proof covers the whole batch it evaluated, so a relay that
    mixes several queriers' elements into one batch hands each of them the whole
    batch's blinded elements with the answers; the party verifies the proofs over all of
    them and keeps its own positions.
    """

    blinded_elements: Sequence[bytes]
    evaluations: Sequence[ShareEvaluation]
    positions: Sequence[int] | None = None
    """Where this party's elements sit in the batch, in the order sent (as the relay's
    ``TicketAnswer.positions``); found by value when omitted."""


EvaluationAnswer = Sequence[ShareEvaluation] | MixedBatch
Evaluate = Callable[[int, list[bytes]], EvaluationAnswer]
"""The network hop: ``(epoch, blinded elements) -> answers of the holders reached``."""
OnDropped = Callable[[int, str], None]
"""Called with a holder index and the reason its answer was dropped."""


def _positions(
    mine: Sequence[bytes], batch: Sequence[bytes], claimed: Sequence[int] | None
) -> list[int]:
    if claimed is not None:
        ok = len(claimed) == len(mine) and all(
            isinstance(p, int) and 0 <= p < len(batch) and batch[p] == e
            for p, e in zip(claimed, mine, strict=False)
        )
        if not ok:
            raise MixedBatchError(
                "the relayed batch does not hold the elements sent at the claimed positions; "
                "ask again"
            )
        return list(claimed)
    where: dict[bytes, int] = {}
    for p, element in enumerate(batch):
        where.setdefault(element, p)
    try:
        return [where[e] for e in mine]
    except KeyError:
        raise MixedBatchError(
            "the relayed batch does not contain every element sent; ask again"
        ) from None


_T = TypeVar("_T")


class Pending(Generic[_T]):
    """Work split into parts, some perhaps still running in an executor.

    :meth:`result` waits for every part and joins their lists in order, so the caller
    sees one list whatever the split; it re-raises a part's exception. Without an
    executor every part is already done when this is made.
    """

    def __init__(self, parts: Sequence[Future[list[_T]]]) -> None:
        self._parts = list(parts)

    def result(self) -> list[_T]:
        joined: list[_T] = []
        for part in self._parts:
            joined.extend(part.result())
        return joined

    def cancel(self) -> None:
        """Cancel the parts not started yet (a screen closed early)."""
        for part in self._parts:
            part.cancel()


def _done(value: list[_T]) -> Future[list[_T]]:
    future: Future[list[_T]] = Future()
    future.set_result(value)
    return future


def _pool(executor: Executor | None, elements: int) -> Executor | None:
    """``executor`` if a round of ``elements`` is worth handing to it, else None."""
    return executor if elements >= PARALLEL_MIN_ELEMENTS else None


def _split(count: int) -> list[slice]:
    """Even slices of at most :data:`PART_ELEMENTS`, one executor task each."""
    parts = max(1, -(-count // PART_ELEMENTS))
    step = max(1, -(-count // parts))
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def _blind_part(inputs: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """``(blind, blinded element)`` per input: a module-level function, so a process
    pool can run it (its arguments and result pickle as bytes)."""
    return [oprf.blind(x) for x in inputs]


def blind_all(
    inputs: Sequence[bytes], executor: Executor | None = None
) -> Pending[tuple[bytes, bytes]]:
    """A fresh blind per input, in parts on ``executor`` when the round is large enough.

    Returns at once with an executor, so a screen can blind its next chunk while the
    holders evaluate the current one.
    """
    xs = list(inputs)
    pool = _pool(executor, len(xs))
    if pool is None:
        return Pending([_done(_blind_part(xs))])
    return Pending([pool.submit(_blind_part, xs[part]) for part in _split(len(xs))])


def _check_evaluation(
    public: bytes, batch: Sequence[bytes], evaluation: ShareEvaluation
) -> str | None:
    """Why ``evaluation``'s proof fails, or None if it verifies.

    A string rather than the exception, because ``ShareVerifyError`` does not survive
    the pickling a process pool puts it through.
    """
    try:
        threshold_oprf.verify_share_evaluation(public, batch, evaluation)
    except OprfError as exc:
        return str(exc)
    return None


def verified_answers(
    keys: EpochKeys,
    blinded: Sequence[bytes],
    answer: EvaluationAnswer,
    on_dropped: OnDropped | None = None,
    executor: Executor | None = None,
) -> tuple[list[ShareEvaluation], dict[int, str]]:
    """Check every holder's proof against its anchored public share; drop and name failures.

    Returns the verified evaluations restricted to ``blinded`` (in its order) and the
    dropped holders with their reasons. A holder answering twice counts once (the first
    answer); one not in the epoch's keys is dropped. With an ``executor`` the holders'
    proofs (two scalar multiplications per element each) are verified concurrently, one
    task per holder; what is kept, dropped and reported is the same either way.
    """
    if isinstance(answer, MixedBatch):
        batch = list(answer.blinded_elements)
        evaluations = list(answer.evaluations)
        positions = _positions(blinded, batch, answer.positions)
    else:
        batch = list(blinded)
        evaluations = list(answer)
        positions = list(range(len(blinded)))
    candidates: list[tuple[int, ShareEvaluation, bytes | None]] = []
    seen: set[int] = set()
    for evaluation in evaluations:
        index = getattr(evaluation, "index", None)
        if not isinstance(evaluation, ShareEvaluation) or not isinstance(index, int):
            continue  # not an answer at all; nothing to name
        if index in seen:
            continue
        seen.add(index)
        candidates.append((index, evaluation, keys.public_shares.get(index)))
    checks: list[Future[str | None] | str | None]
    pool = _pool(executor, len(batch)) if len(candidates) > 1 else None
    if pool is not None:
        checks = [
            "not a key holder of this epoch"
            if public is None
            else pool.submit(_check_evaluation, public, batch, evaluation)
            for _, evaluation, public in candidates
        ]
    else:
        checks = [
            "not a key holder of this epoch"
            if public is None
            else _check_evaluation(public, batch, evaluation)
            for _, evaluation, public in candidates
        ]
    valid: list[ShareEvaluation] = []
    dropped: dict[int, str] = {}
    for (index, evaluation, _), check in zip(candidates, checks, strict=True):
        why = check.result() if isinstance(check, Future) else check
        if why is not None:
            dropped[index] = why
            continue
        mine = [evaluation.evaluated_elements[p] for p in positions]
        valid.append(ShareEvaluation(index, mine, evaluation.proof))
    for index, why in sorted(dropped.items()):
        if on_dropped is not None:
            on_dropped(index, why)
    return valid, dropped


def _combine_finalize(
    chosen: Sequence[ShareEvaluation], t: int, inputs: Sequence[bytes], blinds: Sequence[bytes]
) -> list[bytes]:
    """Combine ``t`` verified answers (already cut to this part) and finalize each input."""
    combined = threshold_oprf.combine(chosen, t)
    return [oprf.finalize(x, r, e) for x, r, e in zip(inputs, blinds, combined, strict=True)]


def unblind_verified(
    keys: EpochKeys,
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    blinded: Sequence[bytes],
    answer: EvaluationAnswer,
    on_dropped: OnDropped | None = None,
    executor: Executor | None = None,
) -> Pending[bytes]:
    """The second half of :func:`evaluate_obliviously`, once the holders have answered.

    Verifies the answers (:func:`verified_answers`; :class:`TooFewHoldersError` is
    raised here, before anything is combined), then combines and finalizes, in parts
    on ``executor`` when given: combining is per element, so cutting every holder's
    answer at the same positions gives the same outputs as one combination. Returns at
    once with an executor (a screen finalizes one chunk while the next is evaluated).
    """
    valid, dropped = verified_answers(keys, blinded, answer, on_dropped, executor)
    if len(valid) < keys.t:
        raise TooFewHoldersError(keys.t, sorted(e.index for e in valid), dropped)
    # combine() uses the t smallest indices: choose them here so parts carry no more.
    chosen = sorted(valid, key=lambda e: e.index)[: keys.t]
    xs, rs = list(inputs), list(blinds)
    pool = _pool(executor, len(xs))
    if pool is None:
        return Pending([_done(_combine_finalize(chosen, keys.t, xs, rs))])
    parts = []
    for part in _split(len(xs)):
        cut = [ShareEvaluation(e.index, e.evaluated_elements[part], e.proof) for e in chosen]
        parts.append(pool.submit(_combine_finalize, cut, keys.t, xs[part], rs[part]))
    return Pending(parts)


def evaluate_obliviously(
    keys: EpochKeys,
    inputs: Sequence[bytes],
    evaluate: Evaluate,
    on_dropped: OnDropped | None = None,
    executor: Executor | None = None,
) -> list[bytes]:
    """``F(k, x)`` for every input, with holders seeing only blinded elements.

    One fresh blind per input and one call to ``evaluate`` for the whole list. Raises
    :class:`TooFewHoldersError` if fewer than ``t`` holders' proofs verify (after
    naming the dropped ones through ``on_dropped``); whatever ``evaluate`` raises (e.g.
    :class:`StaleEpochError` from a holder) propagates. Returns 64-byte RFC 9497 outputs.

    ``executor`` (a thread or process pool the caller owns) spreads the querier's own
    work — blinding, verifying the holders' proofs, combining, finalizing — over its
    workers for rounds of at least :data:`PARALLEL_MIN_ELEMENTS`; the outputs are the
    same bytes (they do not depend on the blinds).
    """
    if not inputs:
        return []
    pairs = blind_all(inputs, executor).result()
    blinds = [r for r, _ in pairs]
    blinded = [b for _, b in pairs]
    answer = evaluate(keys.epoch, list(blinded))
    return unblind_verified(keys, inputs, blinds, blinded, answer, on_dropped, executor).result()
