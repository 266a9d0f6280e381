"""The epoch union of the anonymous blacklist lookup (DESIGN §6), as pure functions over bytes.

Why this module exists: providers publish one joint, encrypted union per epoch so that a
querier holding ``F(k, x)`` (obtained through the threshold OPRF, which is not this
module's job) can learn "listed / not listed", how many providers list ``x`` and, when
it asks, the labels and event times — while nobody can tell which provider listed what,
and nobody without ``F(k, x)`` can read anything. Every input here is already a 64-byte
PRF output; nothing here talks to the network or the chain.

The union has two parts (format in ``docs/lookup-union.md``):

* the **compact table**, downloaded whole: a sorted array of 8-byte membership tags
  ``HKDF(prf, info="provnet-lookup-tag-v1" || epoch)`` and one multiplicity byte each,
  9 bytes per listed identifier. A random 64-bit tag matches one of ``n`` entries with
  probability ``n / 2**64`` per query (about 5e-15 for 10^5 entries);
* the **label buckets**, fetched one whole bucket at a time: one AEAD record per listed
  identifier, keyed by ``HKDF(prf, salt=bucket salt, info="provnet-lookup-label-key-v1"
  || epoch)``, so only a holder of ``F(k, x)`` can open it, placed in bucket
  ``tag[:4] mod bucket_count``. The server that serves a bucket learns the bucket index
  (about ``log2(bucket_count)`` bits of the tag), never which record was wanted.

Provider identity never enters the union: a :class:`Contribution` carries none, one
provider's entries for an identifier are merged into one listing first, listings inside
a record and records inside a bucket are shuffled, and the table is sorted by tag.

Primitives are the ``cryptography`` package's (HKDF-SHA256, ChaCha20-Poly1305); the
union digest is ``ledger.canonical``'s domain-separated rule; randomness is ``secrets``.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.canonical import canonical_json, digest, digest_json

__all__ = [
    "FORMAT_VERSION",
    "LABEL_MAX",
    "LABEL_PATTERN",
    "MAGIC",
    "MAX_LABELS",
    "MULTI_HEAD_WINDOWS",
    "PRF_BYTES",
    "TABLE_ENTRY_BYTES",
    "TAG_BYTES",
    "Contribution",
    "Entry",
    "Hit",
    "Listing",
    "Union",
    "UnionBuildError",
    "UnionDigestMismatch",
    "UnionError",
    "UnionFormatError",
    "UnionTable",
    "bucket_digest",
    "bucket_of",
    "build_union",
    "check_listing",
    "default_bucket_count",
    "digest_from_parts",
    "label_key",
    "lookup",
    "membership_tag",
    "multi_head_count",
    "open_labels",
    "own_listings",
    "parse_bucket",
    "verify_digest",
]

PRF_BYTES = 64  # RFC 9497 OPRF(ristretto255, SHA-512) output size
TAG_BYTES = 8
TABLE_ENTRY_BYTES = TAG_BYTES + 1  # tag + multiplicity byte
MAX_MULTIPLICITY = 255  # one byte; also threshold_oprf.MAX_HOLDERS
MAGIC = b"PVLU"
FORMAT_VERSION = 1
PAD_TO = 64  # label plaintexts are padded to a multiple of this, so lengths leak little
SALT_BYTES = 16
MULTI_HEAD_WINDOWS = (7, 30, 90)
SECONDS_PER_DAY = 86_400

_TAG_INFO = b"provnet-lookup-tag-v1"
_KEY_INFO = b"provnet-lookup-label-key-v1"
_ZERO_NONCE = bytes(12)
_AEAD_OVERHEAD = 16
_MAX_SAFE_INT = 2**53 - 1  # canonical JSON integers (ledger.canonical)
LABEL_MAX = 64
LABEL_PATTERN = re.compile(rf"[a-z0-9_-]{{1,{LABEL_MAX}}}")
"""A label: what a publish file's ``labels`` cell holds between ``;`` (lower-cased)."""
MAX_LABELS = 32
"""Labels on one identifier of one provider (after its rows are merged)."""
# magic, version, epoch, entry count, bucket count
_HEADER = struct.Struct(">4sBQII")
_U32 = struct.Struct(">I")
# Big-endian so that sorting the integers sorts the tag bytes, and the serialised table
# is byte-for-byte the same on every platform.
_TAG_DTYPE = np.dtype(">u8")


