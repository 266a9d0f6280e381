"""Checking an attestation report against the consortium's expectations.

One check per function, each raising :class:`~node.tee.refusal.Refused` with the reason
it exists for, in the style of RFC 9162 / Trillian verifiers: a caller (or an auditor
replaying a refusal) can run any one check alone and gets the same named answer.
``verify_report`` runs them all in a fixed order; evidence is authenticated before any
claim is believed, and revocation is checked before "known" so a revoked measurement
that still sits in a stale trusted set is reported as revoked.

What to trust is passed in (``Expectation``): the trusted and revoked measurements and
the approved algorithm digest come from the chain in a later slice, so this module needs
no chain and stays pure: no clock reads, no I/O (``now`` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from node.tee.backend import Verifier
from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport, ReportClaims

__all__ = [
    "Expectation",
    "TrustPolicy",
    "check_algorithm_digest",
    "check_backend_allowed",
    "check_evidence",
    "check_fresh",
    "check_measurement_known",
    "check_measurement_not_revoked",
    "check_nonce",
    "verify_report",
]


@dataclass(frozen=True)
class TrustPolicy:
    """Which attestation backends are acceptable and how old a report may be.

    ``allowed_backends`` is the consortium's decision whether, say, ``simulated`` is good
    enough for a dataset; production policies will leave it out. ``max_age`` bounds how
    long an issued report may be used (seconds); ``max_skew`` tolerates clocks that run
    slightly ahead on the host.
    """

    allowed_backends: frozenset[str]
    max_age: int = 300
    max_skew: int = 30


@dataclass(frozen=True)
class Expectation:
    """What this verification expects: the trusted code, the approved job, our nonce."""

    trusted_measurements: frozenset[bytes]
    revoked_measurements: frozenset[bytes]
    algorithm_digest: bytes
    nonce: bytes


def check_backend_allowed(report: AttestationReport, policy: TrustPolicy) -> None:
    if report.backend not in policy.allowed_backends:
        allowed = ", ".join(sorted(policy.allowed_backends)) or "none"
        raise Refused(
            Reason.BACKEND_NOT_ALLOWED,
            f"backend {report.backend!r} is not allowed by the trust policy (allowed: {allowed})",
        )


def check_evidence(report: AttestationReport, verifiers: Mapping[str, Verifier]) -> None:
    verifier = verifiers.get(report.backend)
    if verifier is None or verifier.backend != report.backend:
        raise Refused(
            Reason.BACKEND_NOT_ALLOWED, f"no verifier is configured for backend {report.backend!r}"
        )
    verifier.check_evidence(report)


def check_nonce(claims: ReportClaims, nonce: bytes) -> None:
    """The report must answer *our* challenge; an old report carries an old nonce."""
    if claims.nonce != nonce:
        raise Refused(
            Reason.STALE_NONCE,
            f"report answers nonce {claims.nonce.hex()}, expected {nonce.hex()} "
            "(replayed or made for another verifier)",
        )


def check_fresh(claims: ReportClaims, policy: TrustPolicy, now: int) -> None:
    if claims.issued_at > now + policy.max_skew:
        raise Refused(
            Reason.REPORT_EXPIRED,
            f"report issued at {claims.issued_at}, {claims.issued_at - now}s in the future",
        )
    if now - claims.issued_at > policy.max_age:
        raise Refused(
            Reason.REPORT_EXPIRED,
            f"report issued at {claims.issued_at} is {now - claims.issued_at}s old, "
            f"policy allows {policy.max_age}s",
        )


def check_measurement_not_revoked(claims: ReportClaims, revoked: frozenset[bytes]) -> None:
    if claims.measurement in revoked:
        raise Refused(
            Reason.REVOKED_MEASUREMENT, f"measurement {claims.measurement.hex()} has been revoked"
        )


def check_measurement_known(claims: ReportClaims, trusted: frozenset[bytes]) -> None:
    if claims.measurement not in trusted:
        raise Refused(
            Reason.UNKNOWN_MEASUREMENT,
            f"measurement {claims.measurement.hex()} is not in the trusted set",
        )


def check_algorithm_digest(claims: ReportClaims, approved: bytes) -> None:
    if claims.algorithm_digest != approved:
        raise Refused(
            Reason.DIGEST_MISMATCH,
            f"enclave runs algorithm {claims.algorithm_digest.hex()}, "
            f"the task approved {approved.hex()}",
        )


def verify_report(
    report: AttestationReport,
    *,
    expectation: Expectation,
    policy: TrustPolicy,
    verifiers: Mapping[str, Verifier],
    now: int,
) -> ReportClaims:
    """All checks in order; returns the claims, now safe to provision against."""
    check_backend_allowed(report, policy)
    check_evidence(report, verifiers)
    claims = report.claims
    check_nonce(claims, expectation.nonce)
    check_fresh(claims, policy, now)
    check_measurement_not_revoked(claims, expectation.revoked_measurements)
    check_measurement_known(claims, expectation.trusted_measurements)
    check_algorithm_digest(claims, expectation.algorithm_digest)
    return claims
