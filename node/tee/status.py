"""What a node's operator API says about attested jobs (``GET /tee``).

An operator (or a newcomer following docs/tee.md) needs three answers without reading
node.json or the chain by hand: does this node host enclaves, and with which platform
key; which enclaves will its data be provisioned to; and is *this build's* enclave
measurement trusted on chain yet. Every answer that involves the ``simulated`` backend
says so, and that it gives no hardware isolation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ledger.clients.measurements import MeasurementSets
from node.algorithms.package import package_of
from node.tee.settings import TeeSettings
from node.tee.simulated import SIMULATED, simulated_measurement

__all__ = ["NO_ISOLATION", "TeeStatus"]

NO_ISOLATION = (
    "simulated: a software enclave; whoever controls the host can read the inputs and "
    "forge reports. It exercises the protocol, it does not protect the data."
)


@dataclass(frozen=True)
class TeeStatus:
    settings: TeeSettings | None
    platform_key: bytes | None  # the host's simulated platform public key, if it hosts
    algorithms: Sequence[ModuleType]  # this build's attested algorithms
    measurements: Callable[[], MeasurementSets]

    def to_json(self) -> dict[str, Any]:
        settings = self.settings or TeeSettings()
        sets = self.measurements()
        host = None
        if settings.backend is not None:
            host = {
                "backend": settings.backend,
                "platformKey": None if self.platform_key is None else self.platform_key.hex(),
                "isolation": NO_ISOLATION if settings.backend == SIMULATED else "hardware",
            }
        owner = None
        if settings.allowed_backends:
            owner = {
                "allowedBackends": list(settings.allowed_backends),
                "simulatedPlatformKeys": [k.hex() for k in settings.simulated_platform_keys],
                "maxReportAge": settings.max_report_age,
            }
        build = []
        for module in self.algorithms:
            package = package_of(module)
            measurement = simulated_measurement(package)
            build.append(
                {
                    "algorithm": package.name,
                    "algorithmDigest": "0x" + package.digest.hex(),
                    "backend": SIMULATED,
                    "measurement": "0x" + measurement.hex(),
                    "trusted": measurement in sets.trusted,
                    "revoked": measurement in sets.revoked,
                }
            )
        return {
            "host": host,
            "owner": owner,
            "thisBuild": build,
            "atBlock": sets.block,
            "next": _next(host, owner, build),
        }


def _next(host: Any, owner: Any, build: list[dict[str, Any]]) -> str:
    if host is None and owner is None:
        return (
            'this node takes no part in attested jobs: add "tee": {"backend": "simulated"} '
            'to host them, or "tee": {"allowed_backends": ["simulated"], '
            '"simulated_platform_keys": [...]} to provision data to them (docs/tee.md)'
        )
    untrusted = [b["algorithm"] for b in build if not b["trusted"]]
    if untrusted:
        return (
            f"this build's enclave measurement of {', '.join(untrusted)} is not trusted on "
            "chain: an admin runs `provnet measurement propose NAME --backend simulated`, "
            "another member's admin votes"
        )
    return "ready: attested tasks (e.g. tee-join) can run with this node"