class UnionError(ValueError):
    """Base of every error this module raises, so callers can catch one type."""


class UnionBuildError(UnionError):
    """Contributions the union cannot be built from (bad sizes, types, ranges)."""


class UnionFormatError(UnionError):
    """Bytes that are not a well-formed union, table or bucket of this format version."""


class UnionDigestMismatch(UnionError):
    """A union whose digest differs from the one anchored on chain."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One provider's listing of one identifier: ``prf = F(k, x)``, labels, event time."""

    prf: bytes
    labels: frozenset[str]
    event_time: int


@dataclass(frozen=True, slots=True)
class Contribution:
    """One provider's entries for an epoch.

    Deliberately carries no provider name or index: what the union is built from cannot
    leak who contributed it, whoever calls :func:`build_union`.
    """

    entries: Sequence[Entry]


@dataclass(frozen=True, slots=True, order=True)
class Listing:
    """What a querier learns per listing provider: sorted labels and the event time."""

    event_time: int
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hit:
    """A table match: the identifier's tag and how many distinct providers list it."""

    tag: bytes
    multiplicity: int


def _epoch_bytes(epoch: int) -> bytes:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_SAFE_INT:
        raise UnionError(f"epoch must be an int in [0, 2**53-1], got {epoch!r}")
    return epoch.to_bytes(8, "big")


def _check_prf(prf: bytes) -> bytes:
    if not isinstance(prf, bytes) or len(prf) != PRF_BYTES:
        raise UnionError(f"prf must be {PRF_BYTES} bytes")
    return prf


def _hkdf(prf: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(prf)


def membership_tag(prf: bytes, epoch: int) -> bytes:
    """The 8-byte table tag of ``prf`` in ``epoch``.

    Bound to the epoch so tags of one epoch cannot be matched against another's table:
    dropping an old table really ends its answers, and tags do not link across epochs.
    """
    return _hkdf(_check_prf(prf), _TAG_INFO + _epoch_bytes(epoch), TAG_BYTES)


def label_key(prf: bytes, epoch: int, salt: bytes) -> bytes:
    """The ChaCha20-Poly1305 key of ``prf``'s label record in ``epoch`` under a bucket salt.

    The random per-build ``salt`` (stored in every bucket) makes the key unique per
    identifier *per build*, not just per epoch, so the fixed zero nonce stays safe even
    if an epoch's union is rebuilt (a late contribution, a retry) with new plaintexts.
    """
    return _hkdf(_check_prf(prf), _KEY_INFO + _epoch_bytes(epoch), 32, salt)


def bucket_of(prf: bytes, epoch: int, bucket_count: int) -> int:
    """The bucket holding ``prf``'s label record: ``tag[:4] mod bucket_count``."""
    if bucket_count < 1:
        raise UnionError(f"bucket_count must be >= 1, got {bucket_count}")
    return _bucket_of_tag(membership_tag(prf, epoch), bucket_count)


def _bucket_of_tag(tag: bytes, bucket_count: int) -> int:
    return int.from_bytes(tag[:4], "big") % bucket_count


def default_bucket_count(n: int) -> int:
    """About ``sqrt(n)`` buckets (at least one).

    Balances the two costs: a querier downloads ``n / bucket_count`` records per fetch,
    and the server learns ``log2(bucket_count)`` bits of the tag; sqrt keeps both small.
    """
    return max(1, math.isqrt(n))


@dataclass(frozen=True)
class UnionTable:
    """The compact membership table: sorted tags and their multiplicities.

    Serialised as ``8n`` bytes of big-endian tags followed by ``n`` multiplicity bytes,
    so the download is exactly :data:`TABLE_ENTRY_BYTES` (9) bytes per entry.
    """

    tags: npt.NDArray[np.uint64]
    multiplicities: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.tags.shape[0])

    def to_bytes(self) -> bytes:
        return self.tags.astype(_TAG_DTYPE).tobytes() + self.multiplicities.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, count: int | None = None) -> UnionTable:
        """Parse a table, checking size, order (strictly increasing) and multiplicities."""
        if len(data) % TABLE_ENTRY_BYTES:
            raise UnionFormatError(f"table of {len(data)} bytes is not a multiple of 9")
        n = len(data) // TABLE_ENTRY_BYTES
        if count is not None and n != count:
            raise UnionFormatError(f"table holds {n} entries, header says {count}")
        tags = np.frombuffer(data, dtype=_TAG_DTYPE, count=n).astype(np.uint64)
        mult = np.frombuffer(data, dtype=np.uint8, offset=TAG_BYTES * n).copy()
        if n > 1 and not bool(np.all(tags[1:] > tags[:-1])):
            raise UnionFormatError("table tags are not strictly increasing")
        if n and int(mult.min()) == 0:
            raise UnionFormatError("table holds a multiplicity of 0")
        return cls(tags, mult)

    def find(self, tag: bytes) -> Hit | None:
        """Binary search for ``tag``."""
        value = np.uint64(int.from_bytes(tag, "big"))
        i = int(np.searchsorted(self.tags, value))
        if i < len(self) and self.tags[i] == value:
            return Hit(tag, int(self.multiplicities[i]))
        return None


