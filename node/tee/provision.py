"""Provisioning inputs to an attested enclave, and its signed results and receipts.

Sealing uses RFC 9180 HPKE in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
and AES-128-GCM, from ``cryptography`` (OpenSSL's implementation, tested against the
RFC's vectors in tests/node/tee/test_hpke_vectors.py). Base mode is enough: the
recipient is authenticated by the attestation report, and the sender's identity is
carried by the signed task, not by the ciphertext.

HPKE ``info`` binds the task id, the digest of the report the data owner verified and
the owner's identity. A ciphertext therefore opens only in the enclave instance that
made that report, only for that task, and only as that owner's input: it cannot be
replayed into another job, into a re-launched enclave, or presented as another
owner's rows. The enclave recomputes ``info`` from what *it* knows (its task, its own
issued reports), never from the sender's say-so.

Results and destruction receipts are signed with the enclave's attested Ed25519 key
(deterministic signatures: no per-signature randomness an enclave could get wrong),
over domain-separated canonical digests, so a receipt can never verify as a result.
Inputs are named by the digest of their *ciphertext*: the plaintext is rows an outsider
may guess (DESIGN §4), the HPKE ciphertext is randomised and reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from ledger.canonical import digest, digest_json
from node.tee.refusal import Reason, Refused
from node.tee.report import ReportClaims

__all__ = [
    "SUITE",
    "DestructionReceipt",
    "ResultStatement",
    "SealedInput",
    "SignedResult",
    "input_info",
    "open_input",
    "open_output",
    "output_digest",
    "result_statement_digest",
    "seal_input",
    "seal_output",
    "sign_receipt",
    "sign_result",
    "verify_receipt",
    "verify_result",
    "verify_statement",
]

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)


def _check32(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{name} must be exactly 32 bytes")


def input_info(task_id: bytes, report_digest: bytes, owner: str) -> bytes:
    """The HPKE ``info`` for one owner's input to one task at one attested enclave."""
    _check32("task_id", task_id)
    _check32("report_digest", report_digest)
    if not owner:
        raise ValueError("owner must be non-empty")
    return digest_json(
        "tee-input-info",
        {"task": task_id.hex(), "report": report_digest.hex(), "owner": owner},
    )


def seal_output(recipient_key: bytes, context: bytes, output: bytes) -> bytes:
    """Inside the enclave: encrypt the output to the result's recipient (a task's
    grantee), so the host that relays and stores it never holds it in plaintext.
    ``context`` (the HPKE ``info``) names what the output answers; the enclave's
    signature over the sealed bytes binds them to the task."""
    if len(recipient_key) != 32:
        raise ValueError("the result recipient's key must be a 32-byte X25519 public key")
    return SUITE.encrypt(output, X25519PublicKey.from_public_bytes(recipient_key), info=context)


def open_output(private_key: X25519PrivateKey, context: bytes, sealed: bytes) -> bytes:
    """The recipient's side of ``seal_output``; ValueError if it does not open."""
    try:
        return SUITE.decrypt(sealed, private_key, info=context)
    except Exception as exc:  # cryptography raises InvalidTag or ValueError
        raise ValueError(
            "the sealed result does not open with this key (another recipient, another "
            "task's parameters, or altered)"
        ) from exc


@dataclass(frozen=True)
class SealedInput:
    """One owner's input, encrypted to an attested enclave (``enc || ciphertext``)."""

    task_id: bytes
    report_digest: bytes
    owner: str
    ciphertext: bytes

    @property
    def digest(self) -> bytes:
        """Names the input in results and receipts without revealing guessable rows."""
        return digest("tee-sealed-input", self.ciphertext)


def seal_input(claims: ReportClaims, task_id: bytes, owner: str, plaintext: bytes) -> SealedInput:
    """Encrypt ``plaintext`` to the enclave of an already *verified* report.

    Callers must have passed the report through ``verify.verify_report`` first: this
    function trusts the key it is given, which is the whole point of attesting it.
    """
    key = X25519PublicKey.from_public_bytes(claims.hpke_public_key)
    info = input_info(task_id, claims.digest, owner)
    return SealedInput(task_id, claims.digest, owner, SUITE.encrypt(plaintext, key, info=info))


def open_input(
    private_key: X25519PrivateKey, task_id: bytes, report_digest: bytes, sealed: SealedInput
) -> bytes:
    """Decrypt inside the enclave; ``task_id`` and ``report_digest`` are the enclave's own.

    Raises :class:`Refused` (``MALFORMED``) when the ciphertext was sealed for another
    task, another report or another owner than it claims, or was altered.
    """
    info = input_info(task_id, report_digest, sealed.owner)
    try:
        return SUITE.decrypt(sealed.ciphertext, private_key, info=info)
    except Exception as exc:  # cryptography raises InvalidTag or ValueError
        raise Refused(
            Reason.MALFORMED,
            f"input from {sealed.owner!r} does not open for task {task_id.hex()} at report "
            f"{report_digest.hex()}: sealed for another job, report or owner, or altered",
        ) from exc


def output_digest(output: bytes) -> bytes:
    """Names an enclave output without revealing it: what owners and auditors see."""
    return digest("tee-output", output)


def result_statement_digest(
    task_id: bytes,
    measurement: bytes,
    algorithm_digest: bytes,
    input_digests: tuple[bytes, ...],
    output_hash: bytes,
) -> bytes:
    """What the enclave signs for a result: everything but the output, which it names
    by digest, so the signature can be checked by parties that must not see the output."""
    return digest_json(
        "tee-result",
        {
            "task": task_id.hex(),
            "measurement": measurement.hex(),
            "algorithmDigest": algorithm_digest.hex(),
            "inputs": sorted(d.hex() for d in input_digests),
            "output": output_hash.hex(),
        },
    )


