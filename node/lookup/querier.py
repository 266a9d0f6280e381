"""A querier of an anonymous-lookup epoch: asks without telling anyone what it asks.

Why this module exists: a bank checking an identifier (DESIGN §6) must learn whether it
is listed, with which labels and by how many members, but no member may learn what was
asked, and the answer must not say which member listed it. So the querier computes
``F(k, x)`` obliviously (``epoch.evaluate_obliviously``: blind, ``t`` key holders answer
through the relay, every proof checked against the anchored public shares, failures
dropped and named) and looks the result up *locally* in the union it downloaded. What it
downloaded is checked first against the digest anchored on chain, and every label
bucket it fetches against its anchored bucket digest, so a server cannot answer for a
different or altered union.

What leaves the querier: blinded elements (uniformly random, to the relay and holders)
and whole-bucket fetches (the bucket index only, to whoever serves buckets). When labels
are wanted the querier fetches the bucket of *every* queried input, listed or not, so
the fetch pattern does not reveal hits. Membership without labels and element
verification read the table alone; their answer is wrong with probability
``len(table) / 2**64`` per query (a 64-bit tag collision), while answers with labels are
exact (a colliding tag opens no record and is reported as not listed).

Query kinds, each one evaluation round: :meth:`Querier.blacklist`, :meth:`Querier.verify`
(one match bit per element, composite keys ``inputs.element_input``),
:meth:`Querier.multihead` (listings per time window, the asker's own excluded),
:meth:`Querier.batch` and :meth:`Querier.screen` (bulk, in chunks, bad rows reported and
skipped). A malformed identifier raises ``identifiers.InvalidIdentifier`` (redacted)
before anything is sent.

Screening a book of 10^6 rows is CPU-bound on the querier's side (per row: a blind, two
scalar multiplications per holder to verify the batched proofs, ``t`` to combine, one to
finalize), so :meth:`Querier.screen` takes an optional ``executor`` (a thread or process
pool the caller owns): the querier's work for a chunk is spread over its workers and
pipelined, chunk ``i + 1`` blinded and chunk ``i - 1`` finalized while the holders
evaluate chunk ``i``. The answers are the same; only the wall time changes.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from node.lookup import inputs
from node.lookup.epoch import (
    MAX_BATCH,
    EpochDescriptor,
    EpochError,
    EpochKeys,
    EpochKeysMismatch,
    Evaluate,
    OnDropped,
    Pending,
    blind_all,
    evaluate_obliviously,
    unblind_verified,
)
from node.lookup.union import (
    MULTI_HEAD_WINDOWS,
    Listing,
    Union,
    UnionDigestMismatch,
    UnionTable,
    bucket_digest,
    bucket_of,
    digest_from_parts,
    lookup,
    multi_head_count,
    open_labels,
)

__all__ = [
    "DEFAULT_SCREEN_CHUNK",
    "FetchBucket",
    "MembershipAnswer",
    "MultiHeadAnswer",
    "Querier",
    "QueryError",
    "ScreenItem",
    "ScreenProgress",
    "ScreenResult",
    "UnionDownload",
    "VerifyAnswer",
    "WrongListError",
]

_log = logging.getLogger(__name__)

DEFAULT_SCREEN_CHUNK = 1_000

FetchBucket = Callable[[int], bytes]
"""The network hop for labels: bucket index -> the whole bucket's bytes."""

ScreenItem = tuple[str, str] | bytes
"""A screening row: ``(kind, raw value)``, or an OPRF input already built by
``node.lookup.inputs`` (e.g. by the screening file reader)."""

_SINGLE_LISTS = (*inputs.MEMBERSHIP_LISTS, inputs.VERIFY_LIST)


class QueryError(EpochError):
    """A query the querier cannot ask as given (no elements, bad window, batch too big)."""


class WrongListError(QueryError):
    """A query about a list the epoch's union does not carry: it would never match."""


