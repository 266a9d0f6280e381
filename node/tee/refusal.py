"""Named refusal reasons for attested jobs.

A data owner that declines to provision an enclave must say why, in a form the chain
can record and an auditor can count (DESIGN §3: every refusal is recorded with a reason
code). A free-text message alone cannot be aggregated or compared across nodes, so each
refusal carries one of a fixed set of reasons plus a human-readable detail.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason", "Refused"]


class Reason(StrEnum):
    """Why an attestation, a result or a receipt was not accepted.

    The values are stable identifiers (they will become on-chain reason codes); never
    rename one, add a new one instead.
    """

    UNKNOWN_MEASUREMENT = "UNKNOWN_MEASUREMENT"
    """The enclave's measured code is not in the consortium's trusted set."""
    REVOKED_MEASUREMENT = "REVOKED_MEASUREMENT"
    """The measured code was trusted once and has since been revoked."""
    STALE_NONCE = "STALE_NONCE"
    """The report answers another challenge than ours: a replayed or mismatched nonce."""
    REPORT_EXPIRED = "REPORT_EXPIRED"
    """The report is older than the policy allows, or claims to come from the future."""
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    """The enclave runs another algorithm than the one the task approved."""
    BACKEND_NOT_ALLOWED = "BACKEND_NOT_ALLOWED"
    """The attestation backend is not allowed by the trust policy (or has no verifier)."""
    BAD_SIGNATURE = "BAD_SIGNATURE"
    """A report, result or receipt signature does not verify under the expected key."""
    UNVERIFIABLE_EVIDENCE = "UNVERIFIABLE_EVIDENCE"
    """The evidence format is recognised but its signature chain cannot be checked here."""
    MALFORMED = "MALFORMED"
    """A report, result or receipt is not well-formed (wrong lengths, wrong task...)."""


class Refused(Exception):
    """An attested-job check failed; ``reason`` is what gets recorded, ``detail`` explains."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")