@dataclass(frozen=True)
class ResultStatement:
    """A signed result without its output: what the host shows the data owners and the
    auditor, who check the enclave's signature but are not the result's recipients."""

    task_id: bytes
    measurement: bytes
    algorithm_digest: bytes
    input_digests: tuple[bytes, ...]
    output_digest: bytes
    signature: bytes

    @property
    def statement_digest(self) -> bytes:
        return result_statement_digest(
            self.task_id,
            self.measurement,
            self.algorithm_digest,
            self.input_digests,
            self.output_digest,
        )


@dataclass(frozen=True)
class SignedResult:
    """The enclave's output and its signature over what produced it."""

    task_id: bytes
    measurement: bytes
    algorithm_digest: bytes
    input_digests: tuple[bytes, ...]
    output: bytes
    signature: bytes

    @property
    def statement_digest(self) -> bytes:
        return self.statement().statement_digest

    def statement(self) -> ResultStatement:
        """This result with the output replaced by its digest."""
        return ResultStatement(
            self.task_id,
            self.measurement,
            self.algorithm_digest,
            self.input_digests,
            output_digest(self.output),
            self.signature,
        )


@dataclass(frozen=True)
class DestructionReceipt:
    """The enclave's signed word that it erased these inputs (and its keys) at this time.

    A software enclave can only promise this; the signature makes the promise
    attributable to the attested code, which is what an auditor can hold it to.
    """

    task_id: bytes
    measurement: bytes
    erased_input_digests: tuple[bytes, ...]
    keys_erased: bool
    erased_at: int
    signature: bytes

    @property
    def statement_digest(self) -> bytes:
        return digest_json(
            "tee-destruction-receipt",
            {
                "task": self.task_id.hex(),
                "measurement": self.measurement.hex(),
                "erasedInputs": sorted(d.hex() for d in self.erased_input_digests),
                "keysErased": self.keys_erased,
                "erasedAt": self.erased_at,
            },
        )


def sign_result(
    key: Ed25519PrivateKey,
    task_id: bytes,
    measurement: bytes,
    algorithm_digest: bytes,
    inputs: tuple[bytes, ...],
    output: bytes,
) -> SignedResult:
    """Inside the enclave: sign the output with the attested key."""
    unsigned = SignedResult(task_id, measurement, algorithm_digest, inputs, output, b"")
    return _with_signature(unsigned, key.sign(unsigned.statement_digest))


def _with_signature(result: SignedResult, signature: bytes) -> SignedResult:
    return SignedResult(
        result.task_id,
        result.measurement,
        result.algorithm_digest,
        result.input_digests,
        result.output,
        signature,
    )


def sign_receipt(
    key: Ed25519PrivateKey,
    task_id: bytes,
    measurement: bytes,
    erased: tuple[bytes, ...],
    keys_erased: bool,
    erased_at: int,
) -> DestructionReceipt:
    """Inside the enclave, last use of the key: sign what was erased."""
    unsigned = DestructionReceipt(task_id, measurement, erased, keys_erased, erased_at, b"")
    signature = key.sign(unsigned.statement_digest)
    return DestructionReceipt(task_id, measurement, erased, keys_erased, erased_at, signature)


def _verify_signature(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise Refused(
            Reason.BAD_SIGNATURE, f"{what} signature does not verify under the attested key"
        ) from exc


def _check_binding(
    claims: ReportClaims, task_id: bytes, got_task: bytes, got_measurement: bytes
) -> None:
    if got_task != task_id:
        raise Refused(
            Reason.MALFORMED, f"signed for task {got_task.hex()}, expected {task_id.hex()}"
        )
    if got_measurement != claims.measurement:
        raise Refused(
            Reason.MALFORMED,
            f"signed by measurement {got_measurement.hex()}, attested {claims.measurement.hex()}",
        )


def verify_result(claims: ReportClaims, task_id: bytes, result: SignedResult) -> None:
    """Accept ``result`` only if the attested enclave of ``claims`` signed it for this task.

    ``claims`` must come from a verified report (any of the enclave's reports: they all
    carry the same keys). Also checks the result names the same measurement and
    algorithm as the report, so a result cannot be relabelled.
    """
    verify_statement(claims, task_id, result.statement())


def verify_statement(claims: ReportClaims, task_id: bytes, statement: ResultStatement) -> None:
    """``verify_result`` for a party that holds the statement but not the output."""
    _check_binding(claims, task_id, statement.task_id, statement.measurement)
    if statement.algorithm_digest != claims.algorithm_digest:
        raise Refused(
            Reason.DIGEST_MISMATCH,
            f"result names algorithm {statement.algorithm_digest.hex()}, attested "
            f"{claims.algorithm_digest.hex()}",
        )
    key = claims.signing_public_key
    _verify_signature(key, statement.signature, statement.statement_digest, "result")


def verify_receipt(claims: ReportClaims, task_id: bytes, receipt: DestructionReceipt) -> None:
    """Accept ``receipt`` only if the attested enclave of ``claims`` signed it for this task."""
    _check_binding(claims, task_id, receipt.task_id, receipt.measurement)
    key = claims.signing_public_key
    _verify_signature(key, receipt.signature, receipt.statement_digest, "destruction receipt")
