"""Vertical (hetero) logistic regression with Paillier, after PSI alignment.

Parties: one *label holder* A (holds the labels y, some feature columns X_A, the
intercept, and the Paillier private key) and one or more *feature holders* B_k (hold
columns X_Bk). Rows are already aligned on an id column by PSI (``node/algorithms/
psi.py``): row i is the same customer everywhere. Each party keeps only its own share
of the model (w_A and the intercept at A, w_Bk at B_k).

Protocol per mini-batch b (the order is drawn from the public ``shuffle_seed``, so all
parties agree on it), in the style of FATE's hetero-LR and Hardy et al., "Private
federated learning on vertically partitioned data via entity resolution and additively
homomorphic encryption" (2017):

1. B_k -> A: u_Bk = X_Bk[b] w_Bk (plaintext partial logits).
2. A: u = X_A[b] w_A + c + sum_k u_Bk; residual d = 0.25 u - 0.5 y' (y' = 2y - 1 in
   {-1, 1}: the first-order Taylor form of sigmoid(u) - y, FATE's) or, with
   ``residual="sigmoid"``, the exact sigmoid(u) - y; clipped to +-``residual_bound``,
   quantised to integers d_i = round(d * 2^f_d).
3. A -> B_k: [[d]] (Paillier, A's key; the obfuscators r^n precomputed over a process
   pool while A waits for the peers, so encrypting is one modular product; A holds the
   key, so it computes r^n mod n^2 from r^n mod p^2 and mod q^2 by the Chinese
   remainder theorem, about half the work of phe's r^n mod n^2).
4. B_k: [[g_kj]] = sum_i x_ij [[d_i]] per column j (x quantised to 2^f_x): the product
   of the ciphertexts raised to the x_ij, by a simultaneous fixed-window
   exponentiation (tables of [[d_i]]^1..15 and their inverses, shared by every column,
   then one squaring chain per column: `_column_sums`), over the pool. Then B_k packs
   the columns: with slots of s = bound + sigma + 2 bits, k = floor((|n| - 2) / s)
   columns per ciphertext, [[G]] = prod_j [[g_kj]]^(2^(s j)) (Horner: s squarings per
   column) times a fresh encryption of sum_j (r_j + 2^bound) 2^(s j), each mask r_j
   drawn from ``secrets`` in [0, 2^(bound + sigma)). Every slot holds
   g_kj + r_j + 2^bound in [0, 2^s), so the packed plaintext is below 2^(k s) < n and no
   slot carries into the next. B_k -> A: the packed ciphertexts (one per k columns).
   With a pool, each packed ciphertext's column sums and Horner step are one task (the
   groups are made even in size), and the masks' r^n are computed while B_k waits for
   the next batch.
5. A decrypts and returns the packed plaintexts; B_k reads each slot, removes
   r_j + 2^bound, scales, adds its own L2 term and updates w_Bk. A updates w_A and c
   with its own plaintext gradient X_A^T d / |b|.

Packing changes what is sent, not what A learns: every slot is the same
g_kj + r_j + offset A would open one ciphertext at a time. It cuts B's mask encryptions
and A's decryptions per batch from one per column to one per k columns (k = 15 for
2048-bit keys and 48-bit gradient bounds).

Who sees what:

* B_k sees the public key, ciphertexts of d, and its own g_k + r (from which it learns
  only its own gradient g_k, as it must to update). It never sees y, d in plaintext,
  A's gradient or weights, or anything of another feature holder.
* A sees u_Bk (the partial logits; the known leakage of this protocol family: A learns
  X_Bk w_Bk per batch, never X_Bk or w_Bk) and g_k + r + offset per column, which
  reveals nothing about g_k beyond a 2^-sigma statistical distance. A never sees X_Bk
  or an unmasked g_k.
* Since A holds u in plaintext, the exact sigmoid residual discloses nothing more
  than the Taylor one (B only ever holds [[d]]); it is offered because the quadratic
  Taylor surrogate has a different optimum and, with full-batch steps, needed about
  10x more iterations on the breast-cancer data (500 vs 50). With mini-batches of 32,
  two epochs of Taylor steps suffice there. Taylor is the default, as in FATE.

Fixed point: d and x are integers, so the encrypted products are exact and every honest
run is deterministic given the seeds (the Paillier randomness never reaches a
plaintext). Capacity: |g_kj| <= sum_i |x_ij| * 2^f_d * bound, checked with the mask
bits against phe's ``max_int`` (n / 3) before anything is sent.

Threat model: semi-honest parties, as FATE's hetero-LR. A malicious B_k could send
A any linear combination of the [[d_i]] (plus a known offset) as its "masked gradient"
and A would open it: one chosen value per column per batch, a leak of residuals and so
of labels. Closing that needs zero-knowledge proofs of correct products (not here).
A trusts nothing it receives to be in range: malformed ciphertexts and sizes are refused.

Audit: after each epoch each party digests its own model share and chains it as the
horizontal rounds do (``chain_digest``); the node anchors its own chain.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Literal

import gmpy2  # type: ignore[import-untyped]
import numpy as np
import phe  # type: ignore[import-untyped]

from ledger.canonical import canonical_json, digest, digest_json
from node.channel import DEFAULT_TIMEOUT, Channel, ChannelError
from node.fl.horizontal import chain_digest
from node.fl.models import FloatArray, sigmoid

__all__ = [
    "NAME",
    "VERSION",
    "Packing",
    "VerticalError",
    "VerticalPlan",
    "VerticalShare",
    "batches",
    "obfuscator_crt",
    "packing_for",
    "run_feature_holder",
    "run_label_holder",
    "share_digest",
]

NAME = "fl-vertical"
VERSION = "0.1.0"
MIN_KEY_BITS = 1024  # tests only; production plans use the 2048-bit default
STEP_KEY = "vfl/public-key"
MAX_COLUMNS = 4096  # per feature holder: bounds what the label holder will decrypt


class VerticalError(ChannelError):
    """A peer sent something the protocol does not allow, or the plan is unusable."""

    reason = "PROTOCOL_ERROR"


@dataclass(frozen=True)
class VerticalPlan:
    """The parameters every party must agree on (the task's parameters)."""

    label_holder: str
    feature_holders: tuple[str, ...]
    rows: int
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.3
    l2: float = 0.0
    residual: Literal["taylor", "sigmoid"] = "taylor"
    residual_bound: float = 16.0
    key_bits: int = 2048
    residual_frac_bits: int = 16
    feature_frac_bits: int = 16
    mask_bits: int = 80  # statistical hiding of g_k + r
    shuffle_seed: int = 0
    task_id: bytes = bytes(32)

    def __post_init__(self) -> None:
        if self.label_holder in self.feature_holders or not self.feature_holders:
            raise VerticalError("feature_holders must be non-empty and exclude the label holder")
        if self.key_bits < MIN_KEY_BITS:
            raise VerticalError(f"key_bits {self.key_bits} is below {MIN_KEY_BITS}")
        if self.residual not in ("taylor", "sigmoid"):
            raise VerticalError(f"residual must be 'taylor' or 'sigmoid', got {self.residual!r}")
        if self.rows < 1 or self.epochs < 1 or self.batch_size < 1:
            raise VerticalError("rows, epochs and batch_size must be >= 1")

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": NAME,
            "version": VERSION,
            "label_holder": self.label_holder,
            "feature_holders": list(self.feature_holders),
            "rows": self.rows,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "residual": self.residual,
            "residual_bound": self.residual_bound,
            "key_bits": self.key_bits,
            "residual_frac_bits": self.residual_frac_bits,
            "feature_frac_bits": self.feature_frac_bits,
            "mask_bits": self.mask_bits,
            "shuffle_seed": self.shuffle_seed,
            "task": self.task_id.hex(),
        }