@dataclass(frozen=True)
class Union:
    """One epoch's union: the compact table and the label buckets.

    ``digest`` is what gets anchored on chain; it commits to the epoch, the table and
    every bucket separately (by their own digests), so a querier holding the list of
    bucket digests can check the one bucket it fetched without downloading the others.
    """

    epoch: int
    table: UnionTable
    buckets: tuple[bytes, ...]

    @property
    def bucket_count(self) -> int:
        return len(self.buckets)

    @cached_property
    def table_bytes(self) -> bytes:
        return self.table.to_bytes()

    @cached_property
    def bucket_digests(self) -> tuple[bytes, ...]:
        return tuple(bucket_digest(b) for b in self.buckets)

    @cached_property
    def digest(self) -> bytes:
        """``digest_json("lookup-union", {version, epoch, table digest, bucket digests})``."""
        return digest_from_parts(self.epoch, self.table_bytes, self.bucket_digests)

    def to_bytes(self) -> bytes:
        """Header, table, then each bucket prefixed by its 4-byte length."""
        parts = [
            _HEADER.pack(MAGIC, FORMAT_VERSION, self.epoch, len(self.table), self.bucket_count),
            self.table_bytes,
        ]
        for bucket in self.buckets:
            parts.append(_U32.pack(len(bucket)))
            parts.append(bucket)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Union:
        """Parse and structurally check a serialised union; :class:`UnionFormatError` if bad."""
        if len(data) < _HEADER.size:
            raise UnionFormatError("union shorter than its header")
        magic, version, epoch, n, bucket_count = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise UnionFormatError("not a lookup union (bad magic)")
        if version != FORMAT_VERSION:
            raise UnionFormatError(f"unsupported union format version {version}")
        if epoch > _MAX_SAFE_INT:
            raise UnionFormatError("epoch out of range")
        if bucket_count < 1:
            raise UnionFormatError("union has no buckets")
        pos = _HEADER.size
        end = pos + n * TABLE_ENTRY_BYTES
        if end > len(data):
            raise UnionFormatError("union truncated inside the table")
        table = UnionTable.from_bytes(data[pos:end], n)
        pos = end
        buckets: list[bytes] = []
        records = 0
        for index in range(bucket_count):
            if pos + _U32.size > len(data):
                raise UnionFormatError(f"union truncated before bucket {index}")
            (size,) = _U32.unpack_from(data, pos)
            pos += _U32.size
            if pos + size > len(data):
                raise UnionFormatError(f"union truncated inside bucket {index}")
            bucket = data[pos : pos + size]
            records += len(parse_bucket(bucket)[1])
            buckets.append(bucket)
            pos += size
        if pos != len(data):
            raise UnionFormatError(f"{len(data) - pos} trailing bytes after the last bucket")
        if records != n:
            raise UnionFormatError(f"{records} label records for {n} table entries")
        return cls(epoch, table, tuple(buckets))


