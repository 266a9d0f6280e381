"""RFC 9180 HPKE, as provided by ``cryptography``, against the RFC's Appendix A vectors.

The vectors fix the sender's ephemeral key, which ``cryptography``'s API does not let a
caller inject, so the sender side cannot be replayed byte for byte. What is checked is
the receiver side, which exercises the whole key schedule: with the RFC's recipient key
``skRm``, ``enc``, ``info`` and the first encryption's ``aad`` (sequence number 0, the
only one a single-shot context produces), the published ciphertext opens to the
published plaintext. Single-shot ``Suite.decrypt`` always uses an empty aad, so the
vectors (all with a non-empty aad) go through ``_decrypt_with_aad``, the same Rust
function ``Suite.decrypt`` calls with ``aad=None``; it is ``cryptography``'s own
test hook for these vectors.

Values transcribed from RFC 9180 Appendix A.1.1 (DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-128-GCM, Base Setup) and A.2.1 (same with ChaCha20Poly1305), as
published in the CFRG draft source github.com/cfrg/draft-irtf-cfrg-hpke
(draft-irtf-cfrg-hpke.md, "Test Vectors"). Data, not code.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from node.tee import provision

INFO = "4f6465206f6e2061204772656369616e2055726e"  # "Ode on a Grecian Urn"
PT = "4265617574792069732074727574682c20747275746820626561757479"
AAD_SEQ0 = "436f756e742d30"  # "Count-0"

# RFC 9180 A.1.1, Base Setup, encryption with sequence number 0.
A1 = {
    "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
    "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "ct": "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9"
    "6d8770ac83d07bea87e13c512a",
}
# RFC 9180 A.2.1, Base Setup, encryption with sequence number 0.
A2 = {
    "pkRm": "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
    "skRm": "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
    "enc": "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
    "ct": "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db"
    "21993c62ce81883d2dd1b51a28",
}
SUITES = {
    "A.1.1": (Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM), A1),
    "A.2.1": (Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305), A2),
}


def _open(suite: Suite, vector: dict[str, str], aad: bytes, ct: bytes | None = None) -> bytes:
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    sealed = bytes.fromhex(vector["enc"]) + (ct if ct is not None else bytes.fromhex(vector["ct"]))
    return rust_openssl.hpke._decrypt_with_aad(
        suite, sealed, key, info=bytes.fromhex(INFO), aad=aad
    )


@pytest.mark.parametrize("section", sorted(SUITES))
def test_recipient_key_matches_vector(section: str) -> None:
    _, vector = SUITES[section]
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public.hex() == vector["pkRm"]


@pytest.mark.parametrize("section", sorted(SUITES))
def test_vector_ciphertext_opens_to_vector_plaintext(section: str) -> None:
    suite, vector = SUITES[section]
    assert _open(suite, vector, bytes.fromhex(AAD_SEQ0)).hex() == PT


@pytest.mark.parametrize("section", sorted(SUITES))
def test_vector_refuses_other_aad_or_altered_ciphertext(section: str) -> None:
    suite, vector = SUITES[section]
    with pytest.raises(Exception):  # noqa: B017 - cryptography raises InvalidTag
        _open(suite, vector, b"Count-1")
    altered = bytearray(bytes.fromhex(vector["ct"]))
    altered[0] ^= 1
    with pytest.raises(Exception):  # noqa: B017
        _open(suite, vector, bytes.fromhex(AAD_SEQ0), bytes(altered))


def test_provisioning_suite_is_the_a1_suite() -> None:
    """The suite provision.py seals with opens A.1.1's ciphertext, and not A.2.1's."""
    assert _open(provision.SUITE, A1, bytes.fromhex(AAD_SEQ0)).hex() == PT
    with pytest.raises(Exception):  # noqa: B017
        _open(provision.SUITE, A2, bytes.fromhex(AAD_SEQ0))