@dataclass(frozen=True)
class VerticalShare:
    """One party's result: its own weights (A: columns then the intercept) and chain."""

    party: str
    weights: FloatArray = field(repr=False)
    epoch_digests: tuple[bytes, ...]  # the chained link after each epoch
    losses: tuple[float, ...] = ()  # label holder only: mean log-loss per epoch
    # ``share_digest`` of the weights after each epoch: what each link chains, so an
    # auditor given them recomputes every link from the genesis.
    share_digests: tuple[bytes, ...] = ()
    genesis: bytes = bytes(32)  # the chain's start: ``genesis(plan, party)``

    def to_json(self) -> dict[str, Any]:
        """The party's share as it keeps it (and a feature holder's node stores it):
        weights as exact float64, per epoch the share digest and the chained link."""
        return {
            "algorithm": NAME,
            "version": VERSION,
            "party": self.party,
            "weights": [float(w) for w in self.weights.tolist()],
            "share_digest": share_digest(self.party, self.weights).hex(),
            "genesis": self.genesis.hex(),
            "epochs": [
                {"epoch": e, "share_digest": s.hex(), "chain_digest": link.hex()}
                for e, (s, link) in enumerate(
                    zip(self.share_digests, self.epoch_digests, strict=True)
                )
            ],
        }