@dataclass(frozen=True)
class UnionDownload:
    """What a querier downloads: the compact table and the list of bucket digests.

    About 9 bytes per listed identifier plus 32 per bucket; the label buckets are
    fetched one at a time, on demand, through :data:`FetchBucket`.
    """

    epoch: int
    table_bytes: bytes
    bucket_digests: tuple[bytes, ...]

    @classmethod
    def of(cls, union: Union) -> UnionDownload:
        return cls(union.epoch, union.table_bytes, union.bucket_digests)


@dataclass(frozen=True)
class MembershipAnswer:
    """Listed or not, by how many providers, and (if asked for) each listing.

    ``listings`` are sorted (labels, event time per listing provider), never attributed
    to a provider; empty when not listed or when labels were not requested.
    """

    listed: bool
    multiplicity: int
    listings: tuple[Listing, ...] = ()


@dataclass(frozen=True)
class VerifyAnswer:
    """One match bit per element field asked: does a member's record for the ID hold it."""

    matches: Mapping[str, bool]


@dataclass(frozen=True)
class MultiHeadAnswer:
    """Per window (days), the number of listings in it, the asker's own excluded."""

    counts: Mapping[int, int]


@dataclass(frozen=True)
class ScreenResult:
    """One screened row: its 0-based position and either an answer or why it was skipped."""

    position: int
    answer: MembershipAnswer | None
    error: str | None = None


@dataclass(frozen=True)
class ScreenProgress:
    """Reported after every chunk: rows done so far, listed among them, rows skipped."""

    rows: int
    listed: int
    skipped: int


def _log_dropped(index: int, why: str) -> None:
    _log.warning("dropped key holder %d's answer: %s", index, why)


