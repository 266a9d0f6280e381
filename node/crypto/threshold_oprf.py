"""t-of-n threshold OPRF over RFC 9497 OPRF(ristretto255, SHA-512), with a dealerless DKG.

Why this module exists: the anonymous blacklist lookup (DESIGN §6) needs a union of
blacklist entries encrypted under an OPRF key that *no single provider knows*, yet that
a querier can evaluate obliviously. Here the key ``k`` is Shamir-shared among ``n`` key
holders (a polynomial ``f`` of degree ``t - 1`` over the ristretto255 scalar field,
``k = f(0)``, holder ``i`` holds ``k_i = f(i)``), created without a dealer, and never
reconstructed: any ``t`` holders each answer ``k_i * B`` for the querier's blinded
element ``B``, and the querier combines the answers with Lagrange coefficients at 0 into
exactly ``k * B``. ``oprf.finalize`` then yields the same 64 bytes that
``oprf.evaluate(k, input)`` would, i.e. the RFC 9497 *OPRF-mode* (0x00) output under
``k``: ``HashToGroup`` and ``Finalize`` use the mode-0x00 context string. So a union
whose entries were computed as ``F(k, x)`` (jointly, by the same threshold evaluation)
matches what a querier computes.

**Key generation** is joint Feldman VSS (Pedersen 1991): every holder deals a random
polynomial ``f_i``, publishes Feldman commitments ``C_i[m] = a_{i,m} * G`` and sends
holder ``j`` the share ``f_i(j)`` privately; ``j`` checks
``f_i(j) * G == sum_m j^m * C_i[m]`` and sums the shares it accepted. The joint key is
``f = sum_i f_i``, the public key ``K = sum_i C_i[0] = k * G`` and every holder's public
share ``K_j = k_j * G`` is computable by anyone from the commitments. As Gennaro,
Jarecki, Krawczyk and Rabin ("Secure Distributed Key Generation for Discrete-Log Based
Cryptosystems", EUROCRYPT 1999) show, a rushing adversary who sees the honest
commitments before publishing (or who provokes complaints) can bias the *distribution
of the public key* in this simple variant. That is harmless for an OPRF key: ``k``
stays unknown to any coalition of fewer than ``t`` holders, and the PRF's security does
not depend on ``K`` being uniformly distributed, only on ``k`` being secret.

**Evaluation** carries one batched RFC 9497 DLEQ proof per holder (VOPRF proof, mode
0x01, with the holder's public share ``K_i`` as the public key). It buys: a holder who
answers with another key, or tampers with an element, is detected and *named* before
anything is combined, so one faulty holder cannot silently corrupt the output (the
querier drops it and asks another). It does not buy protection against a coalition of
``t`` holders: they hold enough shares to evaluate ``F(k, .)`` on anything they like
(and to reconstruct ``k``). The threat model is therefore: fewer than ``t`` colluding
holders learn nothing about ``k``; the querier's input is hidden from all of them by the
blind, whatever their number.

No group or field arithmetic is implemented here: points via ``oprf``'s libsodium
helpers, scalars via libsodium's ``crypto_core_ristretto255_scalar_*`` (through
``rbcl``), randomness from libsodium's CSPRNG. ``node/crypto/shamir.py`` cannot be
reused: it is fixed to pycryptodome's GF(2^128) and shares byte strings, whereas the
holders' shares must live in the ristretto255 scalar field for ``k_i * B`` to combine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import rbcl  # type: ignore[import-untyped]

from node.crypto import oprf
from node.crypto.oprf import OprfError, VerifyError

# Holder indices travel as one byte elsewhere in the project (see shamir.MAX_SHARES);
# the same bound keeps Lagrange denominators and Horner steps small and public.
MAX_HOLDERS = 255

_ZERO = bytes(oprf.SCALAR_BYTES)

RandomScalar = Callable[[], bytes]


class ThresholdOprfError(OprfError):
    """Base of this module's errors, itself an ``OprfError`` so one ``except`` covers both."""


