"""Shamir secret sharing of 32-byte secrets, on pycryptodome's GF(2^128) implementation.

pycryptodome's ``Shamir`` shares exactly 16-byte secrets; the protocols here share
32-byte seeds (a self-mask seed, an X25519 private key). A 32-byte secret is split into
two 16-byte halves, each shared with an independent random polynomial, and a share is
the concatenation of the two half-shares at the same index. The halves are independent
secrets, so any set of fewer than ``threshold`` shares still reveals nothing about
either half. No polynomial arithmetic lives here: this module only fixes lengths and
indices and checks them, because pycryptodome's own functions accept (and silently
misinterpret) duplicate or out-of-range input in ways that would surface far away as a
wrong reconstruction.
"""

from __future__ import annotations

from collections.abc import Sequence

from Crypto.Protocol.SecretSharing import Shamir

SECRET_BYTES = 32
SHARE_BYTES = 32
HALF = 16
MAX_SHARES = 255  # share indices travel as one byte on the wire


class ShareError(ValueError):
    """Shares that cannot be combined: wrong length, duplicate or out-of-range index."""


def split(secret: bytes, threshold: int, shares: int) -> list[tuple[int, bytes]]:
    """Split a 32-byte secret into ``shares`` shares, any ``threshold`` of which recover it.

    Returns ``(index, share)`` pairs with indices 1..shares (index 0 would be the
    secret itself) and 32-byte shares.
    """
    if len(secret) != SECRET_BYTES:
        raise ShareError(f"secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ShareError(
            f"need 2 <= threshold <= shares <= {MAX_SHARES}, got {threshold} of {shares}"
        )
    low = Shamir.split(threshold, shares, secret[:HALF], ssss=False)
    high = Shamir.split(threshold, shares, secret[HALF:], ssss=False)
    out = []
    for (i, a), (j, b) in zip(low, high, strict=True):
        if i != j:  # pragma: no cover - pycryptodome numbers shares 1..n in order
            raise ShareError("pycryptodome returned misaligned share indices")
        out.append((i, a + b))
    return out


def combine(shares: Sequence[tuple[int, bytes]]) -> bytes:
    """Recover the 32-byte secret from exactly ``threshold`` distinct shares.

    Passing more shares than the threshold is harmless when all are honest, but passing
    fewer silently yields a wrong value (interpolation cannot tell), so callers must
    check the result against a commitment; see ``node/crypto/secagg.py``.
    """
    if not shares:
        raise ShareError("no shares to combine")
    seen: set[int] = set()
    for index, share in shares:
        if not 1 <= index <= MAX_SHARES:
            raise ShareError(f"share index {index} outside 1..{MAX_SHARES}")
        if index in seen:
            raise ShareError(f"duplicate share index {index}")
        if len(share) != SHARE_BYTES:
            raise ShareError(f"share {index} must be {SHARE_BYTES} bytes, got {len(share)}")
        seen.add(index)
    low = Shamir.combine([(i, s[:HALF]) for i, s in shares], ssss=False)
    high = Shamir.combine([(i, s[HALF:]) for i, s in shares], ssss=False)
    return low + high