def batches(plan: VerticalPlan) -> list[list[np.ndarray[Any, np.dtype[np.intp]]]]:
    """Per epoch, the mini-batches' row indices: a public, seeded schedule."""
    rng = np.random.Generator(np.random.PCG64(plan.shuffle_seed))
    out = []
    for _ in range(plan.epochs):
        order = rng.permutation(plan.rows)
        out.append([order[s : s + plan.batch_size] for s in range(0, plan.rows, plan.batch_size)])
    return out


def share_digest(party: str, weights: FloatArray) -> bytes:
    """Digest of one party's model share: its name and its weights as >f8 bytes."""
    header = canonical_json({"party": party, "dtype": ">f8", "length": len(weights)})
    return digest("fl-vertical-share", header + b"\0" + weights.astype(">f8").tobytes())


def genesis(plan: VerticalPlan, party: str) -> bytes:
    return digest_json("fl-vertical-genesis", {"plan": plan.to_json(), "party": party})


# ------------------------------------------------------------------------------- wire


def _step(kind: str, epoch: int, batch: int) -> str:
    return f"vfl/{kind}/{epoch}/{batch}"


def _floats_out(values: FloatArray) -> bytes:
    return np.asarray(values, dtype=np.float64).astype(">f8").tobytes()


def _floats_in(peer: str, step: str, payload: bytes, count: int) -> FloatArray:
    if len(payload) != 8 * count:
        raise VerticalError(f"{step!r} from {peer}: {len(payload)} bytes, expected {8 * count}")
    values = np.frombuffer(payload, dtype=">f8").astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise VerticalError(f"{step!r} from {peer}: non-finite values")
    return values


def _ints_out(values: Sequence[int], width: int) -> bytes:
    return b"".join(v.to_bytes(width, "big") for v in values)


def _ints_in(peer: str, step: str, payload: bytes, count: int, width: int, bound: int) -> list[int]:
    if len(payload) != count * width:
        raise VerticalError(
            f"{step!r} from {peer}: {len(payload)} bytes, expected {count} x {width}"
        )
    values = [int.from_bytes(payload[k : k + width], "big") for k in range(0, len(payload), width)]
    if any(not 0 < v < bound for v in values):
        raise VerticalError(f"{step!r} from {peer}: value out of range")
    return values


def _width(modulus: int) -> int:
    return (modulus.bit_length() + 7) // 8


# ----------------------------------------------------------------- pool workers (pure)