def bucket_digest(bucket: bytes) -> bytes:
    """The digest of one bucket, as listed in the union digest."""
    return digest("lookup-union-bucket", bucket)


def digest_from_parts(epoch: int, table_bytes: bytes, bucket_digests: Sequence[bytes]) -> bytes:
    """The union digest from the table and the *digests* of the buckets.

    A querier that downloaded the table and the list of bucket digests (32 bytes per
    bucket) checks them against the anchored digest with this, then checks the one
    bucket it fetched with :func:`bucket_digest`, without fetching the other buckets.
    """
    return digest_json(
        "lookup-union",
        {
            "version": FORMAT_VERSION,
            "epoch": epoch,
            "table": digest("lookup-union-table", table_bytes).hex(),
            "buckets": [d.hex() for d in bucket_digests],
        },
    )


def verify_digest(union: Union, expected: bytes) -> None:
    """Raise :class:`UnionDigestMismatch` unless ``union`` is the one anchored on chain."""
    if not secrets.compare_digest(union.digest, expected):
        raise UnionDigestMismatch(f"union digest {union.digest.hex()} != anchored {expected.hex()}")


def parse_bucket(bucket: bytes) -> tuple[bytes, list[bytes]]:
    """Split a bucket into its salt and its records, checking every length.

    Layout: 16-byte salt, 4-byte record count, then per record a 4-byte length and the
    ciphertext (a multiple of 64 plus the 16-byte AEAD tag).
    """
    if len(bucket) < SALT_BYTES + _U32.size:
        raise UnionFormatError("bucket shorter than its header")
    salt = bucket[:SALT_BYTES]
    (count,) = _U32.unpack_from(bucket, SALT_BYTES)
    pos = SALT_BYTES + _U32.size
    records: list[bytes] = []
    for i in range(count):
        if pos + _U32.size > len(bucket):
            raise UnionFormatError(f"bucket truncated before record {i}")
        (size,) = _U32.unpack_from(bucket, pos)
        pos += _U32.size
        if size < PAD_TO + _AEAD_OVERHEAD or (size - _AEAD_OVERHEAD) % PAD_TO:
            raise UnionFormatError(f"record {i} has an impossible size {size}")
        if pos + size > len(bucket):
            raise UnionFormatError(f"bucket truncated inside record {i}")
        records.append(bucket[pos : pos + size])
        pos += size
    if pos != len(bucket):
        raise UnionFormatError(f"{len(bucket) - pos} trailing bytes in bucket")
    return salt, records


def _check_entry(entry: Entry) -> None:
    if not isinstance(entry.prf, bytes) or len(entry.prf) != PRF_BYTES:
        raise UnionBuildError(f"entry prf must be {PRF_BYTES} bytes")
    check_listing(entry.labels, entry.event_time)


