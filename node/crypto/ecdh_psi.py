"""Two-party Diffie-Hellman PSI (Meadows / Huberman-Franklin-Hogg) as pure protocol steps.

Why this module exists: issue 14's ECDH mode needs the curve work of a DH-PSI, streamed
and spread over both cores, without any transport; the task runner (later) moves the
batches these functions produce and consume. Each party raises its hashed items to a
secret key, the other raises them again, and because ``a*(b*H(x)) == b*(a*H(x))``
equal doubly-keyed values mean equal items, while a singly-keyed value is a pseudorandom
group element that (under DDH in the random-oracle model) says nothing about ``x``.

Curve choice: ristretto255 (RFC 9496) through libsodium (``rbcl``), not X25519.
X25519 through ``cryptography`` is the cheapest single operation here (~36 µs against
~58 µs), but it only takes a u-coordinate, and there is no sound way to get a hashed
item onto the curve with the primitives we may use:

* a hash taken directly as a u-coordinate lands on the curve or on its quadratic twist
  with probability 1/2 each, and which one is public (a Legendre symbol of
  ``u^3 + 486662 u^2 + u``). The responder, seeing ``a*H(x)`` for each requester item,
  would learn that bit of ``H(x)`` and could halve a dictionary of candidate phone or ID
  numbers per item: a leak, not a theoretical nit. (Clamping makes the scalar a
  multiple of 8, which does clear both cofactors, and twist security means twist inputs
  do not leak the key; neither fixes the bit. ``cryptography`` refusing an all-zero
  shared secret only catches the ~12 low-order inputs, equally irrelevant to the bit.)
* mapping to the curve proper needs Elligator 2 (or try-and-increment with a square
  test), i.e. field arithmetic written here; ``cryptography`` exposes none and ``rbcl``
  has no ``crypto_core_ed25519_from_uniform``. The brief forbids rolling that ourselves.

ristretto255 is a prime-order group (no cofactor, no twist, one canonical encoding), RFC
9380 gives a hash onto it (``hash_to_ristretto255``: ``expand_message_xmd`` with SHA-512,
then libsodium's one-way map), libsodium refuses non-canonical encodings and identity
results, and the OPRF module already relies on it. The price is ~1.6x per operation
(measured beside it by ``scripts/bench/psi_core.py``).

Protocol (requester A, responder B; items are already ``identifier_tag(kind) ||
normalised value``, and each side should deduplicate its own items first, because equal
items give equal blinded elements and the peer would see the multiplicity):

1. A: ``a = new_key()``; sends ``X_A = hash_and_blind(a, items_A)``.
2. B: ``b = new_key()``; sends ``X_B = hash_and_blind(b, items_B)`` and, for
   ``intersection``, ``intersection_response(b, X_A)`` (digests of ``b*X_A`` in A's order),
   or, for ``cardinality``, ``cardinality_response(b, X_A)`` (the same digests shuffled
   with a CSPRNG, so A learns only how many match, not which).
3. A: ``peer = DigestSet(digests(reblind(a, X_B)))``; then
   ``intersection(items_A, response, peer)`` or ``cardinality(response, peer)``.

Each item costs one hash to the group and two multiplications (one under each key), so
an n x n run is 2n hashes and 4n multiplications. Both parties learn the other's set
size. The DH-PSI is secure against semi-honest parties; a malicious B can answer with
digests of anything it likes (wrong answers, but no leak of A's items, which it only
ever sees keyed); binding B to a committed key is the VOPRF's job, not this module's.

Streaming: ``iter_hash_and_blind`` / ``iter_reblind`` take an iterable of chunks and
yield result chunks in order, keeping at most ``2 * processes`` chunks in flight, so
10^7 items never exist as Python objects at once. ``iter_blind_buffers`` /
``iter_reblind_buffers`` do the same in the wire form (one concatenated buffer per
chunk, pieces of any size in, optionally the 12-byte digests made in the workers), so
neither side makes a ``bytes`` object per element and only one buffer per chunk crosses
the process boundary each way. What must be whole is held as
fixed-width numpy buffers, not objects: the requester's :class:`DigestSet` of the
responder's digests (12 bytes each, built chunk by chunk) and, for ``cardinality``, the
responder's digests while they are shuffled (:func:`shuffle_digest_buffer`);
:func:`iter_intersection` then walks the requester's items and the in-order response
chunk by chunk, remembering only the matches. Chunks go to a
``ProcessPoolExecutor`` (``forkserver``, because a node process has gRPC threads and
forking those is unsafe) with the key as 32 bytes; one process runs inline.

Errors: a peer element that is not 32 bytes, not a canonical ristretto255 encoding, or
the identity raises :class:`InvalidPeerElementError` naming its position; a bad key
raises :class:`InvalidKeyError`. Neither message carries an item.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import rbcl  # type: ignore[import-untyped]

from node.crypto import oprf

ELEMENT_BYTES: Final = 32
KEY_BYTES: Final = 32
DIGEST_BYTES: Final = 12
"""Comparison digests are 12 bytes (96 bits). A requester item falsely matches only if
its digest equals that of a different responder item; over ``n_A * n_B`` pairs the
expected number of false matches is at most ``n_A * n_B / 2**96``: for 10^7 x 10^7,
``10**14 / 2**96 ~ 1.3e-15``. That cuts the responder's in-order answer from 32 to 12
bytes per item."""

CHUNK_ITEMS: Final = 2048
"""Items per chunk handed to a worker: large enough that pickling and scheduling
(~tens of µs per chunk) vanish beside 2048 x ~80 µs of curve work, small enough
that ``2 * processes`` chunks in flight stay a few MB."""

HASH_DST: Final = b"HashToGroup-provnet-ecdh-psi-v1-ristretto255-SHA512"
"""RFC 9380 domain separation tag of the item hash: distinct from the OPRF's
(``node.crypto.oprf``), so a DH-PSI value can never be replayed as an OPRF value or
vice versa, even under the same key."""

DIGEST_DST: Final = b"provnet-ecdh-psi-digest-v1"

_IDENTITY: Final = bytes(ELEMENT_BYTES)

_P = TypeVar("_P")


class EcdhPsiError(ValueError):
    """Base of every error this module raises on bad input, so a runner catches one type."""


class InvalidPeerElementError(EcdhPsiError):
    """An element from the peer that is not a canonical, non-identity ristretto255 point."""


class InvalidKeyError(EcdhPsiError):
    """A key that is not a canonical non-zero 32-byte ristretto255 scalar."""


class InvalidDigestError(EcdhPsiError):
    """A digest from the peer that is not ``DIGEST_BYTES`` long."""


def new_key() -> bytes:
    """A fresh secret scalar from libsodium's CSPRNG; one per party per PSI session.

    Fresh per session because the same key across sessions would let a peer link items
    between sessions (equal blinded elements).
    """
    return oprf.random_scalar()


def _check_key(key: bytes) -> bytes:
    try:
        return oprf.check_scalar(key, "key")
    except oprf.InvalidScalarError as exc:
        raise InvalidKeyError(str(exc)) from None


def hash_to_element(item: bytes) -> bytes:
    """RFC 9380 ``hash_to_ristretto255`` of ``item`` under this module's DST.

    The identity comes out with probability ~2^-252; it is refused (it would erase the
    key) with a message that does not contain the item.
    """
    uniform = oprf.expand_message_xmd(item, HASH_DST, 64)
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(uniform)
    if element == _IDENTITY:  # pragma: no cover - needs a SHA-512 preimage
        raise EcdhPsiError("an item hashes to the identity element; it cannot be blinded")
    return element


def _diagnose(element: object, index: int) -> InvalidPeerElementError:
    """Why libsodium refused ``element``: the named error a runner reports."""
    if not isinstance(element, bytes) or len(element) != ELEMENT_BYTES:
        got = f"{len(element)} bytes" if isinstance(element, bytes) else type(element).__name__
        return InvalidPeerElementError(f"element {index} must be {ELEMENT_BYTES} bytes, got {got}")
    if element == _IDENTITY:
        return InvalidPeerElementError(f"element {index} is the identity element")
    return InvalidPeerElementError(f"element {index} is not a canonical ristretto255 encoding")


def hash_and_blind(key: bytes, items: Sequence[bytes]) -> list[bytes]:
    """``key * H(item)`` for each item, in order: the first message of either party."""
    _check_key(key)
    out = []
    for item in items:
        out.append(rbcl.crypto_scalarmult_ristretto255(key, hash_to_element(item)))
    return out


def reblind(key: bytes, elements: Sequence[bytes], offset: int = 0) -> list[bytes]:
    """``key * element`` for each of the peer's elements, in order.

    libsodium refuses a non-canonical encoding and an identity result (the only way to
    get one from a non-zero scalar in a prime-order group is the identity as input), so
    each element costs one multiplication and no separate validation pass. ``offset``
    is the position of ``elements[0]`` in the whole stream, for the error message.
    """
    _check_key(key)
    out = []
    for i, element in enumerate(elements):
        if not isinstance(element, bytes) or len(element) != ELEMENT_BYTES:
            raise _diagnose(element, offset + i)
        try:
            out.append(rbcl.crypto_scalarmult_ristretto255(key, element))
        except RuntimeError:
            raise _diagnose(element, offset + i) from None
    return out


def digests(elements: Sequence[bytes]) -> list[bytes]:
    """Short comparable digests of doubly-blinded elements (see ``DIGEST_BYTES``).

    Only ever applied to doubly-keyed values, which are pseudorandom, so a digest is
    not an unkeyed hash of an item. The DST keeps these digests apart from any other
    truncated SHA-256 in the system.
    """
    return [hashlib.sha256(DIGEST_DST + e).digest()[:DIGEST_BYTES] for e in elements]


def intersection_response(key: bytes, elements: Sequence[bytes], offset: int = 0) -> list[bytes]:
    """Responder: digests of ``key * element`` in the requester's order (intersection)."""
    return digests(reblind(key, elements, offset))