def _obfuscators(n: int, count: int) -> list[int]:
    """Worker: ``count`` values r^n mod n^2, r drawn by phe from the OS CSPRNG, exactly
    what ``EncryptedNumber.obfuscate`` multiplies in: the costly half of an encryption,
    computed ahead of time."""
    public = phe.PaillierPublicKey(n)
    return [int(phe.util.powmod(public.get_random_lt_n(), n, public.nsquare)) for _ in range(count)]


def obfuscator_crt(r: int, n: int, p: int, q: int) -> int:
    """r^n mod n^2 from r^n mod p^2 and r^n mod q^2 (Chinese remainder theorem over the
    coprime p^2, q^2): equal to ``pow(r, n, n * n)``, at half the cost; only the key
    holder knows p and q."""
    p2, q2 = gmpy2.mpz(p) * p, gmpy2.mpz(q) * q
    a = gmpy2.powmod(r, n, p2)
    b = gmpy2.powmod(r, n, q2)
    return int(a + p2 * ((b - a) * gmpy2.invert(p2, q2) % q2))


def _obfuscators_crt(p: int, q: int, count: int) -> list[int]:
    """Worker (the label holder's own pool): ``count`` values r^n mod n^2 by
    :func:`obfuscator_crt`, r drawn as in :func:`_obfuscators`."""
    n = p * q
    public = phe.PaillierPublicKey(n)
    return [obfuscator_crt(public.get_random_lt_n(), n, p, q) for _ in range(count)]


class _ObfuscatorStock:
    """Precomputed obfuscators for the label holder's next batch.

    With a pool, the next batch's r^n are computed by the workers while this party waits
    for the feature holders' partial logits and products, so encrypting the residuals
    becomes one cheap modular product each. Each obfuscator is used once, then dropped.
    Given the key's primes (the label holder's own key, to its own pool), the workers
    use the CRT form.
    """

    def __init__(
        self, executor: Executor | None, n: int, primes: tuple[int, int] | None = None
    ) -> None:
        self.executor, self.n, self.primes = executor, n, primes
        self.pending: list[Future[list[int]]] = []

    def _make(self, count: int) -> list[int]:
        if self.primes is not None:
            return _obfuscators_crt(*self.primes, count)
        return _obfuscators(self.n, count)

    def prefetch(self, count: int) -> None:
        if self.executor is None or count < 1:
            return
        workers = max(1, int(getattr(self.executor, "_max_workers", 2)))
        size = math.ceil(count / workers)
        for start in range(0, count, size):
            chunk = min(size, count - start)
            if self.primes is not None:
                future = self.executor.submit(_obfuscators_crt, *self.primes, chunk)
            else:
                future = self.executor.submit(_obfuscators, self.n, chunk)
            self.pending.append(future)

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        while self.pending and len(out) < count:
            out += self.pending.pop(0).result()
        if len(out) < count:
            out += self._make(count - len(out))
        if len(out) > count:  # never reuse: surplus is discarded, not kept for later
            out = out[:count]
        return out

    def encrypt(self, public: Any, values: Sequence[int]) -> list[int]:
        """phe's raw encryption with the obfuscator supplied: nude ciphertext (r = 1,
        no exponentiation) times a fresh precomputed r^n."""
        nsquare = public.nsquare
        obfuscators = self.take(len(values))
        return [
            int(public.raw_encrypt(v % self.n, r_value=1)) * o % nsquare
            for v, o in zip(values, obfuscators, strict=True)
        ]

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending.clear()


WINDOW_BITS = 4  # fixed window of the simultaneous exponentiation