class InvalidParametersError(ThresholdOprfError):
    """``t`` and ``n`` that do not satisfy ``1 <= t <= n <= MAX_HOLDERS``."""


class InvalidIndexError(ThresholdOprfError):
    """A holder index outside ``1..MAX_HOLDERS`` (index 0 is the secret itself)."""


class InvalidDealingError(ThresholdOprfError):
    """A dealer's message is malformed: bad commitment, wrong degree, bad share encoding."""

    def __init__(self, dealer: int | None, message: str) -> None:
        self.dealer = dealer
        who = "dealing" if dealer is None else f"dealer {dealer}"
        super().__init__(f"{who}: {message}")


class InvalidShareError(InvalidDealingError):
    """A share that does not match its dealer's Feldman commitments: the dealer cheated."""


class ShareVerifyError(VerifyError):
    """A holder's evaluation proof failed: it did not use the key behind its public share."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(f"holder {index}: {message}")


class DuplicateIndexError(ThresholdOprfError):
    """Two evaluations (or Lagrange points) carry the same holder index."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(f"holder index {index} appears more than once")


class TooFewSharesError(ThresholdOprfError):
    """Fewer than ``t`` distinct holders answered: the combination would be wrong."""


class UnknownHolderError(ThresholdOprfError):
    """An evaluation from a holder whose public share the caller did not supply."""


@dataclass(frozen=True)
class Dealing:
    """One holder's DKG contribution: public commitments and the private shares to send.

    ``commitments[m] = a_m * G`` for the coefficients ``a_0..a_{t-1}`` of the dealer's
    polynomial; ``shares[j] = f(j)`` goes to holder ``j`` over a private channel only.
    """

    commitments: list[bytes]
    shares: dict[int, bytes] = field(repr=False)


@dataclass(frozen=True)
class KeyShare:
    """Holder ``index``'s share ``secret = k_index`` and ``public = k_index * G``."""

    index: int
    secret: bytes = field(repr=False)
    public: bytes


@dataclass(frozen=True)
class ShareEvaluation:
    """Holder ``index``'s answer: ``k_index * B`` per blinded element, and one DLEQ proof."""

    index: int
    evaluated_elements: list[bytes]
    proof: bytes


def _scalar_of(value: int) -> bytes:
    """A small non-negative public integer (a holder index) as a scalar encoding."""
    return value.to_bytes(oprf.SCALAR_BYTES, "little")


def _check_index(index: int, what: str = "holder index") -> int:
    """Refuse index 0 (it would hand out ``f(0) = k``) and anything out of range."""
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_HOLDERS:
        raise InvalidIndexError(f"{what} must be an int in 1..{MAX_HOLDERS}, got {index!r}")
    return index


def _check_parameters(t: int, n: int) -> None:
    """``1 <= t <= n <= MAX_HOLDERS``; t = 1 is allowed (every holder holds k itself)."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (t, n)):
        raise InvalidParametersError("t and n must be ints")
    if not 1 <= t <= n <= MAX_HOLDERS:
        raise InvalidParametersError(f"need 1 <= t <= n <= {MAX_HOLDERS}, got t={t}, n={n}")


def _eval_poly(coefficients: Sequence[bytes], x: int) -> bytes:
    """``f(x)`` by Horner's rule with libsodium's scalar multiply-add."""
    xs = _scalar_of(x)
    acc = coefficients[-1]
    for coefficient in reversed(coefficients[:-1]):
        acc = rbcl.crypto_core_ristretto255_scalar_add(
            rbcl.crypto_core_ristretto255_scalar_mul(acc, xs), coefficient
        )
    result: bytes = acc
    return result


def _eval_commitments(commitments: Sequence[bytes], x: int) -> bytes:
    """``sum_m x^m * C[m]`` (= ``f(x) * G``) by Horner's rule in the group."""
    xs = _scalar_of(x)
    acc = commitments[-1]
    for commitment in reversed(commitments[:-1]):
        acc = oprf._add(oprf._mul(xs, acc), commitment)
    return acc


