"""Merkle trees, inclusion and consistency proofs exactly as RFC 9162 §2.1 (SHA-256).

This is the one Merkle implementation of the project (DESIGN.md §4): dataset row
commitments, evidence-log checkpoints and the auditor all use it, so a proof made by
one component verifies in every other and in any third-party RFC 9162 verifier.

Leaves and interior nodes are hashed with different one-byte prefixes (``0x00`` and
``0x01``). Without them a verifier could be shown an interior node as if it were a leaf
(a second-preimage attack that "proves" a leaf which was never appended).

Everything here is a pure function over ``bytes``; hashes are 32-byte ``bytes`` and
leaf indices are 0-based. Tree functions take the list of *leaf hashes* (already
``leaf_hash``-ed), not raw leaf data, so callers decide how a leaf is encoded and salted.

Error policy. Building (``root``, ``inclusion_proof``, ``consistency_proof``,
``leaf_hash``, ``node_hash``) raises ``ValueError`` on any bad argument, wrong types
included, because a bad argument there is a caller bug. Verifying never raises:
proofs, roots and sizes come from other parties, and anything malformed (wrong type,
wrong length, out-of-range or boolean size, wrong proof length) simply does not verify,
so a caller cannot turn a hostile proof into a crash or forget an ``except`` branch.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from operator import add
from typing import TypeGuard

__all__ = [
    "RootBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "subtree_roots",
    "verify_consistency",
    "verify_inclusion",
]

_HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_EMPTY_ROOT = hashlib.sha256(b"").digest()
_fast_sha256 = hashlib.sha256  # bulk hashing: one C call per node through map()
_fast_digest = type(_fast_sha256()).digest
_SLICE = 4096  # nodes hashed per batch of map() calls in _perfect_root; even
# RFC 9162 tree sizes and indices are uint64.
_MAX_TREE_SIZE = 2**64 - 1
# Every proof element after the first shifts the (< 2**64) size counter right at least
# once and verification fails once it reaches zero, so no valid proof is longer than this.
# Checked before touching the elements so a huge hostile proof costs nothing.
_MAX_PROOF_LEN = 65


# --- hashing -------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf's (already encoded) data."""
    if not isinstance(data, bytes):
        raise ValueError(f"leaf data must be bytes, got {type(data).__name__}")
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    _require_hash(left, "left child hash")
    _require_hash(right, "right child hash")
    return _node(left, right)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --- building ------------------------------------------------------------------------


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over the given leaf hashes.

    The empty tree's root is ``SHA-256()`` of the empty string. O(n) hashes.
    """
    hashes = _checked_leaf_hashes(leaf_hashes)
    return _subtree_root(hashes, 0, len(hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1: sibling hashes from the leaf up to the root.

    Raises ``ValueError`` unless ``0 <= index < len(leaf_hashes)``. O(n) hashes.
    """
    hashes = _checked_leaf_hashes(leaf_hashes)
    size = len(hashes)
    _require_int(index, "index")
    if not 0 <= index < size:
        raise ValueError(f"index {index} out of range for a tree of {size} leaves")
    # Walk PATH's recursion from the root down over the subtree D[start:end] holding the
    # leaf; each step records the sibling subtree, which PATH appends *after* the deeper
    # path, hence the final reversal. The siblings are disjoint, so O(n) in total.
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_subtree_root(hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(hashes, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 9162 §2.1.4.1: the tree of the first ``old_size``
    leaves is a prefix of the tree of all ``n`` leaves.

    Raises ``ValueError`` unless ``0 < old_size <= n``; returns ``[]`` when they are
    equal (the roots themselves must then match). O(n) hashes.
    """
    hashes = _checked_leaf_hashes(leaf_hashes)
    size = len(hashes)
    _require_int(old_size, "old_size")
    if not 0 < old_size <= size:
        raise ValueError(f"old_size {old_size} out of range: need 0 < old_size <= {size}")
    # SUBPROOF(m, D[start:end], complete) unrolled; like PATH, each level's hash goes
    # after the deeper subproof, so collect top-down and reverse.
    proof: list[bytes] = []
    start, end, m, complete = 0, size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(_subtree_root(hashes, start + k, end))
            end = start + k
        else:
            proof.append(_subtree_root(hashes, start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        proof.append(_subtree_root(hashes, start, end))
    proof.reverse()
    return proof


class RootBuilder:
    """MTH of a leaf list fed in order, in O(log n) memory: for data too big to list.

    It keeps a compact range: the roots of the perfect subtrees that the binary
    decomposition of the leaf count splits the list into, largest (leftmost) first.
    RFC 9162 splits n leaves at the largest power of two below n, so MTH(D[n]) is
    exactly these roots folded from the right; appending a leaf merges equal-sized
    neighbours like a binary counter's carry. ``root()`` therefore equals ``root()`` of
    the whole list for every size, without the list ever existing.

    ``append_subtree`` adds a whole perfect subtree at once (its root and its size, a
    power of two the current size is a multiple of): a worker that hashed an aligned
    block of leaves hands over one hash instead of the block (see ``subtree_roots``).
    ``extend`` appends many leaves, hashing whole blocks of them at C speed.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, subtree root)
        self._size = 0

    @property
    def size(self) -> int:
        """How many leaves have been appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf's hash (already ``leaf_hash``-ed)."""
        _require_hash(leaf_hash, "leaf hash")
        self._push(leaf_hash, 1)

    def append_subtree(self, subtree_root: bytes, size: int) -> None:
        """Append ``size`` leaves given by the root of their perfect subtree.

        ``size`` must be a power of two dividing the current size: only then is the
        block a subtree of the final tree (RFC 9162 never splits an aligned block).
        """
        _require_hash(subtree_root, "subtree root")
        _require_int(size, "size")
        if size < 1 or size & (size - 1):
            raise ValueError(f"subtree size must be a power of two, got {size}")
        if self._size % size:
            raise ValueError(f"a subtree of {size} leaves cannot start at leaf {self._size}")
        if self._size + size > _MAX_TREE_SIZE:
            raise ValueError("tree size would exceed 2**64 - 1")
        self._push(subtree_root, size)

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append leaves in order; the same as ``append`` for each, only faster."""
        for size, subtree_root in subtree_roots(self._size, leaf_hashes):
            self._push(subtree_root, size)

    def _push(self, value: bytes, size: int) -> None:
        self._size += size
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            value = _node(left, value)
            size *= 2
        self._stack.append((size, value))

    def root(self) -> bytes:
        """MTH of the leaves appended so far; ``SHA-256()`` when there are none."""
        if not self._stack:
            return _EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = _node(left, value)
        return value


def subtree_roots(start: int, leaf_hashes: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The leaves at positions ``start``, ``start + 1``... of a tree, reduced to the
    roots of the fewest perfect subtrees covering them, as ``(size, root)`` in order.

    Each block's size is a power of two dividing its start, so it is a subtree of the
    tree whatever its final size, and ``RootBuilder.append_subtree`` accepts these in
    order once the builder holds ``start`` leaves. Lets workers hash disjoint ranges of
    one tree and hand back a few hashes each.
    """
    _require_int(start, "start")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    hashes = _checked_leaf_hashes(leaf_hashes)
    roots = []
    position, end = start, start + len(hashes)
    while position < end:
        size = position & -position if position else 1 << (end - 1).bit_length()
        while size > end - position:
            size >>= 1
        roots.append((size, _perfect_root(hashes[position - start : position - start + size])))
        position += size
    return roots


def _perfect_root(level: list[bytes]) -> bytes:
    """MTH of 2**k leaf hashes: the same tree as ``_subtree_root``, a level at a time
    with ``map`` so that no Python bytecode runs per node, in slices of a few thousand
    nodes so the intermediate objects stay in the CPU cache (an even slice size never
    separates a pair)."""
    while len(level) > 1:
        parent: list[bytes] = []
        for first in range(0, len(level), _SLICE):
            part = level[first : first + _SLICE]
            messages = map(add, map(_NODE_PREFIX.__add__, part[0::2]), part[1::2])
            parent += map(_fast_digest, map(_fast_sha256, messages))
        level = parent
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(hashes: list[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]), iteratively in O(end - start).

    Pairing neighbours level by level and carrying an odd last node up unchanged gives
    the same tree as RFC 9162's "split at the largest power of two below n" recursion:
    the left part is always a complete subtree, and only the rightmost node of a level
    can lack a sibling.
    """
    if start == end:
        return _EMPTY_ROOT
    level = hashes[start:end]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _checked_leaf_hashes(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    if isinstance(leaf_hashes, str | bytes | bytearray) or not isinstance(leaf_hashes, Sequence):
        raise ValueError(
            f"leaf_hashes must be a sequence of 32-byte hashes, got {type(leaf_hashes).__name__}"
        )
    hashes = list(leaf_hashes)
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != _HASH_SIZE:
            raise ValueError(f"leaf hash {i} is not a 32-byte hash: {_describe(h)}")
    return hashes


def _require_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != _HASH_SIZE:
        raise ValueError(f"{what} is not a 32-byte hash: {_describe(value)}")


def _require_int(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an int, got {type(value).__name__}")


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__


# --- verifying -----------------------------------------------------------------------
# Inputs are checked with exact types (``type(x) is int``/``bytes``): a subclass could
# override arithmetic or ``len`` and make the checks below lie or raise.


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf_hash`` at ``index`` in the tree of
    ``tree_size`` leaves whose root is ``root``? Never raises; malformed input is False.

    Like every RFC 9162 verifier, this checks the claim against the root only: the
    root must come from a trusted source (a signed or on-chain tree head) for the
    given ``tree_size``.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not (_is_size(index) and _is_size(tree_size)) or index >= tree_size:
        return False
    path = _as_hashes(proof)
    if path is None:
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            # A rightmost node without a sibling: climb until it is a right child.
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show that the tree of ``old_size`` leaves with
    root ``old_root`` is a prefix of the tree of ``new_size`` leaves with ``new_root``?

    Requires ``0 < old_size <= new_size``; equal sizes need an empty proof and equal
    roots. Never raises; malformed input is False.
    """
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not (_is_size(old_size) and _is_size(new_size)) or not 0 < old_size <= new_size:
        return False
    path = _as_hashes(proof)
    if path is None:
        return False
    if old_size == new_size:
        return not path and hmac.compare_digest(old_root, new_root)
    if not path:
        return False
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one; its root starts the path.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


def _is_hash(value: object) -> TypeGuard[bytes]:
    return type(value) is bytes and len(value) == _HASH_SIZE


def _is_size(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= _MAX_TREE_SIZE


def _as_hashes(proof: object) -> list[bytes] | None:
    """A fresh list of the proof's hashes, or None if it is not a sequence of them."""
    if type(proof) is list or type(proof) is tuple:
        items: list[object] = list(proof)
    elif isinstance(proof, Sequence) and not isinstance(proof, str | bytes | bytearray):
        # A foreign Sequence runs arbitrary code; whatever it raises means "malformed".
        try:
            if len(proof) > _MAX_PROOF_LEN:
                return None
            items = list(proof)
        except Exception:
            return None
    else:
        return None
    if len(items) > _MAX_PROOF_LEN:
        return None
    hashes: list[bytes] = []
    for item in items:
        if not _is_hash(item):
            return None
        hashes.append(item)
    return hashes
