"""RFC 9497 OPRF/VOPRF over ristretto255-SHA512 (node/crypto/oprf.py).

Checked: RFC 9497 Appendix A.1.1 (OPRF, both vectors) and A.1.2 (VOPRF, both
single-input vectors and the batch-of-two vector) byte for byte, including the derived
key pair and the proofs made with the vectors' fixed nonces; RFC 9380 Appendix K.3
``expand_message_xmd`` (SHA-512) vectors; properties: blinded evaluation equals the
server's direct evaluation, proofs made with another key or over other elements are
rejected, and malformed elements, scalars and identity-mapping inputs are refused with
errors naming the argument.

The vectors below are data copied from the RFC texts (as published in the CFRG drafts'
``poc/vectors`` JSON), not code.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import oprf

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
BLIND_1 = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"
BLIND_2 = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e"
INPUT_1 = "00"
INPUT_2 = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

# RFC 9497 Appendix A.1.1: OPRF(ristretto255, SHA-512), mode 0x00.
OPRF_SK = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
OPRF_VECTORS: list[dict[str, str]] = [
    {
        "input": INPUT_1,
        "blind": BLIND_1,
        "blinded": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "evaluated": "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "output": "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
        "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
    },
    {
        "input": INPUT_2,
        "blind": BLIND_1,
        "blinded": "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "evaluated": "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "output": "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
        "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
    },
]

# RFC 9497 Appendix A.1.2: VOPRF(ristretto255, SHA-512), mode 0x01.
VOPRF_SK = "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909"
VOPRF_PK = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
VOPRF_OUTPUT_1 = (
    "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
    "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
)
VOPRF_OUTPUT_2 = (
    "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
    "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
)
# Each vector: inputs, blinds, blinded, evaluated, outputs (lists: batch size), proof, r.
VOPRF_VECTORS: list[dict[str, Any]] = [
    {
        "inputs": [INPUT_1],
        "blinds": [BLIND_1],
        "blinded": ["863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945"],
        "evaluated": ["aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e"],
        "outputs": [VOPRF_OUTPUT_1],
        "proof": "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06"
        "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
        "r": BLIND_2,
    },
    {
        "inputs": [INPUT_2],
        "blinds": [BLIND_1],
        "blinded": ["cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c"],
        "evaluated": ["60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468"],
        "outputs": [VOPRF_OUTPUT_2],
        "proof": "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a"
        "67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
        "r": BLIND_2,
    },
    {
        "inputs": [INPUT_1, INPUT_2],
        "blinds": [BLIND_1, BLIND_2],
        "blinded": [
            "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
            "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654",
        ],
        "evaluated": [
            "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
            "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a",
        ],
        "outputs": [VOPRF_OUTPUT_1, VOPRF_OUTPUT_2],
        "proof": "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a"
        "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08",
        "r": "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c",
    },
]

# RFC 9380 Appendix K.3: expand_message_xmd(SHA-512), DST below; (msg, len, uniform_bytes).
XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_VECTORS: list[tuple[bytes, int, str]] = [
    (b"", 0x20, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 0x20, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (
        b"abcdef0123456789",
        0x20,
        "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
    ),
    (
        b"q128_" + b"q" * 128,
        0x20,
        "7336234ee9983902440f6bc35b348352013becd88938d2afec44311caf8356b3",
    ),
    (
        b"a512_" + b"a" * 512,
        0x20,
        "57b5f7e766d5be68a6bfe1768e3c2b7f1228b3e4b3134956dd73a59b954c66f4",
    ),
    (
        b"",
        0x80,
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
        "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
        "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    ),
    (
        b"abc",
        0x80,
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
    (
        b"abcdef0123456789",
        0x80,
        "3f721f208e6199fe903545abc26c837ce59ac6fa45733f1baaf0222f8b7acb04"
        "24814fcb5eecf6c1d38f06e9d0a6ccfbf85ae612ab8735dfdf9ce84c372a77c8"
        "f9e1c1e952c3a61b7567dd0693016af51d2745822663d0c2367e3f4f0bed827f"
        "eecc2aaf98c949b5ed0d35c3f1023d64ad1407924288d366ea159f46287e61ac",
    ),
    (
        b"q128_" + b"q" * 128,
        0x80,
        "b799b045a58c8d2b4334cf54b78260b45eec544f9f2fb5bd12fb603eaee70db7"
        "317bf807c406e26373922b7b8920fa29142703dd52bdf280084fb7ef69da78af"
        "df80b3586395b433dc66cde048a258e476a561e9deba7060af40adf30c64249c"
        "a7ddea79806ee5beb9a1422949471d267b21bc88e688e4014087a0b592b695ed",
    ),
    (
        b"a512_" + b"a" * 512,
        0x80,
        "05b0bfef265dcee87654372777b7c44177e2ae4c13a27f103340d9cd11c86cb2"
        "426ffcad5bd964080c2aee97f03be1ca18e30a1f14e27bc11ebbd650f305269c"
        "c9fb1db08bf90bfc79b42a952b46daf810359e7bc36452684784a64952c343c5"
        "2e5124cd1f71d474d5197fefc571a92929c9084ffe1112cf5eea5192ebff330b",
    ),
]

FIELD_PRIME = 2**255 - 19
L = oprf.GROUP_ORDER


def h(values: list[str]) -> list[bytes]:
    """Hex strings of a vector to bytes."""
    return [bytes.fromhex(v) for v in values]


# --- RFC 9380 K.3 ------------------------------------------------------------------


@pytest.mark.parametrize(("msg", "length", "expected"), XMD_VECTORS)
def test_expand_message_xmd_sha512_rfc9380_k3(msg: bytes, length: int, expected: str) -> None:
    assert oprf.expand_message_xmd(msg, XMD_DST, length).hex() == expected


def test_expand_message_xmd_hashes_an_oversize_dst() -> None:
    long_dst = b"x" * 256
    short = hashlib.sha512(b"H2C-OVERSIZE-DST-" + long_dst).digest()
    assert oprf.expand_message_xmd(b"m", long_dst, 64) == oprf.expand_message_xmd(b"m", short, 64)


@pytest.mark.parametrize("length", [0, 255 * 64 + 1])
def test_expand_message_xmd_refuses_impossible_lengths(length: int) -> None:
    with pytest.raises(ValueError, match="len_in_bytes"):
        oprf.expand_message_xmd(b"", XMD_DST, length)


# --- RFC 9497 A.1.1 (OPRF) ---------------------------------------------------------


def test_context_strings_and_group_dst() -> None:
    assert oprf.context_string(oprf.MODE_OPRF) == b"OPRFV1-\x00-ristretto255-SHA512"
    assert oprf.context_string(oprf.MODE_VOPRF) == b"OPRFV1-\x01-ristretto255-SHA512"
    with pytest.raises(oprf.OprfError, match="mode"):
        oprf.context_string(2)


def test_oprf_derive_key_pair_rfc9497_a11() -> None:
    sk, pk = oprf.derive_key_pair(SEED, KEY_INFO, oprf.MODE_OPRF)
    assert sk.hex() == OPRF_SK
    assert pk == oprf.public_key(sk)


@pytest.mark.parametrize("vector", OPRF_VECTORS, ids=["vector1", "vector2"])
def test_oprf_rfc9497_a11(vector: dict[str, str]) -> None:
    sk = bytes.fromhex(OPRF_SK)
    data = bytes.fromhex(vector["input"])
    r, blinded = oprf.blind(data, bytes.fromhex(vector["blind"]), oprf.MODE_OPRF)
    assert r.hex() == vector["blind"]
    assert blinded.hex() == vector["blinded"]
    evaluated = oprf.blind_evaluate(sk, blinded)
    assert evaluated.hex() == vector["evaluated"]
    output = oprf.finalize(data, r, evaluated)
    assert output.hex() == vector["output"]
    assert len(output) == oprf.OUTPUT_BYTES
    assert oprf.evaluate(sk, data, oprf.MODE_OPRF) == output


# --- RFC 9497 A.1.2 (VOPRF) --------------------------------------------------------


def test_voprf_derive_key_pair_rfc9497_a12() -> None:
    sk, pk = oprf.derive_key_pair(SEED, KEY_INFO, oprf.MODE_VOPRF)
    assert sk.hex() == VOPRF_SK
    assert pk.hex() == VOPRF_PK


@pytest.mark.parametrize(
    "vector", VOPRF_VECTORS, ids=["vector1-batch1", "vector2-batch1", "vector3-batch2"]
)
def test_voprf_rfc9497_a12(vector: dict[str, Any]) -> None:
    sk, pk = bytes.fromhex(VOPRF_SK), bytes.fromhex(VOPRF_PK)
    inputs, blinds = h(vector["inputs"]), h(vector["blinds"])
    blinded = [oprf.blind(x, r, oprf.MODE_VOPRF)[1] for x, r in zip(inputs, blinds, strict=True)]
    assert [b.hex() for b in blinded] == vector["blinded"]
    evaluated, proof = oprf.verifiable_blind_evaluate_batch(
        sk, pk, blinded, bytes.fromhex(vector["r"])
    )
    assert [e.hex() for e in evaluated] == vector["evaluated"]
    assert proof.hex() == vector["proof"]
    outputs = oprf.verifiable_finalize_batch(inputs, blinds, evaluated, blinded, pk, proof)
    assert [o.hex() for o in outputs] == vector["outputs"]
    assert [oprf.evaluate(sk, x, oprf.MODE_VOPRF) for x in inputs] == outputs
    if len(inputs) == 1:
        single, single_proof = oprf.verifiable_blind_evaluate(
            sk, pk, blinded[0], bytes.fromhex(vector["r"])
        )
        assert (single, single_proof) == (evaluated[0], proof)
        out = oprf.verifiable_finalize(inputs[0], blinds[0], single, blinded[0], pk, proof)
        assert out == outputs[0]


def test_voprf_random_nonce_proof_verifies_and_differs() -> None:
    sk, pk = bytes.fromhex(VOPRF_SK), bytes.fromhex(VOPRF_PK)
    _, blinded = oprf.blind(b"x", mode=oprf.MODE_VOPRF)
    e1, p1 = oprf.verifiable_blind_evaluate(sk, pk, blinded)
    e2, p2 = oprf.verifiable_blind_evaluate(sk, pk, blinded)
    assert e1 == e2 and p1 != p2
    generator = oprf.public_key((1).to_bytes(32, "little"))
    assert oprf.verify_proof(generator, pk, [blinded], [e1], p1)
    assert oprf.verify_proof(generator, pk, [blinded], [e2], p2)


# --- properties --------------------------------------------------------------------

scalars = st.integers(min_value=1, max_value=L - 1).map(lambda n: n.to_bytes(32, "little"))
seeds = st.binary(min_size=32, max_size=32)
inputs = st.binary(max_size=200)
modes = st.sampled_from([oprf.MODE_OPRF, oprf.MODE_VOPRF])


@settings(max_examples=40, deadline=None)
@given(seed=seeds, data=inputs, r=scalars, mode=modes)
def test_blinded_evaluation_equals_direct_evaluation(
    seed: bytes, data: bytes, r: bytes, mode: int
) -> None:
    sk, pk = oprf.derive_key_pair(seed, b"prop", mode)
    _, blinded = oprf.blind(data, r, mode)
    if mode == oprf.MODE_OPRF:
        output = oprf.finalize(data, r, oprf.blind_evaluate(sk, blinded))
    else:
        evaluated, proof = oprf.verifiable_blind_evaluate(sk, pk, blinded)
        output = oprf.verifiable_finalize(data, r, evaluated, blinded, pk, proof)
    assert output == oprf.evaluate(sk, data, mode)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, other=seeds, items=st.lists(inputs, min_size=1, max_size=4, unique=True))
def test_proof_with_another_key_fails(seed: bytes, other: bytes, items: list[bytes]) -> None:
    sk, pk = oprf.derive_key_pair(seed, b"k", oprf.MODE_VOPRF)
    sk_other, _ = oprf.derive_key_pair(other, b"other", oprf.MODE_VOPRF)
    blinds, blinded = zip(*(oprf.blind(x, mode=oprf.MODE_VOPRF) for x in items), strict=True)
    # A server evaluating under a key other than the committed one cannot prove it.
    evaluated, proof = oprf.verifiable_blind_evaluate_batch(sk_other, pk, list(blinded))
    with pytest.raises(oprf.VerifyError):
        oprf.verifiable_finalize_batch(items, list(blinds), evaluated, list(blinded), pk, proof)
    # Nor can an honest proof be moved onto one swapped-in wrong evaluation.
    honest, honest_proof = oprf.verifiable_blind_evaluate_batch(sk, pk, list(blinded))
    forged = [*honest[:-1], oprf.blind_evaluate(sk_other, blinded[-1])]
    assert not oprf.verify_proof(
        oprf.public_key((1).to_bytes(32, "little")), pk, list(blinded), forged, honest_proof
    )
    oprf.verifiable_finalize_batch(items, list(blinds), honest, list(blinded), pk, honest_proof)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, first=inputs, second=inputs)
def test_proof_over_another_element_fails(seed: bytes, first: bytes, second: bytes) -> None:
    sk, pk = oprf.derive_key_pair(seed, b"k", oprf.MODE_VOPRF)
    r1, b1 = oprf.blind(first, mode=oprf.MODE_VOPRF)
    _, b2 = oprf.blind(second, mode=oprf.MODE_VOPRF)
    e1, p1 = oprf.verifiable_blind_evaluate(sk, pk, b1)
    e2, _ = oprf.verifiable_blind_evaluate(sk, pk, b2)
    with pytest.raises(oprf.VerifyError):
        oprf.verifiable_finalize(first, r1, e1, b2, pk, p1)  # proof was over b1, not b2
    with pytest.raises(oprf.VerifyError):
        oprf.verifiable_finalize(first, r1, e2, b1, pk, p1)  # evaluation of another element


@settings(max_examples=30, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32))
def test_random_bytes_are_either_valid_elements_or_refused(raw: bytes) -> None:
    sk = bytes.fromhex(OPRF_SK)
    try:
        oprf.check_element(raw, "blinded_element")
    except oprf.InvalidElementError as err:
        assert "blinded_element" in str(err)
        with pytest.raises(oprf.InvalidElementError, match="blinded_element"):
            oprf.blind_evaluate(sk, raw)
    else:
        assert len(oprf.blind_evaluate(sk, raw)) == 32


@settings(max_examples=30, deadline=None)
@given(r=scalars)
def test_non_canonical_encodings_of_valid_elements_are_refused(r: bytes) -> None:
    element = oprf.public_key(r)
    value = int.from_bytes(element, "little")
    # The same field element plus p (still < 2^256), and its negation (odd, "negative").
    shifted = (value + FIELD_PRIME).to_bytes(32, "little")
    negated = ((FIELD_PRIME - value) % FIELD_PRIME).to_bytes(32, "little")
    for bad in (shifted, negated):
        with pytest.raises(oprf.InvalidElementError, match="evaluated_element"):
            oprf.finalize(b"x", r, bad)


@settings(max_examples=30, deadline=None)
@given(n=st.one_of(st.just(0), st.integers(min_value=L, max_value=2**256 - 1)))
def test_zero_and_unreduced_scalars_are_refused(n: int) -> None:
    bad = n.to_bytes(32, "little")
    _, element = oprf.blind(b"x", mode=oprf.MODE_OPRF)
    with pytest.raises(oprf.InvalidScalarError, match="sk"):
        oprf.blind_evaluate(bad, element)
    with pytest.raises(oprf.InvalidScalarError, match="blind"):
        oprf.blind(b"x", bad)
    with pytest.raises(oprf.InvalidScalarError, match="blind"):
        oprf.finalize(b"x", bad, element)
    with pytest.raises(oprf.InvalidScalarError, match="sk"):
        oprf.evaluate(bad, b"x")


def test_identity_and_wrong_lengths_are_refused() -> None:
    sk = bytes.fromhex(OPRF_SK)
    r = bytes.fromhex(BLIND_1)
    with pytest.raises(oprf.InvalidElementError, match="blinded_element is the identity"):
        oprf.blind_evaluate(sk, bytes(32))
    with pytest.raises(oprf.InvalidElementError, match="evaluated_element must be 32 bytes"):
        oprf.finalize(b"x", r, bytes(31))
    with pytest.raises(oprf.InvalidScalarError, match="sk must be 32 bytes"):
        oprf.blind_evaluate(sk[:31], oprf.blind(b"x")[1])
    with pytest.raises(oprf.InvalidElementError, match="pk is the identity"):
        oprf.verifiable_blind_evaluate(bytes.fromhex(VOPRF_SK), bytes(32), oprf.blind(b"x")[1])
    assert issubclass(oprf.InvalidElementError, ValueError)
    assert issubclass(oprf.InvalidScalarError, ValueError)


def test_malformed_proofs_are_refused() -> None:
    sk, pk = bytes.fromhex(VOPRF_SK), bytes.fromhex(VOPRF_PK)
    r, blinded = oprf.blind(b"x", mode=oprf.MODE_VOPRF)
    evaluated, proof = oprf.verifiable_blind_evaluate(sk, pk, blinded)
    with pytest.raises(oprf.InvalidScalarError, match="proof must be 64 bytes"):
        oprf.verifiable_finalize(b"x", r, evaluated, blinded, pk, proof[:63])
    unreduced = proof[:32] + (L + 1).to_bytes(32, "little")
    with pytest.raises(oprf.InvalidScalarError, match=r"proof\.s is not reduced"):
        oprf.verifiable_finalize(b"x", r, evaluated, blinded, pk, unreduced)
    with pytest.raises(oprf.VerifyError):
        oprf.verifiable_finalize(b"x", r, evaluated, blinded, pk, bytes(64))
    with pytest.raises(oprf.OprfError, match="equal length"):
        oprf.verifiable_finalize_batch([b"x"], [r], [evaluated], [blinded, blinded], pk, proof)


def test_input_mapping_to_identity_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9497 Blind/Evaluate: InvalidInputError if HashToGroup(input) is the identity.

    No input is known to map there, so the map is replaced for this test.
    """
    monkeypatch.setattr(oprf, "hash_to_group", lambda msg, mode=0: bytes(32))
    with pytest.raises(oprf.InvalidInputError, match="identity"):
        oprf.blind(b"x", bytes.fromhex(BLIND_1))
    with pytest.raises(oprf.InvalidInputError, match="identity"):
        oprf.evaluate(bytes.fromhex(OPRF_SK), b"x")


def test_oversize_input_is_refused() -> None:
    with pytest.raises(oprf.InvalidInputError, match="input"):
        oprf.blind(b"x" * 65536)


def test_curve_ops_bench_reports_every_operation() -> None:
    """scripts/bench/curve_ops.py (the PSI bench's per-operation baseline) runs and reports."""
    from scripts.bench import curve_ops

    report = curve_ops.measure(rounds=2, batch=2)
    assert set(report["operations"]) == {
        "ristretto255_scalarmult",
        "ristretto255_scalarmult_base",
        "x25519_exchange",
        "p256_ecdh",
        "oprf_evaluate",
    }
    assert all(op["median_us"] > 0 for op in report["operations"].values())


def test_rbcl_library_copy_is_removed_after_loading() -> None:
    """rbcl writes libsodium to a temp file per process; importing oprf deletes it."""
    path = sys.modules["rbcl._sodium"].lib_path
    assert isinstance(path, str) and not os.path.exists(path)
    assert len(oprf.random_scalar()) == 32  # the library stays loaded
