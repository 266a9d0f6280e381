"""The attestation seam: what a backend must offer and what a verifier must check.

Callers (the node's job runner, data owners, the auditor) talk only to these protocols
and to ``verify.verify_report``, never to a concrete backend, so a hardware backend
(Intel SGX/TDX DCAP, AMD SEV-SNP...) slots in by providing a ``Backend`` on the host
and a ``Verifier`` on the checking side; nothing else changes. ``dcap.py`` parses a
real quote format behind the same ``Verifier`` to show the seam holds.
"""

from __future__ import annotations

from types import ModuleType
from typing import Protocol

from node.tee.provision import DestructionReceipt, SealedInput, SignedResult
from node.tee.report import AttestationReport

__all__ = ["Backend", "Enclave", "Verifier"]


class Enclave(Protocol):
    """One job's enclave instance: its keys live and die with it."""

    @property
    def backend(self) -> str: ...

    @property
    def measurement(self) -> bytes: ...

    def attest(self, nonce: bytes) -> AttestationReport:
        """A report binding this enclave's keys, code and the challenger's ``nonce``."""
        ...

    def provision(self, sealed: SealedInput) -> None:
        """Accept one owner's sealed input (opened inside, never handed back)."""
        ...

    def run(self) -> SignedResult:
        """Run the job on the provisioned inputs and sign the output."""
        ...

    def destroy(self) -> DestructionReceipt:
        """Erase inputs and keys; sign what was erased."""
        ...


class Backend(Protocol):
    """A way of running attested code: the host side of a TEE."""

    @property
    def name(self) -> str: ...

    def launch(self, task_id: bytes, module: ModuleType) -> Enclave:
        """Start an enclave for ``task_id`` running the algorithm ``module``.

        The module is an algorithm package (``node.algorithms.package.package_of``: NAME,
        VERSION, KIND, PARAMETER_SCHEMA) with ``compute(inputs: Mapping[str, bytes]) ->
        bytes`` taking each owner's plaintext by owner name. The backend measures the
        code it loads, so the measurement is of what runs, not of what the host says.
        """
        ...


class Verifier(Protocol):
    """Checks one backend's evidence: that the claims really come from that backend.

    Policy (which measurements, which algorithm, which nonce, how old) is *not* its
    job; ``verify.verify_report`` does that identically for every backend.
    """

    @property
    def backend(self) -> str: ...

    def check_evidence(self, report: AttestationReport) -> None:
        """Raise ``refusal.Refused`` unless the evidence authenticates ``report.claims``."""
        ...