def cardinality_response(key: bytes, elements: Sequence[bytes]) -> list[bytes]:
    """Responder: the same digests as ``intersection_response``, shuffled by a CSPRNG.

    The order is a uniformly random permutation drawn from ``os.urandom`` (two 64-bit
    keys per position, sorted lexicographically, so ties have probability ~n^2/2^129),
    independent of the requester's order: the requester can count matches but cannot
    tell which of its items they are. The whole set must be present to shuffle it;
    :func:`shuffle_digest_buffer` does it on one fixed-width buffer for large sets.
    """
    return shuffle_digests(intersection_response(key, elements))


def shuffle_digests(values: Sequence[bytes]) -> list[bytes]:
    """A CSPRNG permutation of ``values`` (all ``DIGEST_BYTES`` long)."""
    n = len(values)
    if n == 0:
        return []
    table = _digest_table(values, "values")
    return [bytes(row) for row in table[_csprng_permutation(n)]]


def shuffle_digest_buffer(buffer: bytes) -> bytes:
    """:func:`shuffle_digests` over concatenated digests, for 10^7 without Python objects."""
    table = _buffer_table(buffer, "buffer")
    shuffled: bytes = table[_csprng_permutation(len(table))].tobytes()
    return shuffled


def _csprng_permutation(n: int) -> npt.NDArray[np.intp]:
    """A uniform random permutation of ``range(n)`` keyed by ``os.urandom``.

    numpy's own generators are not cryptographic; sorting by 128 random bits from the
    OS CSPRNG is, up to ties whose probability is below n^2 / 2^129.
    """
    keys = np.frombuffer(os.urandom(16 * n), dtype=np.uint64).reshape(n, 2)
    return np.lexsort((keys[:, 1], keys[:, 0]))