def check_listing(labels: frozenset[str], event_time: int) -> None:
    """Raise :class:`UnionBuildError` unless ``build_union`` accepts these labels and time.

    Public so that a publisher can refuse a bad row *before* it spends a threshold
    evaluation round on it (nothing partial left behind), and so that the relay holds a
    provider's contribution to the same rules a CSV is read with: every querier
    downloads whole label buckets, so one provider's oversized labels would cost every
    querier bandwidth (and would stand out in a bucket by size).
    """
    t = event_time
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= _MAX_SAFE_INT:
        raise UnionBuildError(f"event_time must be an int in [0, 2**53-1], got {t!r}")
    if not isinstance(labels, frozenset) or not all(isinstance(label, str) for label in labels):
        raise UnionBuildError("labels must be a frozenset of str")
    if len(labels) > MAX_LABELS:
        raise UnionBuildError(f"{len(labels)} labels on one entry; at most {MAX_LABELS}")
    for label in labels:
        if not LABEL_PATTERN.fullmatch(label):
            raise UnionBuildError(
                f"label {label[:80]!r}: labels are 1-{LABEL_MAX} characters of a-z 0-9 _ -"
            )


def _merge_provider(contribution: Contribution) -> dict[bytes, tuple[frozenset[str], int]]:
    """One listing per identifier for this provider: labels united, latest event time.

    Multiplicity counts providers, not rows, so a provider that lists an identifier
    twice must not look like two providers; the latest time is the one a multi-head
    window should see.
    """
    merged: dict[bytes, tuple[frozenset[str], int]] = {}
    for entry in contribution.entries:
        _check_entry(entry)
        old = merged.get(entry.prf)
        if old is None:
            merged[entry.prf] = (entry.labels, entry.event_time)
        else:
            labels = old[0] | entry.labels
            if len(labels) > MAX_LABELS:
                raise UnionBuildError(
                    f"{len(labels)} labels on one identifier once its entries are merged; "
                    f"at most {MAX_LABELS}"
                )
            merged[entry.prf] = (labels, max(old[1], entry.event_time))
    return merged


def own_listings(contribution: Contribution) -> dict[bytes, Listing]:
    """The one listing per ``prf`` that ``build_union`` makes of one provider's entries.

    A provider checks its inclusion in a published union against exactly these (the
    same merge: labels united, latest event time), so the check cannot drift from the
    build.
    """
    return {
        prf: Listing(event_time, tuple(sorted(labels)))
        for prf, (labels, event_time) in _merge_provider(contribution).items()
    }


def _pad(plaintext: bytes) -> bytes:
    """4-byte length, the JSON, zeros up to a multiple of 64: size classes, not sizes."""
    framed = _U32.pack(len(plaintext)) + plaintext
    return framed + bytes(-len(framed) % PAD_TO)


def _unpad(padded: bytes) -> bytes:
    (size,) = _U32.unpack_from(padded)
    end = _U32.size + size
    if end > len(padded) or any(padded[end:]):
        raise UnionFormatError("label record has bad padding")
    return padded[_U32.size : end]