def deal(t: int, n: int, rng: RandomScalar | None = None) -> Dealing:
    """Draw a random degree ``t - 1`` polynomial and produce its commitments and shares.

    ``rng`` returns a 32-byte canonical scalar per call (libsodium's
    ``oprf.random_scalar`` by default); tests pass a deterministic one. The polynomial's
    coefficients are not returned: once the shares are sent they must be forgotten.
    """
    _check_parameters(t, n)
    draw = oprf.random_scalar if rng is None else rng
    coefficients = [oprf.check_scalar(draw(), f"rng() coefficient {m}") for m in range(t)]
    commitments = [oprf._mul_gen(a) for a in coefficients]
    shares = {j: _eval_poly(coefficients, j) for j in range(1, n + 1)}
    return Dealing(commitments=commitments, shares=shares)


def _check_commitments(commitments: Sequence[bytes], dealer: int | None) -> None:
    """Non-empty, at most ``MAX_HOLDERS`` long, each a canonical non-identity element.

    An honest dealer's coefficient is zero with probability 2^-252, so an identity
    commitment only comes from a dealer who chose it: refusing it costs nothing.
    """
    if not commitments or len(commitments) > MAX_HOLDERS:
        raise InvalidDealingError(dealer, f"needs 1..{MAX_HOLDERS} commitments")
    for m, commitment in enumerate(commitments):
        try:
            oprf.check_element(commitment, f"commitment {m}")
        except OprfError as exc:
            raise InvalidDealingError(dealer, str(exc)) from None


def verify_share(
    commitments: Sequence[bytes], index: int, share: bytes, *, dealer: int | None = None
) -> None:
    """Check ``share * G == sum_m index^m * C[m]``; raise :class:`InvalidShareError` if not.

    This is what makes a dealer's shares consistent with one polynomial (Feldman VSS):
    without it a dealer could hand different holders shares of different secrets and
    the joint key would depend on which ``t`` holders answer. ``dealer`` only names the
    culprit in the error.
    """
    _check_index(index)
    _check_commitments(commitments, dealer)
    try:
        oprf.check_scalar(share, "share", allow_zero=True)
    except OprfError as exc:
        raise InvalidDealingError(dealer, f"share for holder {index}: {exc}") from None
    if oprf._mul_gen(share) != _eval_commitments(commitments, index):
        raise InvalidShareError(
            dealer, f"share for holder {index} does not match the dealer's commitments"
        )


def combine_dealings(
    index: int, dealings_for_me: Mapping[int, tuple[Sequence[bytes], bytes]]
) -> KeyShare:
    """Holder ``index`` verifies every dealer's share to it and sums them into ``k_index``.

    ``dealings_for_me`` maps dealer index to ``(commitments, share sent to me)``. The
    first dealer whose share fails raises :class:`InvalidShareError` naming it; the
    protocol layer must then run the complaint round so that *all* holders agree on the
    same qualified set of dealers before calling this again without the culprit (holders
    summing over different dealer sets would hold shares of different keys). All
    dealers must use the same threshold (commitment count).
    """
    _check_index(index)
    if not dealings_for_me:
        raise ThresholdOprfError("no dealings to combine")
    degree: int | None = None
    secret = _ZERO
    for dealer in sorted(dealings_for_me):
        _check_index(dealer, "dealer index")
        commitments, share = dealings_for_me[dealer]
        if degree is None:
            degree = len(commitments)
        elif len(commitments) != degree:
            raise InvalidDealingError(
                dealer, f"has {len(commitments)} commitments, other dealers {degree}"
            )
        verify_share(commitments, index, share, dealer=dealer)
        secret = rbcl.crypto_core_ristretto255_scalar_add(secret, share)
    if secret == _ZERO:  # probability 2^-252 with one honest dealer
        raise ThresholdOprfError(f"holder {index}: the summed share is zero; rerun the DKG")
    return KeyShare(index=index, secret=secret, public=oprf._mul_gen(secret))


