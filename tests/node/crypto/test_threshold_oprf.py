"""Threshold OPRF with dealerless DKG (node/crypto/threshold_oprf.py).

Checked: for several (t, n) the combined answer of any t holders finalizes to exactly
``oprf.evaluate(k, x)``, where the test reconstructs ``k`` from t shares by Lagrange
interpolation in plain integer arithmetic modulo the group order (an oracle independent
of the module's libsodium scalar code); different t-subsets agree, t - 1 shares give a
different output, the public key is ``k * G`` and public shares match the holders'
keys; a holder offline changes nothing; a dealer's tampered share is rejected naming the
dealer; a holder answering with a wrong key or a tampered element is named; duplicate
indices, too few shares, malformed elements, scalars and parameters are named errors.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from node.crypto import oprf
from node.crypto import threshold_oprf as tho

Q = oprf.GROUP_ORDER
INPUTS = [b"alice@example.test", b"\x00", b"6222 0000 1111 2222"]


def _int(scalar: bytes) -> int:
    return int.from_bytes(scalar, "little")


def _bytes(value: int) -> bytes:
    return (value % Q).to_bytes(32, "little")


def _reconstruct(shares: dict[int, bytes]) -> bytes:
    """Test-only: k = f(0) by Lagrange interpolation over the integers modulo Q."""
    total = 0
    for i, share in shares.items():
        num, den = 1, 1
        for j in shares:
            if j != i:
                num = num * j % Q
                den = den * (j - i) % Q
        total += _int(share) * num * pow(den, -1, Q)
    return _bytes(total)


def _seeded_rng(seed: bytes) -> Callable[[], bytes]:
    """A deterministic scalar source so that failures reproduce."""
    counter = itertools.count()

    def draw() -> bytes:
        return oprf.hash_to_scalar(seed + next(counter).to_bytes(4, "big"), dst=b"test-rng")

    return draw


def _dkg(
    t: int, n: int, seed: bytes = b"dkg"
) -> tuple[dict[int, tho.KeyShare], dict[int, list[bytes]]]:
    """Run the whole DKG in memory: every holder deals, every holder combines."""
    dealings = {i: tho.deal(t, n, _seeded_rng(seed + bytes([i]))) for i in range(1, n + 1)}
    commitments = {i: d.commitments for i, d in dealings.items()}
    key_shares = {
        j: tho.combine_dealings(j, {i: (d.commitments, d.shares[j]) for i, d in dealings.items()})
        for j in range(1, n + 1)
    }
    return key_shares, commitments


def _blind_all(inputs: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    pairs = [oprf.blind(x) for x in inputs]
    return [r for r, _ in pairs], [b for _, b in pairs]


def _query(holders: list[tho.KeyShare], t: int, commitments: dict[int, list[bytes]]) -> list[bytes]:
    blinds, blinded = _blind_all(INPUTS)
    evaluations = [tho.evaluate_share(h, blinded) for h in holders]
    public_shares = {h.index: tho.public_share(commitments, h.index) for h in holders}
    return tho.finalize_threshold(INPUTS, blinds, evaluations, t, public_shares)


@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 3), (3, 5), (5, 10)])
def test_any_t_subset_matches_direct_evaluation(t: int, n: int) -> None:
    key_shares, commitments = _dkg(t, n)
    k = _reconstruct({i: key_shares[i].secret for i in range(1, t + 1)})
    expected = [oprf.evaluate(k, x) for x in INPUTS]

    assert tho.public_key(commitments) == oprf._mul_gen(k)
    for j, share in key_shares.items():
        assert share.public == tho.public_share(commitments, j)

    subsets = list(itertools.combinations(range(1, n + 1), t))
    for subset in random.Random(t * 100 + n).sample(subsets, min(3, len(subsets))):
        assert _query([key_shares[i] for i in subset], t, commitments) == expected
        # Another reconstruction from the same subset gives the same key.
        assert _reconstruct({i: key_shares[i].secret for i in subset}) == k


@pytest.mark.parametrize(("t", "n"), [(2, 3), (3, 5), (5, 10)])
def test_t_minus_one_shares_give_a_wrong_output(t: int, n: int) -> None:
    key_shares, _ = _dkg(t, n)
    k = _reconstruct({i: key_shares[i].secret for i in range(1, t + 1)})
    blinds, blinded = _blind_all(INPUTS)
    evaluations = [tho.evaluate_share(key_shares[i], blinded) for i in range(1, t)]
    with pytest.raises(tho.TooFewSharesError):
        tho.combine(evaluations, t)
    # Pretending the threshold were t - 1 interpolates the wrong polynomial.
    combined = tho.combine(evaluations, t - 1)
    outputs = [oprf.finalize(x, r, e) for x, r, e in zip(INPUTS, blinds, combined, strict=True)]
    assert all(o != oprf.evaluate(k, x) for o, x in zip(outputs, INPUTS, strict=True))


def test_holder_offline_and_extra_answers() -> None:
    t, n = 3, 5
    key_shares, commitments = _dkg(t, n, b"offline")
    k = _reconstruct({i: key_shares[i].secret for i in (1, 2, 3)})
    expected = [oprf.evaluate(k, x) for x in INPUTS]
    online = [key_shares[i] for i in (1, 3, 4, 5)]  # holder 2 is offline
    assert _query(online, t, commitments) == expected

    # combine uses the t smallest indices; more verified answers change nothing.
    _, blinded = _blind_all(INPUTS)
    all_evals = [tho.evaluate_share(h, blinded) for h in key_shares.values()]
    assert tho.combine(all_evals, t) == tho.combine(all_evals[:t], t)


def test_lagrange_coefficients_sum_to_one() -> None:
    lambdas = tho.lagrange_at_zero([2, 5, 7, 11])
    assert sum(_int(v) for v in lambdas.values()) % Q == 1
    with pytest.raises(tho.DuplicateIndexError, match="holder index 5"):
        tho.lagrange_at_zero([2, 5, 5])
    with pytest.raises(tho.InvalidIndexError):
        tho.lagrange_at_zero([0, 1])
    with pytest.raises(tho.TooFewSharesError):
        tho.lagrange_at_zero([])


def test_deal_is_deterministic_with_seeded_rng_and_shares_verify() -> None:
    a = tho.deal(2, 3, _seeded_rng(b"x"))
    b = tho.deal(2, 3, _seeded_rng(b"x"))
    assert a == b
    assert sorted(a.shares) == [1, 2, 3]
    assert "shares" not in repr(a)
    for j, share in a.shares.items():
        tho.verify_share(a.commitments, j, share)
    # A default (libsodium) dealing verifies too.
    c = tho.deal(3, 4)
    for j, share in c.shares.items():
        tho.verify_share(c.commitments, j, share)


def test_tampered_share_is_rejected_naming_the_dealer() -> None:
    t, n = 2, 3
    dealings = {i: tho.deal(t, n) for i in range(1, n + 1)}
    bad = dict(dealings[3].shares)
    bad[2] = _bytes(_int(bad[2]) + 1)
    received = {i: (d.commitments, d.shares[2]) for i, d in dealings.items()}
    received[3] = (dealings[3].commitments, bad[2])
    with pytest.raises(tho.InvalidShareError, match="dealer 3") as info:
        tho.combine_dealings(2, received)
    assert info.value.dealer == 3
    assert isinstance(info.value, oprf.OprfError)
    # A share sent for another holder is just as wrong.
    with pytest.raises(tho.InvalidShareError, match="holder 1"):
        tho.verify_share(dealings[1].commitments, 1, dealings[1].shares[2], dealer=1)
    # Holders exclude the disqualified dealer and still agree on one key.
    qualified = {i: d for i, d in dealings.items() if i != 3}
    shares = {
        j: tho.combine_dealings(j, {i: (d.commitments, d.shares[j]) for i, d in qualified.items()})
        for j in range(1, n + 1)
    }
    commitments = {i: d.commitments for i, d in qualified.items()}
    k = _reconstruct({j: shares[j].secret for j in (1, 3)})
    assert tho.public_key(commitments) == oprf._mul_gen(k)
    assert _reconstruct({j: shares[j].secret for j in (2, 3)}) == k


def test_malformed_dealings_are_named() -> None:
    d1 = tho.deal(2, 3)
    d2 = tho.deal(3, 3)
    with pytest.raises(tho.InvalidDealingError, match="dealer 2") as info:
        tho.combine_dealings(
            1, {1: (d1.commitments, d1.shares[1]), 2: (d2.commitments, d2.shares[1])}
        )
    assert info.value.dealer == 2
    with pytest.raises(tho.InvalidDealingError, match="dealer 2"):
        tho.public_key({1: d1.commitments, 2: d2.commitments})
    bad_point = [b"\xff" * 32, d1.commitments[1]]
    with pytest.raises(tho.InvalidDealingError, match="dealer 4: commitment 0"):
        tho.verify_share(bad_point, 1, d1.shares[1], dealer=4)
    identity = [d1.commitments[0], bytes(32)]
    with pytest.raises(tho.InvalidDealingError, match="commitment 1 is the identity"):
        tho.verify_share(identity, 1, d1.shares[1])
    with pytest.raises(tho.InvalidDealingError, match="not reduced"):
        tho.verify_share(d1.commitments, 1, b"\xff" * 32, dealer=1)
    with pytest.raises(tho.InvalidDealingError, match="commitments"):
        tho.verify_share([], 1, d1.shares[1])
    with pytest.raises(tho.InvalidIndexError):
        tho.verify_share(d1.commitments, 0, d1.shares[1])
    with pytest.raises(tho.InvalidIndexError):
        tho.combine_dealings(256, {1: (d1.commitments, d1.shares[1])})
    with pytest.raises(tho.ThresholdOprfError, match="no dealings"):
        tho.combine_dealings(1, {})


@pytest.mark.parametrize(("t", "n"), [(0, 1), (3, 2), (1, 256), (True, 2)])
def test_bad_parameters(t: int, n: int) -> None:
    with pytest.raises(tho.InvalidParametersError):
        tho.deal(t, n)


def test_rng_must_return_canonical_scalars() -> None:
    with pytest.raises(oprf.InvalidScalarError, match="coefficient 0"):
        tho.deal(2, 3, lambda: b"\xff" * 32)


def test_wrong_key_or_tampered_element_names_the_holder() -> None:
    t, n = 2, 3
    key_shares, commitments = _dkg(t, n, b"cheat")
    public_shares = {j: tho.public_share(commitments, j) for j in key_shares}
    blinds, blinded = _blind_all(INPUTS)

    # Holder 2 answers with a key other than the one behind K_2.
    impostor = tho.KeyShare(2, oprf.random_scalar(), key_shares[2].public)
    evaluations = [
        tho.evaluate_share(key_shares[1], blinded),
        tho.evaluate_share(impostor, blinded),
    ]
    with pytest.raises(tho.ShareVerifyError, match="holder 2") as info:
        tho.finalize_threshold(INPUTS, blinds, evaluations, t, public_shares)
    assert info.value.index == 2
    assert isinstance(info.value, oprf.VerifyError)
    for x in INPUTS:
        assert x.hex() not in str(info.value)

    # Holder 3 answers honestly but one element is swapped for another valid element.
    honest = tho.evaluate_share(key_shares[3], blinded)
    swapped = list(honest.evaluated_elements)
    swapped[1] = oprf._mul_gen(oprf.random_scalar())
    tampered = tho.ShareEvaluation(3, swapped, honest.proof)
    with pytest.raises(tho.ShareVerifyError, match="holder 3"):
        tho.verify_share_evaluation(public_shares[3], blinded, tampered)
    short = tho.ShareEvaluation(3, swapped[:1], honest.proof)
    with pytest.raises(tho.ShareVerifyError, match="holder 3: answered 1"):
        tho.verify_share_evaluation(public_shares[3], blinded, short)
    garbage = tho.ShareEvaluation(3, [b"\xff" * 32] * len(blinded), honest.proof)
    with pytest.raises(tho.ShareVerifyError, match="holder 3: malformed"):
        tho.verify_share_evaluation(public_shares[3], blinded, garbage)
    with pytest.raises(oprf.InvalidElementError, match="public share of holder 3"):
        tho.verify_share_evaluation(bytes(32), blinded, honest)
    # Honest answers from holders 1 and 3 still succeed.
    good = [tho.evaluate_share(key_shares[1], blinded), honest]
    assert tho.finalize_threshold(INPUTS, blinds, good, t, public_shares) == [
        oprf.evaluate(_reconstruct({1: key_shares[1].secret, 3: key_shares[3].secret}), x)
        for x in INPUTS
    ]


def test_combination_errors() -> None:
    t, n = 2, 3
    key_shares, commitments = _dkg(t, n, b"errors")
    public_shares = {j: tho.public_share(commitments, j) for j in key_shares}
    blinds, blinded = _blind_all(INPUTS)
    e1 = tho.evaluate_share(key_shares[1], blinded)
    e2 = tho.evaluate_share(key_shares[2], blinded)
    with pytest.raises(tho.DuplicateIndexError, match="holder index 1") as info:
        tho.combine([e1, e1], t)
    assert info.value.index == 1
    with pytest.raises(tho.DuplicateIndexError):
        tho.finalize_threshold(INPUTS, blinds, [e1, e1, e2], t, public_shares)
    with pytest.raises(tho.TooFewSharesError, match="2 distinct holders, got 1"):
        tho.finalize_threshold(INPUTS, blinds, [e1], t, public_shares)
    with pytest.raises(tho.UnknownHolderError, match="holder 2"):
        tho.finalize_threshold(INPUTS, blinds, [e1, e2], t, {1: public_shares[1]})
    with pytest.raises(tho.ThresholdOprfError, match="3 inputs but 2 blinds"):
        tho.finalize_threshold(INPUTS, blinds[:2], [e1, e2], t, public_shares)
    with pytest.raises(tho.InvalidParametersError):
        tho.combine([e1, e2], 0)
    identity = tho.ShareEvaluation(2, [bytes(32), *e2.evaluated_elements[1:]], e2.proof)
    with pytest.raises(oprf.InvalidElementError, match=r"holder 2 evaluated_elements\[0\]"):
        tho.combine([e1, identity], t)
    uneven = tho.ShareEvaluation(2, e2.evaluated_elements[:1], e2.proof)
    with pytest.raises(tho.ThresholdOprfError, match="holder 2 answered 1"):
        tho.combine([e1, uneven], t)


def test_invalid_blinded_elements_are_refused() -> None:
    key_shares, _ = _dkg(1, 1, b"invalid")
    with pytest.raises(oprf.InvalidElementError, match=r"blinded_elements\[1\]"):
        tho.evaluate_share(key_shares[1], [oprf.blind(b"x")[1], b"\xff" * 32])
    with pytest.raises(oprf.InvalidElementError, match="identity"):
        tho.evaluate_share(key_shares[1], [bytes(32)])
    with pytest.raises(oprf.OprfError, match="non-empty"):
        tho.evaluate_share(key_shares[1], [])