def _column_sums(n: int, ciphertexts: Sequence[int], columns: Sequence[Sequence[int]]) -> list[int]:
    """Worker: for each column x (signed integers, one per ciphertext), the ciphertext
    prod_i c_i^(x_i) mod n^2 = [[sum_i x_i d_i]] (a negative x_i raises the inverse of
    c_i to |x_i|).

    Simultaneous fixed-window exponentiation: per base, the table c^1..c^15 (and of its
    inverse when some x_i < 0) is built once for all the columns; each column then
    takes one chain of squarings (4 per window) and one table product per non-zero
    window digit, instead of a full exponentiation per product. Not re-randomised:
    the caller multiplies in a fresh encryption."""
    n2 = gmpy2.mpz(n) * n
    size = 1 << WINDOW_BITS
    bases = [gmpy2.mpz(c) for c in ciphertexts]
    tables: dict[tuple[int, bool], list[Any]] = {}

    def table(i: int, negative: bool) -> list[Any]:
        found = tables.get((i, negative))
        if found is None:
            base = gmpy2.invert(bases[i], n2) if negative else bases[i]
            found = [gmpy2.mpz(1), base]
            for _ in range(size - 2):
                found.append(found[-1] * base % n2)
            tables[(i, negative)] = found
        return found

    out = []
    for column in columns:
        terms = [(table(i, x < 0), abs(x)) for i, x in enumerate(column) if x]
        if not terms:
            out.append(1)  # [[0]] with r = 1; the caller's fresh encryption hides it
            continue
        windows = -(-max(e.bit_length() for _, e in terms) // WINDOW_BITS)
        acc = gmpy2.mpz(1)
        for k in reversed(range(windows)):
            if acc != 1:
                acc = gmpy2.powmod(acc, size, n2)
            shift = k * WINDOW_BITS
            for t, e in terms:
                digit = (e >> shift) & (size - 1)
                if digit:
                    acc = acc * t[digit] % n2
        out.append(int(acc))
    return out


def packing_for(plan: VerticalPlan, n: int, quantised: Sequence[Sequence[int]]) -> Packing:
    """B_k's packing for its quantised columns: the gradient bound is the largest
    column's L1 norm times the largest residual, so |g_kj| < 2^bound in every batch."""
    column_l1 = [sum(abs(v) for v in col) for col in quantised]
    d_max = math.ceil(plan.residual_bound * (1 << plan.residual_frac_bits))
    bound_bits = (max(column_l1, default=0) * d_max).bit_length() + 1
    return Packing.for_key(n, bound_bits, plan.mask_bits)


@dataclass(frozen=True)
class Packing:
    """How B_k packs its columns' masked gradients: ``slot_bits`` per column, ``per``
    columns per ciphertext, each slot offset by 2^``bound_bits`` so it is never
    negative."""

    bound_bits: int
    slot_bits: int
    per: int

    @classmethod
    def for_key(cls, n: int, bound_bits: int, mask_bits: int) -> Packing:
        slot = bound_bits + mask_bits + 2
        per = (n.bit_length() - 2) // slot
        if per < 1:
            raise VerticalError(
                f"gradient bound 2^{bound_bits} plus {mask_bits} mask bits does not fit a "
                f"{n.bit_length()}-bit key"
            )
        return cls(bound_bits, slot, per)

    def groups(self, columns: int) -> list[range]:
        """The columns of each packed ciphertext: as few ciphertexts as fit, as even in
        size as possible (so the pool's workers get equal shares)."""
        if columns < 1:
            return []
        count = -(-columns // self.per)
        size = -(-columns // count)
        return [range(s, min(s + size, columns)) for s in range(0, columns, size)]

    def mask_plain(self, group: range, masks: Sequence[int]) -> int:
        """sum_j (r_j + 2^bound) 2^(slot (j - first)) over the group's columns."""
        offset, plain = 1 << self.bound_bits, 0
        for j in reversed(group):
            plain = (plain << self.slot_bits) + masks[j] + offset
        return plain

    def pack(
        self,
        n: int,
        sums: Sequence[int],
        masks: Sequence[int],
        public: Any,
        obfuscators: Sequence[int] | None = None,
    ) -> list[int]:
        """[[sum_j (g_j + r_j + 2^bound) 2^(slot j)]] per group, from the column sums
        [[g_j]]: Horner's rule on the ciphertexts (:func:`horner`), then one fresh
        encryption of the packed masks, whose randomness re-randomises the whole
        ciphertext (with ``obfuscators``, precomputed r^n, one per group)."""
        groups = self.groups(len(sums))
        heads = [horner(n, [sums[j] for j in group], self.slot_bits) for group in groups]
        return self.mask(n, heads, groups, masks, public, obfuscators)

    def mask(
        self,
        n: int,
        heads: Sequence[int],
        groups: Sequence[range],
        masks: Sequence[int],
        public: Any,
        obfuscators: Sequence[int] | None = None,
    ) -> list[int]:
        """Each group's packed sum times a fresh encryption of its packed masks."""
        n2 = gmpy2.mpz(n) * n
        out = []
        for k, (head, group) in enumerate(zip(heads, groups, strict=True)):
            plain = self.mask_plain(group, masks)
            if obfuscators is None:
                fresh = public.raw_encrypt(plain)
            else:
                fresh = public.raw_encrypt(plain, r_value=1) * obfuscators[k] % n2
            out.append(int(head * fresh % n2))
        return out

    def unpack(self, opened: Sequence[int], masks: Sequence[int]) -> list[int]:
        """The signed g_j from the opened packed plaintexts."""
        slot_mask = (1 << self.slot_bits) - 1
        offset = 1 << self.bound_bits
        out = []
        for value, group in zip(opened, self.groups(len(masks)), strict=True):
            for j in group:
                out.append((value & slot_mask) - masks[j] - offset)
                value >>= self.slot_bits
        return out


def horner(n: int, sums: Sequence[int], slot_bits: int) -> int:
    """prod_j [[g_j]]^(2^(slot j)) mod n^2 = [[sum_j g_j 2^(slot j)]], by Horner's
    rule: ``slot_bits`` squarings per column after the first."""
    n2 = gmpy2.mpz(n) * n
    acc = gmpy2.mpz(1)
    for c in reversed(sums):
        acc = gmpy2.powmod(acc, 1 << slot_bits, n2) * c % n2
    return int(acc)


def _packed_group(
    n: int, ciphertexts: Sequence[int], columns: Sequence[Sequence[int]], slot_bits: int
) -> int:
    """Worker: one packed ciphertext's column sums and Horner step (unmasked)."""
    return horner(n, _column_sums(n, ciphertexts, columns), slot_bits)


def _packed_groups(
    executor: Executor | None,
    n: int,
    ciphertexts: Sequence[int],
    columns: Sequence[Sequence[int]],
    packing: Packing,
) -> list[int]:
    """Every group's packed (unmasked) ciphertext, one group per pool task."""
    jobs = [[columns[j] for j in group] for group in packing.groups(len(columns))]
    if executor is None or len(jobs) < 2:
        return [_packed_group(n, ciphertexts, job, packing.slot_bits) for job in jobs]
    futures = [
        executor.submit(_packed_group, n, ciphertexts, job, packing.slot_bits) for job in jobs
    ]
    return [future.result() for future in futures]


# --------------------------------------------------------------------------- parties


def _quantise(values: FloatArray, frac_bits: int) -> list[int]:
    return [int(v) for v in np.rint(values * float(1 << frac_bits)).tolist()]


def _residual(plan: VerticalPlan, u: FloatArray, y: FloatArray) -> FloatArray:
    raw = 0.25 * u - 0.5 * (2.0 * y - 1.0) if plan.residual == "taylor" else sigmoid(u) - y
    clipped: FloatArray = np.clip(raw, -plan.residual_bound, plan.residual_bound)
    return clipped


def run_label_holder(
    channel: Channel,
    plan: VerticalPlan,
    x: FloatArray,
    y: FloatArray,
    *,
    executor: Executor | None = None,
    keypair: tuple[Any, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> VerticalShare:
    """Train A's share. ``keypair`` (phe public, private) lets a caller reuse a key;
    otherwise a fresh ``plan.key_bits`` key is generated (from the OS CSPRNG)."""
    if channel.me != plan.label_holder:
        raise VerticalError(f"this party ({channel.me}) is not the label holder")
    if x.shape[0] != plan.rows or y.shape != (plan.rows,):
        raise VerticalError(f"need {plan.rows} aligned rows, got {x.shape[0]} and {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise VerticalError("labels must be 0 or 1")
    public, private = keypair or phe.generate_paillier_keypair(n_length=plan.key_bits)
    if public.n.bit_length() < plan.key_bits:
        raise VerticalError(f"key of {public.n.bit_length()} bits, the plan needs {plan.key_bits}")
    for peer in plan.feature_holders:
        channel.send(peer, STEP_KEY, public.n.to_bytes(_width(public.n), "big"))
    stock = _ObfuscatorStock(executor, public.n, (int(private.p), int(private.q)))
    try:
        return _label_holder_epochs(channel, plan, x, y, public, private, stock, timeout)
    finally:
        stock.close()


def _label_holder_epochs(
    channel: Channel,
    plan: VerticalPlan,
    x: FloatArray,
    y: FloatArray,
    public: Any,
    private: Any,
    stock: _ObfuscatorStock,
    timeout: float,
) -> VerticalShare:
    weights = np.zeros(x.shape[1] + 1, dtype=np.float64)
    link = genesis(plan, channel.me)
    links: list[bytes] = []
    shares: list[bytes] = []
    losses: list[float] = []
    width = _width(public.nsquare)
    schedule = [(e, b, idx) for e, part in enumerate(batches(plan)) for b, idx in enumerate(part)]
    stock.prefetch(len(schedule[0][2]))
    epoch_loss = 0.0
    for position, (epoch, b, idx) in enumerate(schedule):
        m = len(idx)
        u = x[idx] @ weights[:-1] + weights[-1]
        for peer in plan.feature_holders:
            step = _step("partial", epoch, b)
            u = u + _floats_in(peer, step, channel.receive(peer, step, timeout), m)
        epoch_loss += float(np.sum(np.logaddexp(0.0, u) - y[idx] * u))
        d_int = _quantise(_residual(plan, u, y[idx]), plan.residual_frac_bits)
        ciphertexts = stock.encrypt(public, d_int)
        following = schedule[position + 1] if position + 1 < len(schedule) else None
        if following is not None:
            # The workers compute the next batch's obfuscators while we wait for peers.
            stock.prefetch(len(following[2]))
        payload = _ints_out(ciphertexts, width)
        for peer in plan.feature_holders:
            channel.send(peer, _step("residual", epoch, b), payload)
        # A's own step uses exactly the quantised residual the feature holders got.
        d = np.array(d_int, dtype=np.float64) / float(1 << plan.residual_frac_bits)
        grad = np.empty_like(weights)
        grad[:-1] = x[idx].T @ d / m + plan.l2 * weights[:-1]
        grad[-1] = d.mean()
        weights = weights - plan.learning_rate * grad
        for peer in plan.feature_holders:
            step = _step("masked-gradient", epoch, b)
            payload = channel.receive(peer, step, timeout)
            count = len(payload) // width
            if not 1 <= count <= MAX_COLUMNS:
                raise VerticalError(f"{step!r} from {peer}: {count} gradient entries")
            masked = _ints_in(peer, step, payload, count, width, public.nsquare)
            opened = [int(private.raw_decrypt(c)) for c in masked]
            channel.send(
                peer, _step("opened-gradient", epoch, b), _ints_out(opened, _width(public.n))
            )
        if following is None or following[0] != epoch:
            losses.append(epoch_loss / plan.rows)
            epoch_loss = 0.0
            shares.append(share_digest(channel.me, weights))
            link = chain_digest(link, shares[-1], epoch)
            links.append(link)
    return VerticalShare(
        channel.me, weights, tuple(links), tuple(losses), tuple(shares), genesis(plan, channel.me)
    )


def run_feature_holder(
    channel: Channel,
    plan: VerticalPlan,
    x: FloatArray,
    *,
    executor: Executor | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> VerticalShare:
    """Train B_k's share; B_k never holds a label, a residual or another's gradient."""
    me, lh = channel.me, plan.label_holder
    if me not in plan.feature_holders:
        raise VerticalError(f"this party ({me}) is not a feature holder")
    if x.shape[0] != plan.rows:
        raise VerticalError(f"need {plan.rows} aligned rows, got {x.shape[0]}")
    n = int.from_bytes(channel.receive(lh, STEP_KEY, timeout), "big")
    if n.bit_length() < plan.key_bits or n % 2 == 0:
        raise VerticalError(
            f"{lh} sent a {n.bit_length()}-bit modulus; the plan needs {plan.key_bits}"
        )
    public = phe.PaillierPublicKey(n)
    features = x.shape[1]
    quantised = [_quantise(x[:, j], plan.feature_frac_bits) for j in range(features)]
    packing = packing_for(plan, n, quantised)
    # Fresh r^n for the packed masks' encryptions, computed by the pool ahead of use.
    stock = _ObfuscatorStock(executor, n)
    try:
        return _feature_holder_epochs(
            channel, plan, x, quantised, public, packing, stock, executor, timeout
        )
    finally:
        stock.close()


def _feature_holder_epochs(
    channel: Channel,
    plan: VerticalPlan,
    x: FloatArray,
    quantised: Sequence[Sequence[int]],
    public: Any,
    packing: Packing,
    stock: _ObfuscatorStock,
    executor: Executor | None,
    timeout: float,
) -> VerticalShare:
    me, lh, n = channel.me, plan.label_holder, public.n
    features = len(quantised)
    bound_bits = packing.bound_bits
    mask_range = 1 << (bound_bits + plan.mask_bits)
    groups = packing.groups(features)
    packed_count = len(groups)
    stock.prefetch(packed_count)
    scale = float(1 << (plan.residual_frac_bits + plan.feature_frac_bits))
    width = _width(public.nsquare)
    weights = np.zeros(features, dtype=np.float64)
    link = genesis(plan, me)
    links: list[bytes] = []
    shares: list[bytes] = []
    for epoch, schedule in enumerate(batches(plan)):
        for b, idx in enumerate(schedule):
            m = len(idx)
            channel.send(lh, _step("partial", epoch, b), _floats_out(x[idx] @ weights))
            step = _step("residual", epoch, b)
            ciphertexts = _ints_in(
                lh, step, channel.receive(lh, step, timeout), m, width, public.nsquare
            )
            rows = idx.tolist()
            columns = [[col[i] for i in rows] for col in quantised]
            heads = _packed_groups(executor, n, ciphertexts, columns, packing)
            masks = [secrets.randbelow(mask_range) for _ in range(features)]
            obfuscators = stock.take(packed_count)
            stock.prefetch(packed_count)  # the next batch's, while A decrypts
            masked = packing.mask(n, heads, groups, masks, public, obfuscators)
            channel.send(lh, _step("masked-gradient", epoch, b), _ints_out(masked, width))
            step = _step("opened-gradient", epoch, b)
            payload = channel.receive(lh, step, timeout)
            opened = _ints_in(lh, step, payload, packed_count, _width(n), n)
            signed = packing.unpack(opened, masks)
            if any(abs(g) >= 1 << bound_bits for g in signed):
                raise VerticalError(f"{step!r} from {lh}: the opened gradient is out of range")
            grad = np.array(signed, dtype=np.float64) / (scale * m) + plan.l2 * weights
            weights = weights - plan.learning_rate * grad
        shares.append(share_digest(me, weights))
        link = chain_digest(link, shares[-1], epoch)
        links.append(link)
    return VerticalShare(
        me, weights, tuple(links), share_digests=tuple(shares), genesis=genesis(plan, me)
    )