def _aggregate_commitments(all_commitments: Mapping[int, Sequence[bytes]]) -> list[bytes]:
    """Coefficient-wise sum of every dealer's commitments: the joint polynomial's commitments."""
    if not all_commitments:
        raise ThresholdOprfError("no commitments")
    degree: int | None = None
    total: list[bytes] = []
    for dealer in sorted(all_commitments):
        _check_index(dealer, "dealer index")
        commitments = all_commitments[dealer]
        _check_commitments(commitments, dealer)
        if degree is None:
            degree = len(commitments)
            total = list(commitments)
        elif len(commitments) != degree:
            raise InvalidDealingError(
                dealer, f"has {len(commitments)} commitments, other dealers {degree}"
            )
        else:
            total = [oprf._add(a, b) for a, b in zip(total, commitments, strict=True)]
    return total


def public_key(all_commitments: Mapping[int, Sequence[bytes]]) -> bytes:
    """``K = sum_i C_i[0] = k * G`` over the qualified dealers; what the union is bound to."""
    key = _aggregate_commitments(all_commitments)[0]
    return oprf.check_element(key, "public key")


def public_share(all_commitments: Mapping[int, Sequence[bytes]], index: int) -> bytes:
    """``K_index = k_index * G``, computed by anyone from the public commitments alone.

    A querier checks each holder's evaluation proof against this value, so it needs no
    word of the holder's about which key it holds.
    """
    _check_index(index)
    share = _eval_commitments(_aggregate_commitments(all_commitments), index)
    return oprf.check_element(share, f"public share of holder {index}")


def evaluate_share(key_share: KeyShare, blinded_elements: Sequence[bytes]) -> ShareEvaluation:
    """``k_i * B`` for every blinded element, with one batched DLEQ proof for them all.

    The proof is RFC 9497's VOPRF proof (mode 0x01) with ``K_i`` as the public key, so a
    querier can check that the holder used the share behind its published ``K_i``.
    """
    _check_index(key_share.index)
    evaluated, proof = oprf.verifiable_blind_evaluate_batch(
        key_share.secret, key_share.public, blinded_elements
    )
    return ShareEvaluation(index=key_share.index, evaluated_elements=evaluated, proof=proof)


def verify_share_evaluation(
    public_share: bytes, blinded_elements: Sequence[bytes], evaluation: ShareEvaluation
) -> None:
    """Raise :class:`ShareVerifyError` (a ``VerifyError``) unless the proof checks.

    Malformed evaluated elements or proof encodings are reported as a failed proof too,
    naming the holder: whatever the cause, that holder's answer must be dropped. A
    malformed ``public_share`` is the caller's error and raises ``InvalidElementError``.
    """
    index = _check_index(evaluation.index)
    oprf.check_element(public_share, f"public share of holder {index}")
    if len(evaluation.evaluated_elements) != len(blinded_elements):
        raise ShareVerifyError(
            index,
            f"answered {len(evaluation.evaluated_elements)} elements "
            f"for {len(blinded_elements)} blinded elements",
        )
    try:
        ok = oprf.verify_proof(
            oprf._generator(),
            public_share,
            blinded_elements,
            evaluation.evaluated_elements,
            evaluation.proof,
        )
    except OprfError as exc:
        raise ShareVerifyError(index, f"malformed evaluation: {exc}") from None
    if not ok:
        raise ShareVerifyError(index, "proof does not verify against its public share")


def lagrange_at_zero(indices: Sequence[int]) -> dict[int, bytes]:
    """``lambda_i = prod_{j != i} j / (j - i)`` for each index: ``f(0) = sum lambda_i f(i)``.

    Indices are public, so these are computed in the clear (with libsodium scalars).
    """
    if not indices:
        raise TooFewSharesError("no indices to interpolate")
    seen: set[int] = set()
    for i in indices:
        _check_index(i)
        if i in seen:
            raise DuplicateIndexError(i)
        seen.add(i)
    coefficients: dict[int, bytes] = {}
    one = _scalar_of(1)
    for i in indices:
        numerator = one
        denominator = one
        for j in indices:
            if j == i:
                continue
            numerator = rbcl.crypto_core_ristretto255_scalar_mul(numerator, _scalar_of(j))
            denominator = rbcl.crypto_core_ristretto255_scalar_mul(
                denominator,
                rbcl.crypto_core_ristretto255_scalar_sub(_scalar_of(j), _scalar_of(i)),
            )
        coefficients[i] = rbcl.crypto_core_ristretto255_scalar_mul(
            numerator, rbcl.crypto_core_ristretto255_scalar_invert(denominator)
        )
    return coefficients