def build_union(
    epoch: int,
    contributions: Sequence[Contribution],
    bucket_count: int | None = None,
    rng: random.Random | None = None,
) -> Union:
    """Merge all providers' entries into the epoch's union.

    ``rng`` only drives the shuffles (tests may pass a seeded one); salts always come
    from ``secrets`` since key uniqueness must not depend on a caller's seed. Raises
    :class:`UnionBuildError` for more than 255 contributions (the multiplicity is one
    byte), bad entries, or the (probability ``~n**2 / 2**65``) event that two
    identifiers share a 64-bit tag.
    """
    epoch_b = _epoch_bytes(epoch)
    if len(contributions) > MAX_MULTIPLICITY:
        raise UnionBuildError(f"at most {MAX_MULTIPLICITY} contributions, got {len(contributions)}")
    shuffler = rng if rng is not None else secrets.SystemRandom()

    listings: dict[bytes, list[Listing]] = {}
    for contribution in contributions:
        for prf, (labels, event_time) in _merge_provider(contribution).items():
            listings.setdefault(prf, []).append(Listing(event_time, tuple(sorted(labels))))

    n = len(listings)
    count = default_bucket_count(n) if bucket_count is None else bucket_count
    if count < 1:
        raise UnionBuildError(f"bucket_count must be >= 1, got {count}")
    salt = secrets.token_bytes(SALT_BYTES)
    tag_info = _TAG_INFO + epoch_b
    key_info = _KEY_INFO + epoch_b

    tags = np.empty(n, dtype=np.uint64)
    mult = np.empty(n, dtype=np.uint8)
    bucket_records: list[list[bytes]] = [[] for _ in range(count)]
    for i, (prf, items) in enumerate(listings.items()):
        tag = _hkdf(prf, tag_info, TAG_BYTES)
        tags[i] = int.from_bytes(tag, "big")
        mult[i] = len(items)
        shuffler.shuffle(items)
        plaintext = canonical_json(
            [{"labels": list(item.labels), "event_time": item.event_time} for item in items]
        )
        aead = ChaCha20Poly1305(_hkdf(prf, key_info, 32, salt))
        ciphertext = aead.encrypt(_ZERO_NONCE, _pad(plaintext), epoch_b + tag)
        bucket_records[_bucket_of_tag(tag, count)].append(ciphertext)

    order = np.argsort(tags, kind="stable")
    tags, mult = tags[order], mult[order]
    if n > 1 and not bool(np.all(tags[1:] > tags[:-1])):
        raise UnionBuildError("two identifiers share a 64-bit tag; rebuild is not possible")

    buckets: list[bytes] = []
    for records in bucket_records:
        shuffler.shuffle(records)
        parts = [salt, _U32.pack(len(records))]
        for record in records:
            parts.append(_U32.pack(len(record)))
            parts.append(record)
        buckets.append(b"".join(parts))
    return Union(epoch, UnionTable(tags, mult), tuple(buckets))


def lookup(table: UnionTable, prf: bytes, epoch: int) -> Hit | None:
    """Is ``F(k, x) = prf`` listed in ``epoch``? The hit says by how many providers.

    A miss is certain; a hit is wrong with probability ``len(table) / 2**64``.
    """
    return table.find(membership_tag(prf, epoch))


def open_labels(bucket: bytes, prf: bytes, epoch: int) -> list[Listing]:
    """The listings of ``prf`` from its whole bucket, sorted; ``[]`` if none opens.

    Tries every record with the identifier's key: for a listed identifier exactly one
    opens (AEAD authenticity, with the epoch and tag as associated data), for anything
    else none does, so the querier learns nothing about other records.
    """
    epoch_b = _epoch_bytes(epoch)
    salt, records = parse_bucket(bucket)
    tag = membership_tag(prf, epoch)
    aead = ChaCha20Poly1305(label_key(prf, epoch, salt))
    for record in records:
        try:
            padded = aead.decrypt(_ZERO_NONCE, record, epoch_b + tag)
        except InvalidTag:
            continue
        return sorted(_parse_listings(_unpad(padded)))
    return []


def _parse_listings(plaintext: bytes) -> list[Listing]:
    try:
        items = json.loads(plaintext)
        return [
            Listing(int(item["event_time"]), tuple(str(label) for label in item["labels"]))
            for item in items
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnionFormatError(f"label record is not a listing list: {exc}") from exc


def multi_head_count(
    listings: Iterable[Listing],
    own_event_times: Iterable[int],
    now: int,
    window_days: int,
) -> int:
    """Listings with ``now - window_days days < event_time <= now``, the asker's excluded.

    The union cannot know who asks, so it cannot drop the asker's own listing. The asker
    can: it knows its own (merged: latest) event time for the identifier and passes it
    as ``own_event_times``. Each own time removes at most one listing with exactly that
    time (multiset difference), so a local time that never reached the union subtracts
    nothing instead of undercounting the others.
    """
    if window_days < 1:
        raise UnionError(f"window_days must be >= 1, got {window_days}")
    start = now - window_days * SECONDS_PER_DAY
    in_window = Counter(item.event_time for item in listings if start < item.event_time <= now)
    own = Counter(t for t in own_event_times if start < t <= now)
    return sum((in_window - own).values())