class Querier:
    """Queries one epoch's union.

    The constructor checks ``epoch_keys`` against ``anchor.keys_digest`` and ``table``
    against ``anchor.union_digest`` (raising :class:`EpochKeysMismatch` or
    ``UnionDigestMismatch``), so nothing is ever answered from unanchored material.
    ``evaluate`` reaches the key holders (through the relay); ``fetch_bucket`` the
    bucket server. ``on_dropped`` hears about holders whose answers were dropped (a
    warning is logged by default).
    """

    def __init__(
        self,
        epoch_keys: EpochKeys,
        table: UnionDownload,
        fetch_bucket: FetchBucket,
        evaluate: Evaluate,
        *,
        anchor: EpochDescriptor,
        on_dropped: OnDropped | None = _log_dropped,
        country: str = "86",
    ) -> None:
        if anchor.keys_digest != epoch_keys.digest or anchor.epoch != epoch_keys.epoch:
            raise EpochKeysMismatch(
                f"epoch keys (epoch {epoch_keys.epoch}) are not the ones anchored for epoch "
                f"{anchor.epoch}; fetch the anchored keys"
            )
        expected = digest_from_parts(table.epoch, table.table_bytes, table.bucket_digests)
        if table.epoch != anchor.epoch or not secrets.compare_digest(expected, anchor.union_digest):
            raise UnionDigestMismatch(
                f"downloaded union (epoch {table.epoch}) does not match the digest anchored "
                f"for epoch {anchor.epoch}; download it again from another source"
            )
        if not table.bucket_digests:
            raise UnionDigestMismatch("the downloaded union lists no buckets")
        self.epoch_keys = epoch_keys
        self.epoch = anchor.epoch
        self._table = UnionTable.from_bytes(table.table_bytes)
        self._bucket_digests = table.bucket_digests
        self._fetch_bucket = fetch_bucket
        self._evaluate = evaluate
        self._on_dropped = on_dropped
        self.country = country

    # --- building blocks ---------------------------------------------------------------

    def _check_list(self, list_name: str) -> None:
        served = self.epoch_keys.list_name
        if served in _SINGLE_LISTS and list_name != served:
            raise WrongListError(
                f"this epoch's union carries list {served!r} only, not {list_name!r}; "
                "query the union published for that list"
            )

    def _prfs(self, xs: Sequence[bytes]) -> list[bytes]:
        if len(xs) > MAX_BATCH:
            raise QueryError(f"at most {MAX_BATCH} inputs per round, got {len(xs)}; use screen")
        return evaluate_obliviously(self.epoch_keys, xs, self._evaluate, self._on_dropped)

    def _bucket(self, index: int, cache: dict[int, bytes]) -> bytes:
        """Fetch one whole bucket (once per call) and check it against its anchored digest."""
        bucket = cache.get(index)
        if bucket is None:
            bucket = self._fetch_bucket(index)
            if not isinstance(bucket, bytes) or not secrets.compare_digest(
                bucket_digest(bucket), self._bucket_digests[index]
            ):
                raise UnionDigestMismatch(
                    f"bucket {index} does not match its anchored digest; fetch it again"
                )
            cache[index] = bucket
        return bucket

    def _membership(self, prfs: Sequence[bytes], labels: bool) -> list[MembershipAnswer]:
        answers: list[MembershipAnswer] = []
        cache: dict[int, bytes] = {}
        count = len(self._bucket_digests)
        for prf in prfs:
            hit = lookup(self._table, prf, self.epoch)
            if not labels:
                answers.append(MembershipAnswer(hit is not None, hit.multiplicity if hit else 0))
                continue
            # Fetched for misses too: a fetch only on hits would tell the server the answer.
            bucket = self._bucket(bucket_of(prf, self.epoch, count), cache)
            listings = open_labels(bucket, prf, self.epoch)
            if hit is None or not listings:
                answers.append(MembershipAnswer(False, 0))
            else:
                answers.append(MembershipAnswer(True, hit.multiplicity, tuple(listings)))
        return answers

    def _inputs(self, queries: Iterable[tuple[str, str]], list_name: str) -> list[bytes]:
        return [
            inputs.membership_input(list_name, kind, value, country=self.country)
            for kind, value in queries
        ]

    # --- query kinds -------------------------------------------------------------------

    def blacklist(
        self, kind: str, value: str, list_name: str = "blacklist", labels: bool = True
    ) -> MembershipAnswer:
        """Is ``value`` (an identifier of ``kind``, raw) on ``list_name``; labels if asked."""
        return self.batch([(kind, value)], list_name=list_name, labels=labels)[0]

    def verify(self, id_kind: str, id_value: str, elements: Mapping[str, str]) -> VerifyAnswer:
        """Per element field, whether a member's record for this ID holds that element.

        The answer exists only here: holders saw blinded composites, the table is local.
        """
        self._check_list(inputs.VERIFY_LIST)
        if not elements:
            raise QueryError("verify needs at least one element (field -> value)")
        fields = list(elements)
        xs = [
            inputs.element_input(id_kind, id_value, f, elements[f], country=self.country)
            for f in fields
        ]
        prfs = self._prfs(xs)
        return VerifyAnswer(
            {
                f: lookup(self._table, prf, self.epoch) is not None
                for f, prf in zip(fields, prfs, strict=True)
            }
        )

    def multihead(
        self,
        kind: str,
        value: str,
        windows: Sequence[int] = MULTI_HEAD_WINDOWS,
        list_name: str = "lending",
        own_event_times: Iterable[int] = (),
        now: int | None = None,
    ) -> MultiHeadAnswer:
        """At how many members ``value`` borrowed (or opened a card) per window of days.

        ``own_event_times`` are the asker's own (merged: latest) event times for the
        identifier, which the union cannot know to exclude (``union.multi_head_count``).
        """
        days = list(windows)
        if not days or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in days):
            raise QueryError(f"windows must be positive whole days, got {windows!r}")
        own = list(own_event_times)
        at = int(time.time()) if now is None else now
        answer = self.batch([(kind, value)], list_name=list_name, labels=True)[0]
        return MultiHeadAnswer({w: multi_head_count(answer.listings, own, at, w) for w in days})

    def batch(
        self,
        queries: Sequence[tuple[str, str]],
        list_name: str = "blacklist",
        labels: bool = True,
    ) -> list[MembershipAnswer]:
        """Membership for many ``(kind, value)`` queries in one evaluation round.

        All-or-nothing: one malformed identifier raises before anything is sent.
        """
        self._check_list(list_name)
        xs = self._inputs(queries, list_name)
        return self._membership(self._prfs(xs), labels)

    def screen(
        self,
        items: Iterable[ScreenItem],
        *,
        list_name: str = "blacklist",
        labels: bool = False,
        chunk_size: int = DEFAULT_SCREEN_CHUNK,
        progress: Callable[[ScreenProgress], None] | None = None,
        executor: Executor | None = None,
    ) -> Iterator[ScreenResult]:
        """Screen a whole book, ``chunk_size`` rows per evaluation round, in row order.

        A row whose identifier is refused yields a :class:`ScreenResult` with the
        (redacted) reason and the screen goes on; failures that are not the row's
        (too few holders, a stale epoch, a bucket mismatch) stop it with their named
        error, every row before the failing chunk having been yielded. The list and
        ``chunk_size`` are checked here, before the first row is read.

        With an ``executor`` (owned, and shut down, by the caller) the querier's crypto
        runs on its workers and chunks are pipelined: the next chunk is read and blinded
        and the previous one combined and finalized while the holders evaluate the
        current one, so up to three chunks are in flight. ``evaluate`` is still called
        from the consuming thread, one chunk at a time, in order.
        """
        self._check_list(list_name)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise QueryError(f"chunk_size must be an int, got {chunk_size!r}")
        if not 1 <= chunk_size <= MAX_BATCH:
            raise QueryError(f"chunk_size must be in 1..{MAX_BATCH}, got {chunk_size}")
        if executor is not None:
            return self._screen_pipelined(items, list_name, labels, chunk_size, progress, executor)
        return self._screen(items, list_name, labels, chunk_size, progress)

    def _screen(
        self,
        items: Iterable[ScreenItem],
        list_name: str,
        labels: bool,
        chunk_size: int,
        progress: Callable[[ScreenProgress], None] | None,
    ) -> Iterator[ScreenResult]:
        state = ScreenProgress(0, 0, 0)
        for chunk in self._read_chunks(items, list_name, chunk_size):
            state = yield from self._screen_chunk(chunk, labels, state, progress)

    def _screen_input(self, item: ScreenItem, list_name: str) -> bytes | str:
        """The row's OPRF input, or the reason it is skipped (never the identifier)."""
        if isinstance(item, bytes):
            return item if 0 < len(item) <= 0xFFFF else "input must be 1..65535 bytes"
        try:
            kind, value = item
            return inputs.membership_input(list_name, kind, value, country=self.country)
        except (ValueError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def _screen_chunk(
        self,
        chunk: Sequence[tuple[int, bytes | str]],
        labels: bool,
        state: ScreenProgress,
        progress: Callable[[ScreenProgress], None] | None,
    ) -> Generator[ScreenResult, None, ScreenProgress]:
        valid = [(p, x) for p, x in chunk if isinstance(x, bytes)]
        answers = self._membership(self._prfs([x for _, x in valid]), labels) if valid else []
        return (yield from self._chunk_results(chunk, valid, answers, state, progress))

    def _chunk_results(
        self,
        chunk: Sequence[tuple[int, bytes | str]],
        valid: Sequence[tuple[int, bytes]],
        answers: Sequence[MembershipAnswer],
        state: ScreenProgress,
        progress: Callable[[ScreenProgress], None] | None,
    ) -> Generator[ScreenResult, None, ScreenProgress]:
        """Yield a chunk's rows in order (answers, or skip reasons), then report progress."""
        by_position = dict(zip((p for p, _ in valid), answers, strict=True))
        results: list[ScreenResult] = []
        for position, x in chunk:
            if isinstance(x, str):
                results.append(ScreenResult(position, None, x))
            else:
                results.append(ScreenResult(position, by_position[position]))
        state = ScreenProgress(
            state.rows + len(chunk),
            state.listed + sum(a.listed for a in answers),
            state.skipped + len(chunk) - len(valid),
        )
        yield from results
        if progress is not None:
            progress(state)
        return state

    # --- the pipelined screen ------------------------------------------------------------

    def _read_chunks(
        self, items: Iterable[ScreenItem], list_name: str, chunk_size: int
    ) -> Iterator[list[tuple[int, bytes | str]]]:
        """The book in chunks of ``(position, OPRF input or skip reason)``."""
        chunk: list[tuple[int, bytes | str]] = []
        for position, item in enumerate(items):
            chunk.append((position, self._screen_input(item, list_name)))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _start_round(
        self, chunk: list[tuple[int, bytes | str]] | None, executor: Executor
    ) -> _Round | None:
        """Read ahead: the chunk's valid rows, their blinding submitted to ``executor``."""
        if chunk is None:
            return None
        valid = [(p, x) for p, x in chunk if isinstance(x, bytes)]
        return _Round(chunk, valid, blind_all([x for _, x in valid], executor))

    def _evaluate_round(self, round_: _Round, executor: Executor) -> Pending[bytes]:
        """The holders' hop for one chunk (in this thread), proofs verified concurrently;
        combining and finalizing submitted, not awaited."""
        if not round_.valid:
            return Pending([])
        pairs = round_.blinding.result()
        blinds = [r for r, _ in pairs]
        blinded = [b for _, b in pairs]
        answer = self._evaluate(self.epoch_keys.epoch, list(blinded))
        xs = [x for _, x in round_.valid]
        return unblind_verified(
            self.epoch_keys, xs, blinds, blinded, answer, self._on_dropped, executor
        )

    def _finish_round(
        self,
        round_: _Round,
        outputs: Pending[bytes],
        labels: bool,
        state: ScreenProgress,
        progress: Callable[[ScreenProgress], None] | None,
    ) -> Generator[ScreenResult, None, ScreenProgress]:
        answers = self._membership(outputs.result(), labels) if round_.valid else []
        results = self._chunk_results(round_.chunk, round_.valid, answers, state, progress)
        return (yield from results)

    def _screen_pipelined(
        self,
        items: Iterable[ScreenItem],
        list_name: str,
        labels: bool,
        chunk_size: int,
        progress: Callable[[ScreenProgress], None] | None,
        executor: Executor,
    ) -> Iterator[ScreenResult]:
        """:meth:`_screen` with chunk ``i + 1`` blinding and chunk ``i - 1`` finalizing on
        ``executor`` while chunk ``i`` is evaluated; rows still come out in order, and a
        failing chunk still leaves every earlier row yielded."""
        state = ScreenProgress(0, 0, 0)
        chunks = self._read_chunks(items, list_name, chunk_size)
        ahead: _Round | None = None
        previous: tuple[_Round, Pending[bytes]] | None = None
        try:
            ahead = self._start_round(next(chunks, None), executor)
            while ahead is not None:
                current = ahead
                try:
                    ahead = self._start_round(next(chunks, None), executor)
                    outputs = self._evaluate_round(current, executor)
                except BaseException:
                    if previous is not None:
                        yield from self._finish_round(*previous, labels, state, progress)
                        previous = None
                    raise
                if previous is not None:
                    state = yield from self._finish_round(*previous, labels, state, progress)
                previous = (current, outputs)
            if previous is not None:
                round_, outputs = previous
                previous = None
                yield from self._finish_round(round_, outputs, labels, state, progress)
        finally:  # closed early or failed: do not leave queued work behind
            if ahead is not None:
                ahead.blinding.cancel()
            if previous is not None:
                previous[1].cancel()


@dataclass(frozen=True)
class _Round:
    """One chunk of a pipelined screen: its rows, the valid ones, their blinding."""

    chunk: list[tuple[int, bytes | str]]
    valid: list[tuple[int, bytes]]
    blinding: Pending[tuple[bytes, bytes]]
