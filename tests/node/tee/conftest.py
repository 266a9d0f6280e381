"""A simulated consortium view for the TEE tests: a platform, trusted measurements, a policy.

The clock is fixed so freshness checks are deterministic; the trusted set holds the
measurements of both test jobs, as a registry that approved both would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from node.algorithms.package import package_of
from node.tee.simulated import SIMULATED, SimulatedBackend, SimulatedVerifier
from node.tee.simulated import simulated_measurement as measure
from node.tee.verify import Expectation, TrustPolicy
from tests.node.tee import max_job, sum_job

NOW = 1_800_000_000


@dataclass
class Setup:
    backend: SimulatedBackend
    verifier: SimulatedVerifier
    policy: TrustPolicy
    task_id: bytes
    trusted: frozenset[bytes]
    approved: bytes

    def expect(self, nonce: bytes, revoked: frozenset[bytes] = frozenset()) -> Expectation:
        return Expectation(
            trusted_measurements=self.trusted,
            revoked_measurements=revoked,
            algorithm_digest=self.approved,
            nonce=nonce,
        )


@pytest.fixture
def setup() -> Setup:
    backend = SimulatedBackend(clock=lambda: NOW)
    return Setup(
        backend=backend,
        verifier=SimulatedVerifier(frozenset({backend.platform_public_key})),
        policy=TrustPolicy(allowed_backends=frozenset({SIMULATED}), max_age=300),
        task_id=os.urandom(32),
        # Fixed before any test tampers with a module: what the consortium voted for.
        trusted=frozenset({measure(package_of(sum_job)), measure(package_of(max_job))}),
        approved=package_of(sum_job).digest,
    )
