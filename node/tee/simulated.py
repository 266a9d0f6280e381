"""The ``simulated`` attestation backend: a software enclave, labelled as such everywhere.

What it does: generates the enclave's X25519 (input) and Ed25519 (result) keys inside
the enclave object, measures the code it loads (this runtime's sources and the
algorithm package digest of ``node.algorithms.package.package_of``), and has a
"platform key" sign each report, standing in for the hardware's attestation key.

What it does NOT prove: anything about isolation. The host process holds the platform
key, the enclave keys and the plaintext inputs in its own memory, so the host (and
anyone who controls it) can read inputs, forge reports for any measurement and sign any
result. It exercises the protocol (attest, verify, provision, run, sign, erase) end to
end so a hardware backend can replace it, and it lets a consortium run the flow where
a trusted operator is acceptable; a trust policy that must not accept it leaves
``simulated`` out of ``TrustPolicy.allowed_backends``. Every report says ``simulated``
in its backend, its serialized ``type`` and its evidence format.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.canonical import digest, digest_json
from node.algorithms.package import ALGORITHMS_DIR, AlgorithmPackage, package_of
from node.tee import provision, refusal, report
from node.tee.provision import DestructionReceipt, SealedInput, SignedResult
from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport, Evidence, ReportClaims

if TYPE_CHECKING:
    from node.tee.backend import Backend, Enclave, Verifier

__all__ = [
    "EVIDENCE_FORMAT",
    "SIMULATED",
    "SimulatedBackend",
    "SimulatedEnclave",
    "SimulatedVerifier",
    "simulated_measurement",
]

SIMULATED = "simulated"
EVIDENCE_FORMAT = "simulated-ed25519"
_EVIDENCE_LEN = 32 + 64  # platform public key || signature
_ROOT = ALGORITHMS_DIR.parent.parent
# The enclave runtime: the code that runs inside the simulated enclave besides the job.
_RUNTIME_SOURCES = (
    Path(str(report.__file__)),
    Path(str(provision.__file__)),
    Path(str(refusal.__file__)),
    Path(__file__),
)

Clock = Callable[[], int]


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def simulated_measurement(package: AlgorithmPackage) -> bytes:
    """The measurement of a simulated enclave running ``package``.

    Like MRENCLAVE it covers all the code inside the enclave: the runtime's source files
    (hashed the way ``package_of`` hashes an algorithm's sources) and the algorithm
    package digest, under this backend's name, so the same job measured by another
    backend never collides with it.
    """
    runtime = {
        p.resolve().relative_to(_ROOT).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in _RUNTIME_SOURCES
    }
    return digest_json(
        "tee-measurement",
        {"backend": SIMULATED, "runtime": runtime, "algorithm": package.digest.hex()},
    )


def _evidence_message(claims_digest: bytes) -> bytes:
    return digest("tee-simulated-evidence", claims_digest)


class SimulatedEnclave:
    """One job's software enclave; see the module docstring for what it does not prove."""

    backend = SIMULATED

    def __init__(
        self,
        platform_key: Ed25519PrivateKey,
        task_id: bytes,
        module: ModuleType,
        clock: Clock,
    ) -> None:
        if not isinstance(task_id, bytes) or len(task_id) != 32:
            raise ValueError("task_id must be exactly 32 bytes")
        compute = getattr(module, "compute", None)
        if not callable(compute):
            raise ValueError(f"algorithm module {module.__name__} has no compute(inputs) function")
        self._platform_key = platform_key
        self._task_id = task_id
        self._compute = cast("Callable[[Mapping[str, bytes]], bytes]", compute)
        self._clock = clock
        self._package = package_of(module)
        self._measurement = simulated_measurement(self._package)
        self._hpke_key: X25519PrivateKey | None = X25519PrivateKey.generate()
        self._signing_key: Ed25519PrivateKey | None = Ed25519PrivateKey.generate()
        self._issued: set[bytes] = set()
        self._inputs: dict[str, bytes] = {}
        self._input_digests: dict[str, bytes] = {}

    @property
    def measurement(self) -> bytes:
        return self._measurement

    @property
    def algorithm_digest(self) -> bytes:
        return self._package.digest

    def _keys(self) -> tuple[X25519PrivateKey, Ed25519PrivateKey]:
        if self._hpke_key is None or self._signing_key is None:
            raise RuntimeError("simulated enclave has been destroyed; launch a new one")
        return self._hpke_key, self._signing_key

    def attest(self, nonce: bytes) -> AttestationReport:
        hpke_key, signing_key = self._keys()
        claims = ReportClaims(
            backend=SIMULATED,
            measurement=self._measurement,
            algorithm_digest=self._package.digest,
            hpke_public_key=hpke_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            signing_public_key=_raw(signing_key.public_key()),
            nonce=nonce,
            issued_at=self._clock(),
        )
        self._issued.add(claims.digest)
        signature = self._platform_key.sign(_evidence_message(claims.digest))
        evidence = Evidence(EVIDENCE_FORMAT, _raw(self._platform_key.public_key()) + signature)
        return AttestationReport(claims, evidence)

    def provision(self, sealed: SealedInput) -> None:
        hpke_key, _ = self._keys()
        if sealed.task_id != self._task_id:
            raise Refused(Reason.MALFORMED, f"input is for task {sealed.task_id.hex()}")
        if sealed.report_digest not in self._issued:
            raise Refused(
                Reason.MALFORMED,
                f"input is sealed to report {sealed.report_digest.hex()}, "
                "which this enclave did not issue",
            )
        if sealed.owner in self._inputs:
            raise Refused(Reason.MALFORMED, f"owner {sealed.owner!r} already provisioned")
        plaintext = provision.open_input(hpke_key, self._task_id, sealed.report_digest, sealed)
        self._inputs[sealed.owner] = plaintext
        self._input_digests[sealed.owner] = sealed.digest

    def run(self) -> SignedResult:
        _, signing_key = self._keys()
        output = self._compute(dict(self._inputs))
        if not isinstance(output, bytes):
            raise TypeError(f"compute() must return bytes, got {type(output).__name__}")
        return provision.sign_result(
            signing_key,
            self._task_id,
            self._measurement,
            self._package.digest,
            tuple(self._input_digests.values()),
            output,
        )

    def destroy(self) -> DestructionReceipt:
        """Drop inputs and keys, then sign the receipt with the key's last use.

        Python cannot scrub memory: the objects become unreachable, nothing more. That is
        one more thing this backend does not prove (docs/tee.md).
        """
        _, signing_key = self._keys()
        erased = tuple(self._input_digests.values())
        self._inputs.clear()
        self._input_digests.clear()
        self._hpke_key = None
        self._signing_key = None
        return provision.sign_receipt(
            signing_key, self._task_id, self._measurement, erased, True, self._clock()
        )


class SimulatedBackend:
    """The host side: holds the simulated platform key and launches enclaves."""

    name = SIMULATED

    def __init__(
        self, platform_key: Ed25519PrivateKey | None = None, clock: Clock | None = None
    ) -> None:
        self._platform_key = platform_key or Ed25519PrivateKey.generate()
        self._clock: Clock = clock or (lambda: int(time.time()))

    @property
    def platform_public_key(self) -> bytes:
        """What verifiers must trust (``SimulatedVerifier``): the stand-in root of trust."""
        return _raw(self._platform_key.public_key())

    def launch(self, task_id: bytes, module: ModuleType) -> SimulatedEnclave:
        return SimulatedEnclave(self._platform_key, task_id, module, self._clock)


class SimulatedVerifier:
    """Checks a simulated report's platform signature against trusted platform keys."""

    backend = SIMULATED

    def __init__(self, trusted_platform_keys: frozenset[bytes]) -> None:
        self._trusted = trusted_platform_keys

    def check_evidence(self, report: AttestationReport) -> None:
        evidence = report.evidence
        if evidence.format != EVIDENCE_FORMAT or len(evidence.data) != _EVIDENCE_LEN:
            raise Refused(
                Reason.MALFORMED,
                f"simulated evidence must be {EVIDENCE_FORMAT!r} of {_EVIDENCE_LEN} bytes",
            )
        platform_key, signature = evidence.data[:32], evidence.data[32:]
        if platform_key not in self._trusted:
            raise Refused(
                Reason.BAD_SIGNATURE,
                f"report is signed by simulated platform key {platform_key.hex()}, "
                "which is not trusted",
            )
        try:
            Ed25519PublicKey.from_public_bytes(platform_key).verify(
                signature, _evidence_message(report.claims.digest)
            )
        except InvalidSignature as exc:
            raise Refused(
                Reason.BAD_SIGNATURE, "simulated platform signature does not verify over the claims"
            ) from exc


if TYPE_CHECKING:  # mypy proves the simulated classes satisfy the seam's protocols
    _backend: Backend = SimulatedBackend()
    _enclave: Enclave = _backend.launch(bytes(32), report)
    _verifier: Verifier = SimulatedVerifier(frozenset())