def _digest_table(values: Iterable[bytes], what: str) -> npt.NDArray[np.uint8]:
    """Digests as an ``(n, DIGEST_BYTES)`` byte array; anything of the wrong length is refused."""
    joined = bytearray()
    for i, value in enumerate(values):
        if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
            raise InvalidDigestError(f"{what}[{i}] must be a {DIGEST_BYTES}-byte digest")
        joined += value
    return _buffer_table(bytes(joined), what)


def _buffer_table(buffer: bytes, what: str) -> npt.NDArray[np.uint8]:
    if len(buffer) % DIGEST_BYTES:
        raise InvalidDigestError(
            f"{what}: buffer length {len(buffer)} is not a multiple of {DIGEST_BYTES}"
        )
    return np.frombuffer(buffer, dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def _as_keys(table: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]:
    """One fixed-width ``S`` value per row, so numpy sorts and searches whole digests.

    ``S`` drops trailing zero bytes only when comparing values of different stored
    lengths; all of these are exactly ``DIGEST_BYTES``, so equality is byte equality.
    """
    keys: npt.NDArray[np.bytes_] = np.ascontiguousarray(table).view(f"S{DIGEST_BYTES}").ravel()
    return keys


class DigestSet:
    """The requester's copy of the responder's digests, ``digests(reblind(a, X_B))``.

    Kept as one sorted fixed-width array (12 bytes per digest, no Python object per
    entry), so 10^7 peer digests take 120 MB and a lookup is a binary search. Built
    from chunks as they stream in (:meth:`add`), then frozen by the first lookup.
    """

    def __init__(self, digests: Iterable[bytes] = ()) -> None:
        self._parts: list[bytes] = []
        self._keys: npt.NDArray[np.bytes_] | None = None
        self.add(digests)

    def add(self, digests: Iterable[bytes]) -> None:
        """Add digests (each ``DIGEST_BYTES`` long); refused once lookups have begun."""
        self.add_buffer(_digest_table(digests, "peer_digests").tobytes())

    def add_buffer(self, buffer: bytes) -> None:
        """Add concatenated digests, the form they travel in."""
        if self._keys is not None:
            raise EcdhPsiError("DigestSet is frozen: digests were added after a lookup")
        _buffer_table(buffer, "peer_digests")
        self._parts.append(bytes(buffer))

    def _frozen(self) -> npt.NDArray[np.bytes_]:
        """Copy the parts into one array, releasing each as it goes, and sort in place:
        the peak is one copy of the digests (plus one part), not three."""
        if self._keys is None:
            total = sum(len(part) for part in self._parts) // DIGEST_BYTES
            keys: npt.NDArray[np.bytes_] = np.empty(total, dtype=f"S{DIGEST_BYTES}")
            flat = keys.view(np.uint8)
            at = 0
            parts, self._parts = self._parts[::-1], []
            while parts:
                part = parts.pop()
                flat[at : at + len(part)] = np.frombuffer(part, dtype=np.uint8)
                at += len(part)
            keys.sort()
            self._keys = keys
        return self._keys

    def __len__(self) -> int:
        return len(self._frozen())

    def _hits(self, probe: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
        keys = self._frozen()
        if len(keys) == 0 or len(probe) == 0:
            return np.zeros(len(probe), dtype=np.bool_)
        pos = np.searchsorted(keys, probe)
        pos[pos == len(keys)] = 0
        hits: npt.NDArray[np.bool_] = keys[pos] == probe
        return hits

    def contains(self, digests: Sequence[bytes], what: str = "response") -> list[bool]:
        """Whether each digest is among the peer's, in order."""
        return [bool(x) for x in self._hits(_as_keys(_digest_table(digests, what)))]

    def count_distinct(self, buffer: bytes) -> int:
        """How many distinct digests of concatenated ``buffer`` are among the peer's."""
        return self.count_distinct_chunks([buffer])

    def count_distinct_chunks(self, buffers: Iterable[bytes]) -> int:
        """:meth:`count_distinct` over a stream of buffers: only the matching digests
        are kept (as many as the intersection), so the answer need not be whole."""
        found: list[npt.NDArray[np.bytes_]] = []
        for buffer in buffers:
            probe = _as_keys(_buffer_table(buffer, "response"))
            found.append(probe[self._hits(probe)])
        if not found:
            return 0
        return len(np.unique(np.concatenate(found)))

    def hits(self, buffer: bytes, what: str = "response") -> npt.NDArray[np.bool_]:
        """Whether each digest of concatenated ``buffer`` is among the peer's, as one
        boolean per digest (no Python object per digest)."""
        return self._hits(_as_keys(_buffer_table(buffer, what)))


def _as_digest_set(peer_digests: DigestSet | Iterable[bytes]) -> DigestSet:
    return peer_digests if isinstance(peer_digests, DigestSet) else DigestSet(peer_digests)


def iter_intersection(
    item_chunks: Iterable[Sequence[bytes]],
    response_chunks: Iterable[Sequence[bytes]],
    peer_digests: DigestSet,
) -> Iterator[list[bytes]]:
    """Streaming :func:`intersection`: items and responses arrive in matching chunks.

    Only the matched items are remembered (to report each once), so memory grows with
    the intersection, not with the sets. Chunks of unequal length are refused: they
    would pair items with another item's answer.
    """
    seen: set[bytes] = set()
    item_iter, response_iter = iter(item_chunks), iter(response_chunks)
    offset = 0
    while True:
        items = next(item_iter, None)
        response = next(response_iter, None)
        if items is None and response is None:
            return
        if items is None or response is None:
            raise EcdhPsiError(f"the {'item' if items is None else 'response'} stream ended first")
        if len(items) != len(response):
            raise EcdhPsiError(
                f"response chunk at {offset} has {len(response)} digests for {len(items)} items"
            )
        out = []
        for item, hit in zip(items, peer_digests.contains(response), strict=True):
            if hit and item not in seen:
                seen.add(item)
                out.append(item)
        offset += len(items)
        yield out


def intersection(
    items: Sequence[bytes],
    response: Sequence[bytes],
    peer_digests: DigestSet | Iterable[bytes],
) -> list[bytes]:
    """Requester: the distinct items of ``items`` the responder also holds, in order.

    ``response`` is ``intersection_response`` (one digest per item, same order);
    ``peer_digests`` is ``digests(reblind(a, X_B))`` or a :class:`DigestSet` of them.
    A response of the wrong length is refused: it would pair items with wrong answers.
    """
    if len(response) != len(items):
        raise EcdhPsiError(f"response has {len(response)} digests for {len(items)} items")
    peer = _as_digest_set(peer_digests)
    return [x for chunk in iter_intersection([items], [response], peer) for x in chunk]


def cardinality(response: Sequence[bytes], peer_digests: DigestSet | Iterable[bytes]) -> int:
    """Requester: how many distinct items the two sets share (``|A ∩ B|``).

    Counts distinct response digests found among the peer's, so duplicates on either
    side do not inflate the count (as with Python's ``len(set(A) & set(B))``). For
    10^7 digests, pass the concatenated buffer to :meth:`DigestSet.count_distinct`.
    """
    peer = _as_digest_set(peer_digests)
    return peer.count_distinct(_digest_table(response, "response").tobytes())


def digest_buffer(elements: Sequence[bytes]) -> bytes:
    """``digests(elements)`` concatenated: the wire form of a chunk of digests."""
    return b"".join(digests(elements))


# --- streaming over a process pool ------------------------------------------------------


def _blind_chunk(key: bytes, items: list[bytes], offset: int) -> bytes:
    """Worker: ``hash_and_blind`` of one chunk, returned as one concatenated buffer."""
    del offset
    return b"".join(hash_and_blind(key, items))


def _reblind_chunk(key: bytes, elements: list[bytes], offset: int) -> bytes:
    """Worker: ``reblind`` of one chunk; errors carry the element's stream position."""
    return b"".join(reblind(key, elements, offset))


def _reblind_buffer(key: bytes, buffer: bytes, offset: int) -> bytes:
    """Worker: ``reblind`` of concatenated elements, returned concatenated.

    One ``bytes`` object crosses the process boundary each way instead of one per
    element, which is what keeps pickling out of the profile.
    """
    return b"".join(reblind(key, _split(buffer), offset))


def _reblind_digest_buffer(key: bytes, buffer: bytes, offset: int) -> bytes:
    """Worker: ``digest_buffer(reblind(...))`` of concatenated elements: the 32-byte
    doubly-keyed elements never leave the worker, only their 12-byte digests."""
    return digest_buffer(reblind(key, _split(buffer), offset))


def _split(joined: bytes) -> list[bytes]:
    return [joined[i : i + ELEMENT_BYTES] for i in range(0, len(joined), ELEMENT_BYTES)]


def new_executor(processes: int | None = None) -> ProcessPoolExecutor:
    """A pool for the streaming functions (``forkserver``: safe from a threaded node).

    A runner creates one per node and reuses it, since starting workers costs ~0.1 s
    each; ``processes`` defaults to the CPU count.
    """
    workers = processes or os.cpu_count() or 1
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def _pipeline(
    work: Callable[[bytes, _P, int], bytes],
    key: bytes,
    jobs: Iterable[tuple[_P, int]],
    processes: int,
    executor: Executor | None,
) -> Iterator[bytes]:
    """``work(key, payload, offset)`` for each ``(payload, count)`` job, results in
    order, with at most ``2 * processes`` jobs in flight.

    Bounded look-ahead is what keeps memory flat: the caller's job iterator is only
    advanced when a slot frees up. ``offset`` is the position of the job's first
    record in the whole stream (for error messages).
    """
    if executor is None and processes <= 1:
        offset = 0
        for payload, count in jobs:
            yield work(key, payload, offset)
            offset += count
        return
    own = executor is None
    pool = executor if executor is not None else new_executor(processes)
    limit = 2 * max(processes, 1)
    pending: deque[Future[bytes]] = deque()
    try:
        offset = 0
        for payload, count in jobs:
            pending.append(pool.submit(work, key, payload, offset))
            offset += count
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def _list_jobs(chunks: Iterable[Sequence[bytes]]) -> Iterator[tuple[list[bytes], int]]:
    for chunk in chunks:
        batch = list(chunk)
        yield batch, len(batch)


def _stream(
    work: Callable[[bytes, list[bytes], int], bytes],
    key: bytes,
    chunks: Iterable[Sequence[bytes]],
    processes: int,
    executor: Executor | None,
) -> Iterator[list[bytes]]:
    """Apply ``work`` to each chunk, in order (see :func:`_pipeline`), split into elements."""
    for joined in _pipeline(work, key, _list_jobs(chunks), processes, executor):
        yield _split(joined)


def iter_hash_and_blind(
    key: bytes,
    chunks: Iterable[Sequence[bytes]],
    processes: int = 1,
    executor: Executor | None = None,
) -> Iterator[list[bytes]]:
    """Streaming :func:`hash_and_blind`: one output chunk per input chunk, in order."""
    _check_key(key)  # here, not in the generator, so a bad key fails at the call
    return _stream(_blind_chunk, key, chunks, processes, executor)


def iter_reblind(
    key: bytes,
    chunks: Iterable[Sequence[bytes]],
    processes: int = 1,
    executor: Executor | None = None,
) -> Iterator[list[bytes]]:
    """Streaming :func:`reblind`; an invalid element raises at its stream position."""
    _check_key(key)
    return _stream(_reblind_chunk, key, chunks, processes, executor)


def iter_blind_buffers(
    key: bytes,
    item_chunks: Iterable[Sequence[bytes]],
    processes: int = 1,
    executor: Executor | None = None,
) -> Iterator[bytes]:
    """:func:`iter_hash_and_blind` yielding each chunk's elements concatenated (the
    wire form), so no ``bytes`` object per element is made on the caller's side."""
    _check_key(key)
    return _pipeline(_blind_chunk, key, _list_jobs(item_chunks), processes, executor)


def iter_reblind_buffers(
    key: bytes,
    buffers: Iterable[bytes],
    processes: int = 1,
    executor: Executor | None = None,
    *,
    digest: bool = False,
) -> Iterator[bytes]:
    """Streaming :func:`reblind` over concatenated elements (pieces of any size, as
    they arrive), yielding concatenated results of at most ``CHUNK_ITEMS`` elements
    each; with ``digest`` the workers return ``digest_buffer`` of the results instead.

    A piece whose length is not a multiple of ``ELEMENT_BYTES`` is refused with the
    position where it starts; an invalid element raises at its stream position.
    """
    _check_key(key)
    work = _reblind_digest_buffer if digest else _reblind_buffer
    return _pipeline(work, key, _buffer_jobs(buffers), processes, executor)


def _buffer_jobs(buffers: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """Cut concatenated elements into jobs of ``CHUNK_ITEMS`` elements."""
    width = CHUNK_ITEMS * ELEMENT_BYTES
    position = 0
    for buffer in buffers:
        if len(buffer) % ELEMENT_BYTES:
            raise InvalidPeerElementError(
                f"elements from {position} on: {len(buffer)} bytes is not a multiple of "
                f"{ELEMENT_BYTES}"
            )
        for at in range(0, len(buffer), width):
            job = bytes(buffer[at : at + width])
            yield job, len(job) // ELEMENT_BYTES
        position += len(buffer) // ELEMENT_BYTES


def chunked(values: Iterable[bytes], size: int = CHUNK_ITEMS) -> Iterator[list[bytes]]:
    """Group a stream of items or elements into lists of ``size`` for the iter_ functions."""
    if size < 1:
        raise ValueError(f"chunk size must be positive, got {size}")
    batch: list[bytes] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