def combine(evaluations: Sequence[ShareEvaluation], t: int) -> list[bytes]:
    """Combine the evaluations of at least ``t`` distinct holders into ``k * B`` per element.

    Uses exactly ``t`` of them: those with the ``t`` smallest indices (deterministic,
    and ``t`` multiplications per element instead of one per answer). Every answer must
    already be verified (``verify_share_evaluation``; ``finalize_threshold`` does it):
    an unverified wrong answer among the chosen ``t`` gives a wrong output that nothing
    here can detect. Too few or duplicate holders raise named errors.
    """
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_HOLDERS:
        raise InvalidParametersError(f"t must be an int in 1..{MAX_HOLDERS}, got {t!r}")
    seen: set[int] = set()
    for evaluation in evaluations:
        _check_index(evaluation.index)
        if evaluation.index in seen:
            raise DuplicateIndexError(evaluation.index)
        seen.add(evaluation.index)
    if len(seen) < t:
        raise TooFewSharesError(f"need evaluations from {t} distinct holders, got {len(seen)}")
    chosen = sorted(evaluations, key=lambda e: e.index)[:t]
    width = len(chosen[0].evaluated_elements)
    if width == 0:
        raise ThresholdOprfError("evaluations hold no elements")
    for evaluation in chosen:
        if len(evaluation.evaluated_elements) != width:
            raise ThresholdOprfError(
                f"holder {evaluation.index} answered {len(evaluation.evaluated_elements)} "
                f"elements, holder {chosen[0].index} answered {width}"
            )
        for p, element in enumerate(evaluation.evaluated_elements):
            oprf.check_element(element, f"holder {evaluation.index} evaluated_elements[{p}]")
    lambdas = lagrange_at_zero([e.index for e in chosen])
    combined: list[bytes] = []
    for p in range(width):
        acc = bytes(oprf.ELEMENT_BYTES)
        for evaluation in chosen:
            acc = oprf._add(
                acc, oprf._mul(lambdas[evaluation.index], evaluation.evaluated_elements[p])
            )
        combined.append(oprf.check_element(acc, f"combined element {p}"))
    return combined


def finalize_threshold(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluations: Sequence[ShareEvaluation],
    t: int,
    public_shares: Mapping[int, bytes],
) -> list[bytes]:
    """The querier's last step: verify every holder's proof, combine, and ``oprf.finalize``.

    The blinded elements the proofs must cover are recomputed from ``inputs`` and
    ``blinds`` (mode 0x00), so the querier cannot check proofs over elements other than
    the ones it sent. Any failed proof raises :class:`ShareVerifyError` naming the
    holder, before anything is combined; the caller drops that holder and asks another.
    Returns one 64-byte RFC 9497 OPRF output per input, equal to ``oprf.evaluate(k, x)``.
    """
    if len(inputs) != len(blinds):
        raise ThresholdOprfError(f"{len(inputs)} inputs but {len(blinds)} blinds")
    if not inputs:
        raise ThresholdOprfError("no inputs")
    blinded = [oprf.blind(x, r)[1] for x, r in zip(inputs, blinds, strict=True)]
    for evaluation in evaluations:
        if evaluation.index not in public_shares:
            raise UnknownHolderError(f"no public share for holder {evaluation.index}")
        verify_share_evaluation(public_shares[evaluation.index], blinded, evaluation)
    combined = combine(evaluations, t)
    return [oprf.finalize(x, r, e) for x, r, e in zip(inputs, blinds, combined, strict=True)]
