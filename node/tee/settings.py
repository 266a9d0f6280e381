"""A node's attested-job settings (node.json ``tee``): what it hosts, what it trusts.

Two roles, set independently:

* **host** (``"backend": "simulated"``): a COMPUTE node that runs ``tee-join`` enclaves.
  The simulated backend's platform key, the stand-in for a CPU's attestation key, is
  derived from the node's account key (HKDF-SHA256, its own ``info``), so it survives
  restarts without another secret file and is shown by ``provnet node tee-key``.
* **data owner** (``"allowed_backends"``, ``"simulated_platform_keys"``): which
  backends this node's owners accept at all (none by default: an owner opts in), and,
  for ``simulated``, which hosts' platform keys it believes. A production consortium
  leaves ``simulated`` out; the setting is per node because it is the data owner's
  risk to take.

Example::

    "tee": {"backend": "simulated",
            "allowed_backends": ["simulated"],
            "simulated_platform_keys": ["<64 hex digits from `provnet node tee-key`>"],
            "max_report_age": 300}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.ids import InvalidInput
from node.tee.backend import Backend, Verifier
from node.tee.simulated import SIMULATED, SimulatedBackend, SimulatedVerifier
from node.tee.verify import TrustPolicy

__all__ = ["TeeSettings", "TeeTrust", "simulated_platform_key"]

HOST_BACKENDS = (SIMULATED,)
_KEYS = {"backend", "allowed_backends", "simulated_platform_keys", "max_report_age"}
_PLATFORM_INFO = b"provnet/tee/simulated-platform-key/v1"


def simulated_platform_key(account_key: bytes) -> Ed25519PrivateKey:
    """This host's simulated platform key, derived from its node account key."""
    seed = HKDF(hashes.SHA256(), 32, salt=None, info=_PLATFORM_INFO).derive(account_key)
    return Ed25519PrivateKey.from_private_bytes(seed)


@dataclass(frozen=True)
class TeeTrust:
    """A data owner's side: the policy and the evidence verifiers per backend."""

    policy: TrustPolicy
    verifiers: Mapping[str, Verifier]


@dataclass(frozen=True)
class TeeSettings:
    backend: str | None = None
    allowed_backends: tuple[str, ...] = ()
    simulated_platform_keys: tuple[bytes, ...] = ()
    max_report_age: int = 300

    @classmethod
    def from_json(cls, raw: object, field: str) -> TeeSettings:
        if not isinstance(raw, dict) or not set(raw) <= _KEYS:
            raise InvalidInput(field, f"expected an object with keys among {sorted(_KEYS)}")
        backend = raw.get("backend")
        if backend is not None and backend not in HOST_BACKENDS:
            raise InvalidInput(
                f"{field}.backend",
                f"expected one of {list(HOST_BACKENDS)} or null, got {backend!r}",
            )
        allowed = raw.get("allowed_backends", [])
        if not isinstance(allowed, list) or not all(isinstance(b, str) and b for b in allowed):
            raise InvalidInput(f"{field}.allowed_backends", "expected a list of backend names")
        keys: list[bytes] = []
        for i, key in enumerate(raw.get("simulated_platform_keys", [])):
            try:
                value = bytes.fromhex(key) if isinstance(key, str) else b""
            except ValueError:
                value = b""
            if len(value) != 32:
                raise InvalidInput(
                    f"{field}.simulated_platform_keys[{i}]",
                    "expected 64 hex digits (a host's `provnet node tee-key` output)",
                )
            keys.append(value)
        if SIMULATED in allowed and not keys:
            raise InvalidInput(
                f"{field}.simulated_platform_keys",
                "allowing the simulated backend needs the hosts' platform keys "
                "(`provnet node tee-key --config HOST.json` on each host)",
            )
        age = raw.get("max_report_age", 300)
        if isinstance(age, bool) or not isinstance(age, int) or not 10 <= age <= 86_400:
            raise InvalidInput(f"{field}.max_report_age", f"expected 10..86400 s, got {age!r}")
        return cls(backend, tuple(allowed), tuple(keys), age)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "allowed_backends": list(self.allowed_backends),
            "simulated_platform_keys": [k.hex() for k in self.simulated_platform_keys],
            "max_report_age": self.max_report_age,
        }

    def trust(self) -> TeeTrust | None:
        """The data owner's trust, or None when this node accepts no backend."""
        if not self.allowed_backends:
            return None
        verifiers: dict[str, Verifier] = {}
        if SIMULATED in self.allowed_backends:
            verifiers[SIMULATED] = SimulatedVerifier(frozenset(self.simulated_platform_keys))
        policy = TrustPolicy(frozenset(self.allowed_backends), max_age=self.max_report_age)
        return TeeTrust(policy, verifiers)

    def host(self, account_key: bytes) -> Backend | None:
        """The backend this node hosts enclaves with, or None."""
        if self.backend == SIMULATED:
            return SimulatedBackend(simulated_platform_key(account_key))
        return None
