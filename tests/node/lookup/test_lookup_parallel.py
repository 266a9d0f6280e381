"""The parallel screening path gives the same answers as the sequential one, and both
the plaintext union's.

``Querier.screen(executor=...)`` and ``evaluate_obliviously(executor=...)`` spread the
querier's work over a thread or process pool and pipeline chunks; nothing about the
answers may change: the PRF outputs are compared byte for byte with the sequential path
and with ``oprf.evaluate`` under the key reconstructed from the holders' shares, the
screened rows with a plaintext dict of who listed what, and the failure behaviour
(a holder dropped and named, a chunk failing with every earlier row yielded) with the
sequential path's.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import rbcl  # type: ignore[import-untyped]

from node.crypto import oprf, threshold_oprf
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.lookup import inputs
from node.lookup.epoch import (
    PARALLEL_MIN_ELEMENTS,
    EpochDescriptor,
    EpochKeys,
    TooFewHoldersError,
    evaluate_obliviously,
    run_dkg,
)
from node.lookup.keyholder import KeyHolder
from node.lookup.publisher import OwnInput, publish
from node.lookup.querier import Querier, ScreenItem, ScreenProgress, ScreenResult, UnionDownload
from node.lookup.union import Listing, build_union

EPOCH = 3
LIST = "blacklist"
T, N = 2, 4
CHUNK = 150  # two chunks above PARALLEL_MIN_ELEMENTS, the last one below it
ROWS = 2 * CHUNK + 60
Row = tuple[int, bool, int, tuple[Listing, ...], bool]
"""A screened row as compared: position, listed, multiplicity, listings, skipped."""
LABELS = (frozenset({"fraud"}), frozenset({"fraud", "mule"}), frozenset({"scam-call"}))


def phone(i: int) -> str:
    return f"138{i:08d}"


def x_of(number: str) -> bytes:
    return inputs.membership_input(LIST, "phone", number)


@dataclass
class Holders:
    """The evaluation hop to in-process holders; ``tamper`` answers with a wrong share,
    ``fail_after`` stops answering after that many calls (holders gone offline)."""

    holders: list[KeyHolder]
    tamper: set[int] = field(default_factory=set)
    fail_after: int | None = None
    calls: int = 0

    def __call__(self, epoch: int, blinded: list[bytes]) -> list[ShareEvaluation]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            return []
        answers = [h.evaluate(epoch, blinded) for h in self.holders]
        return [
            ShareEvaluation(a.index, list(reversed(a.evaluated_elements)), a.proof)
            if a.index in self.tamper
            else a
            for a in answers
        ]


@dataclass
class World:
    keys: EpochKeys
    shares: list[KeyShare]
    holders: Holders
    querier: Querier
    plain: dict[bytes, list[Listing]]
    book: list[ScreenItem]


@pytest.fixture(scope="module")
def world() -> World:
    rng = random.Random(15)
    keys, shares = run_dkg(T, N, epoch=EPOCH, list_name=LIST)
    hop = Holders([KeyHolder(s, keys) for s in shares])
    pool = [phone(i) for i in rng.sample(range(10**8), 120)]
    plain: dict[bytes, list[Listing]] = {}
    contributions = []
    for provider in range(3):  # overlapping lists: multiplicity 1 to 3
        rows = []
        for j, number in enumerate(rng.sample(pool, 60)):
            labels, when = LABELS[(j + provider) % 3], 1_790_000_000 - 3_600 * j
            rows.append(OwnInput(x_of(number), labels, when))
            plain.setdefault(x_of(number), []).append(Listing(when, tuple(sorted(labels))))
        contributions.append(publish(keys, rows, hop))
    union = build_union(EPOCH, contributions)
    anchor = EpochDescriptor(EPOCH, keys.digest, union.digest)
    querier = Querier(keys, UnionDownload.of(union), union.buckets.__getitem__, hop, anchor=anchor)
    book: list[ScreenItem] = []
    for k in range(ROWS):
        if k % 37 == 5:
            book.append(("phone", "138-0013-800x"))  # malformed: skipped with a reason
        elif k % 29 == 3:
            book.append(x_of(rng.choice(pool)))  # already encoded by the file reader
        else:
            book.append(("phone", rng.choice(pool) if k % 3 == 0 else phone(rng.randrange(10**8))))
    return World(keys, shares, hop, querier, plain, book)


@pytest.fixture(scope="module", params=["threads", "processes"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if request.param == "threads":
        pool: Executor = ThreadPoolExecutor(2)
    else:
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))
    with pool:
        yield pool


@pytest.fixture
def fresh(world: World) -> World:
    world.holders.tamper.clear()
    world.holders.fail_after = None
    world.holders.calls = 0
    return world


def reconstructed_key(shares: Sequence[KeyShare]) -> bytes:
    """The plaintext key ``k = sum lambda_i k_i`` that no party ever holds."""
    lambdas = threshold_oprf.lagrange_at_zero([s.index for s in shares])
    key = bytes(32)
    for s in shares:
        key = rbcl.crypto_core_ristretto255_scalar_add(
            key, rbcl.crypto_core_ristretto255_scalar_mul(lambdas[s.index], s.secret)
        )
    return bytes(key)


def plain_screen(world: World) -> list[Row]:
    """Per row: position, listed, multiplicity, listings (labels), skipped — by dict."""
    expected: list[Row] = []
    for position, item in enumerate(world.book):
        try:
            x = item if isinstance(item, bytes) else x_of(item[1])
        except ValueError:
            expected.append((position, False, 0, (), True))
            continue
        found = world.plain.get(x, [])
        expected.append((position, bool(found), len(found), tuple(sorted(found)), False))
    return expected


def as_rows(results: Sequence[ScreenResult], labels: bool) -> list[Row]:
    rows: list[Row] = []
    for r in results:
        if r.answer is None:
            assert r.error is not None
            rows.append((r.position, False, 0, (), True))
        else:
            listings = r.answer.listings if labels else ()
            rows.append((r.position, r.answer.listed, r.answer.multiplicity, listings, False))
    return rows


def without_labels(
    rows: list[Row],
) -> list[Row]:
    return [(p, listed, m, (), skipped) for p, listed, m, _, skipped in rows]


@pytest.mark.parametrize("labels", [False, True])
def test_parallel_screen_equals_sequential_and_plaintext(
    fresh: World, executor: Executor, labels: bool
) -> None:
    sequential_reports: list[ScreenProgress] = []
    parallel_reports: list[ScreenProgress] = []
    sequential = list(
        fresh.querier.screen(
            fresh.book, labels=labels, chunk_size=CHUNK, progress=sequential_reports.append
        )
    )
    parallel = list(
        fresh.querier.screen(
            fresh.book,
            labels=labels,
            chunk_size=CHUNK,
            progress=parallel_reports.append,
            executor=executor,
        )
    )
    expected = plain_screen(fresh)
    assert as_rows(parallel, labels) == as_rows(sequential, labels)
    assert as_rows(parallel, labels) == (expected if labels else without_labels(expected))
    assert [r.error for r in parallel] == [r.error for r in sequential]
    assert parallel_reports == sequential_reports
    assert len(parallel_reports) == -(-ROWS // CHUNK)
    assert parallel_reports[-1].listed == sum(row[1] for row in expected) > 0
    assert parallel_reports[-1].skipped == sum(row[4] for row in expected) > 0


def test_parallel_outputs_are_byte_identical_to_sequential_and_the_plain_prf(
    fresh: World, executor: Executor
) -> None:
    xs = [x_of(phone(i)) for i in range(PARALLEL_MIN_ELEMENTS + 40)]
    sequential = evaluate_obliviously(fresh.keys, xs, fresh.holders)
    parallel = evaluate_obliviously(fresh.keys, xs, fresh.holders, executor=executor)
    key = reconstructed_key(fresh.shares[:T])
    assert parallel == sequential == [oprf.evaluate(key, x) for x in xs]


def test_parallel_verification_drops_and_names_the_same_holder(
    fresh: World, executor: Executor
) -> None:
    xs = [x_of(phone(i)) for i in range(PARALLEL_MIN_ELEMENTS)]
    fresh.holders.tamper.add(2)
    dropped_sequential: list[tuple[int, str]] = []
    dropped_parallel: list[tuple[int, str]] = []
    sequential = evaluate_obliviously(
        fresh.keys, xs, fresh.holders, lambda i, why: dropped_sequential.append((i, why))
    )
    parallel = evaluate_obliviously(
        fresh.keys,
        xs,
        fresh.holders,
        lambda i, why: dropped_parallel.append((i, why)),
        executor=executor,
    )
    assert parallel == sequential
    assert [i for i, _ in dropped_parallel] == [i for i, _ in dropped_sequential] == [2]
    assert "holder 2" in dropped_parallel[0][1]
    fresh.holders.tamper.update({1, 3})  # only holder 4 left: fewer than t
    with pytest.raises(TooFewHoldersError) as info:
        evaluate_obliviously(fresh.keys, xs, fresh.holders, executor=executor)
    assert info.value.valid == (4,) and set(info.value.dropped) == {1, 2, 3}


def test_a_failing_chunk_leaves_every_earlier_row_yielded(fresh: World, executor: Executor) -> None:
    """Holders go offline after the first chunk: the pipelined screen still yields the
    first chunk's rows (as the sequential one does), then raises the named error."""
    outcomes = []
    for pool in (None, executor):
        fresh.holders.calls = 0
        fresh.holders.fail_after = 1
        got: list[ScreenResult] = []
        with pytest.raises(TooFewHoldersError):
            for result in fresh.querier.screen(fresh.book, chunk_size=CHUNK, executor=pool):
                got.append(result)
        outcomes.append(as_rows(got, labels=False))
    sequential, parallel = outcomes
    assert parallel == sequential
    assert [row[0] for row in parallel] == list(range(CHUNK))


def test_closing_a_pipelined_screen_early_is_clean(fresh: World, executor: Executor) -> None:
    screen = fresh.querier.screen(fresh.book, chunk_size=CHUNK, executor=executor)
    first = [next(screen) for _ in range(3)]
    screen.close()  # type: ignore[attr-defined]
    assert [r.position for r in first] == [0, 1, 2]
    assert fresh.holders.calls <= 2  # the chunk being read ahead was not evaluated
